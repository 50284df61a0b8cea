"""End-to-end cost of the default pipeline from a fresh clone: set-up, every stage from
scratch through the README's run command, then the same command and `dvc repro` with nothing
changed.

    python bench/pipeline_cost.py [--dir /tmp/mmgenrec-cost] [--out bench/results/pipeline_cost.json]

Clones this repository's committed HEAD into `--dir` (which must not exist), runs `make setup`
(venv + install), `make run` (the retrain flow: every stage through `dvc repro`, tracked in
MLflow), `make run` again and `dvc repro` alone, timing each; reads each stage's wall time and
peak RSS from the flow's MLflow runs (`cost/seconds`, `cost/peak_rss_mb`) and checks that
`dvc status` is clean and the registered model predicts. It also reports whether the fresh
run reproduced the committed one: every stage whose outputs' hashes differ from the committed
`dvc.lock`, and what `git status` shows (issue 20: a fresh clone must leave it clean).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True)
    return round(time.perf_counter() - start, 1)


def stage_costs(repo: Path) -> dict[str, dict[str, float]]:
    """Stage -> {seconds, peak_rss_mb} of the first retrain's nested MLflow runs."""
    code = f"""
import json, mlflow
client = mlflow.MlflowClient("sqlite:///{repo / 'mlflow.db'}")
exp = client.get_experiment_by_name("mmgenrec")
runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
first = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
out = {{r.info.run_name: {{"seconds": r.data.metrics.get("cost/seconds"),
                          "peak_rss_mb": r.data.metrics.get("cost/peak_rss_mb")}}
       for r in runs if r.data.tags.get("mlflow.parentRunId") == first.info.run_id}}
print(json.dumps(out))
"""
    done = subprocess.run([str(repo / ".venv" / "bin" / "python"), "-c", code], cwd=repo,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def registered_model_predicts(repo: Path) -> list[int]:
    """Top-5 item ids of the registered `mmgenrec` model for the history [1, 2, 3]."""
    code = f"""
import mlflow, pandas as pd
mlflow.set_tracking_uri("sqlite:///{repo / 'mlflow.db'}")
model = mlflow.pyfunc.load_model("models:/mmgenrec/latest")
print(list(model.predict(pd.DataFrame({{"history": [[1, 2, 3]]}}), params={{"k": 5}})["items"][0]))
"""
    done = subprocess.run([str(repo / ".venv" / "bin" / "python"), "-c", code], cwd=repo,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def lock_drift(repo: Path) -> dict[str, list[str]]:
    """Stage -> outputs whose hash in the run's dvc.lock differs from the committed one."""
    import yaml

    def outs(text: str) -> dict[str, dict[str, str]]:
        stages = (yaml.safe_load(text) or {}).get("stages", {})
        return {name: {o["path"]: o.get("md5") for o in entry.get("outs", [])}
                for name, entry in stages.items()}

    committed = outs(subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=repo, text=True,
                                    capture_output=True, check=True).stdout)
    ran = outs((repo / "dvc.lock").read_text())
    return {stage: sorted(p for p in set(ran.get(stage, {})) | set(files)
                          if ran.get(stage, {}).get(p) != files.get(p))
            for stage, files in committed.items()
            if ran.get(stage, {}) != files}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="/tmp/mmgenrec-cost")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "pipeline_cost.json"))
    args = parser.parse_args()
    repo = Path(args.dir)
    if repo.exists():
        parser.error(f"--dir {repo} exists; give a new folder")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    result = {"commit": commit, "date": date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    result["setup_s"] = timed(["make", "setup"], repo, env)
    result["run_from_scratch_s"] = timed(["make", "run"], repo, env)
    result["stages"] = stage_costs(repo)
    result["outputs_differing_from_committed_lock"] = lock_drift(repo)
    result["git_status_after_run"] = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True,
        check=True).stdout.splitlines()
    result["run_nothing_changed_s"] = timed(["make", "run"], repo, env)
    dvc_env = {**env, "PATH": f"{repo / '.venv' / 'bin'}{os.pathsep}{env['PATH']}",
               "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(repo / ".dvc" / "tmp" / "site")}
    result["dvc_repro_nothing_changed_s"] = timed(["dvc", "repro"], repo, dvc_env)
    status = subprocess.run(["dvc", "status"], cwd=repo, env=dvc_env, capture_output=True,
                            text=True, check=True).stdout
    result["dvc_status_clean"] = "up to date" in status
    result["registered_model_top5"] = registered_model_predicts(repo)
    metrics = json.loads((repo / "metrics" / "evaluate.json").read_text())
    result["test"] = {k: metrics[k] for k in ("test/hr_10", "test/ndcg_10", "test/invalid_rate")}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
