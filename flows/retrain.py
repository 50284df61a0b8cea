"""The retrain flow: every DVC stage in DAG order, each as a Prefect task that runs
`dvc repro --single-item <stage>` (DVC decides whether it is stale and records it in
dvc.lock; there is no second cache), then reports the stage to MLflow as a nested run of the
flow's parent run. Stages that read the outside world retry.

    python -m flows.retrain                       # one run now, in this process
    python -m flows.retrain --feature-shards 8 --dask tcp://scheduler:8786
    python -m flows.serve                         # the cron-scheduled deployment (flows/serve.py)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows import tracking
from flows.lock import RepoBusy, repo_lock
from pipeline.config import load_params, params_from_dict, read_yaml, with_overrides

REPO = Path(__file__).resolve().parents[1]
STAGES = ("synthetic", "ingest", "text_features", "image_features", "sasrec", "quantize",
          "resolve", "train", "evaluate")
OUTSIDE = {"ingest", "text_features", "image_features"}   # read files, hubs, image URLs
SHARDABLE = ("text_features", "image_features")
TAIL_LINES = 20    # output lines a failed stage's error repeats
SUMMARY = ("test/hr_10", "test/ndcg_10", "sasrec/hr_10", "popularity/hr_10",
           "test/invalid_rate", "test/coverage_10")


def apply_overrides(params_path: Path, overrides: dict[str, object]) -> None:
    """Set dotted keys (`train.lr`, `dataset.source`) in params.yaml, as `dvc exp run -S` does;
    the result is validated before it is written, so a typo changes nothing."""
    raw = with_overrides(read_yaml(params_path), overrides)
    params_from_dict(raw)
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False))


class StageRun(NamedTuple):
    ran: bool              # False: DVC found the stage up to date
    seconds: float         # wall time of `dvc repro` for the stage
    peak_rss_mb: float     # the largest resident set of DVC and the stage process it started


class StageFailed(RuntimeError):
    """A stage's command exited non-zero; the message ends with its last output lines."""

    def __init__(self, stage: str, returncode: int, tail: list[str]):
        self.stage = stage
        super().__init__(f"stage '{stage}' failed (exit {returncode}); its last lines:\n"
                         + "\n".join(tail))


def _streamed(cmd: list[str], repo: Path, stage: str,
              log: Callable[[str], None] | None = None) -> tuple[str, float, float]:
    """Run `cmd`, logging each line of its merged stdout and stderr as it is written (the
    stage's progress lines, epoch lines and warnings reach `make run`'s terminal and the
    Prefect run's logs live; `log` defaults to the Prefect run logger). Returns (output,
    seconds, peak RSS in MiB); raises StageFailed."""
    log = log or get_run_logger().info
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"}
    lines: list[str] = []
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1)
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            lines.append(line)
            log(f"[{stage}] {line}")
    # wait4 reports the peak of the process and of every descendant it waited for
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    if proc.returncode != 0:
        raise StageFailed(stage, proc.returncode, lines[-TAIL_LINES:])
    return "\n".join(lines), time.perf_counter() - start, usage.ru_maxrss / 1024   # KiB


@task(task_run_name="{stage}")
def run_stage(stage: str, repo: Path) -> StageRun:
    """Run one stage through DVC, with its wall time and peak memory."""
    out, seconds, peak = _streamed(["dvc", "repro", "--single-item", stage], repo, stage)
    return StageRun(f"Running stage '{stage}'" in out, seconds, peak)


def _stale(stage: str, repo: Path) -> bool:
    done = subprocess.run(["dvc", "status", "--json", stage], cwd=repo, capture_output=True,
                          text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if done.returncode != 0:
        raise StageFailed(stage, done.returncode, done.stderr.splitlines()[-TAIL_LINES:])
    return json.loads(done.stdout or "{}") != {}


@task(task_run_name="{stage}-shard-{index}")
def extract_shard(stage: str, index: int, count: int, repo: Path) -> None:
    """Encode shard `index` of `count` of a feature stage into its work folder, in a process
    of whichever worker runs this task (the repository must be at the same path there, on a
    shared filesystem); the stage's own DVC run then assembles the shards."""
    _streamed([sys.executable, "-m", f"pipeline.stages.{stage}", "--shard",
               f"{index + 1}/{count}"], repo, f"{stage} shard {index + 1}/{count}")


@task(task_run_name="mlflow-{stage}")
def track_stage(stage: str, repo: Path, tracking_uri: str, parent_id: str, cost: StageRun) -> str:
    """The stage's nested MLflow run; `cost/seconds` and `cost/peak_rss_mb` only when it ran
    (an up-to-date stage costs DVC's check alone), tag `dvc.ran` either way."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    run_id = tracking.log_stage(mlflow, parent_id, repo, stage)
    client = mlflow.MlflowClient()
    client.set_tag(run_id, "dvc.ran", str(cost.ran).lower())
    if cost.ran:
        client.log_metric(run_id, "cost/seconds", round(cost.seconds, 1))
        client.log_metric(run_id, "cost/peak_rss_mb", round(cost.peak_rss_mb, 1))
    return run_id


@task
def register_recommender(repo: Path, tracking_uri: str, parent_id: str) -> str:
    """Log the trained recommender as a pyfunc model in the parent run and register it."""
    import mlflow

    from pipeline.serve.pyfunc import log_recommender

    mlflow.set_tracking_uri(tracking_uri)
    return log_recommender(mlflow, parent_id, repo)


@task
def summarize(repo: Path, costs: dict[str, StageRun]) -> dict[str, float]:
    """The test metrics, and a markdown artifact with them and every stage's cost."""
    metrics_file = repo / load_params(repo / "params.yaml").paths.metrics / "evaluate.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    summary = {k: metrics[k] for k in SUMMARY if k in metrics}
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in summary.items())
    stages = "\n".join(f"| {stage} | {'ran' if c.ran else 'up to date'} | {c.seconds:.1f} | "
                       f"{c.peak_rss_mb:.0f} |" for stage, c in costs.items())
    create_markdown_artifact(
        f"| metric | value |\n|---|---|\n{rows}\n\n"
        f"| stage | DVC | seconds | peak RSS MiB |\n|---|---|---|---|\n{stages}\n",
        key="retrain-summary", description="test metrics and stage costs of this retrain")
    return summary


@flow(name="retrain", log_prints=True)
def retrain(overrides: dict[str, object] | None = None, repo: str = str(REPO),
            tracking_uri: str = "", register_model: bool = True,
            feature_shards: int = 1, wait_for_lock: bool = True) -> dict[str, float]:
    """Run the pipeline (params overrides first, e.g. {"dataset.source": "movielens100k"}),
    track every stage in MLflow (`tracking_uri`, else $MLFLOW_TRACKING_URI, else
    sqlite:///<repo>/mlflow.db) and register the model. Returns the test summary.

    `feature_shards` > 1 splits a stale feature stage into that many `extract_shard` tasks,
    run in parallel by the flow's task runner (threads of this process by default; a
    `prefect_dask.DaskTaskRunner` spreads them over a Dask cluster's machines) before the
    stage's DVC run assembles them.

    One retrain at a time per repository (`flows.lock`): while another holds it, this one
    waits (and says so), or with `wait_for_lock=False` stops with RepoBusy."""
    root = Path(repo)
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"
    with repo_lock(root, wait=wait_for_lock):
        if overrides:
            apply_overrides(root / "params.yaml", overrides)
        summary = _run_pipeline(root, uri, register_model, feature_shards)
    print(f"retrain: {summary}")
    return summary


def _run_pipeline(root: Path, uri: str, register_model: bool,
                  feature_shards: int) -> dict[str, float]:
    """Every stage through DVC, each tracked, under one parent MLflow run."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(tracking.EXPERIMENT)
    source = load_params(root / "params.yaml").dataset.source
    with mlflow.start_run(run_name=f"retrain-{source}") as parent:
        mlflow.set_tags({"git_commit": tracking.git_commit(root), "dataset.source": source})
        costs = {}
        for stage in STAGES:
            options = {"retries": 2, "retry_delay_seconds": 30} if stage in OUTSIDE else {}
            if stage in SHARDABLE and feature_shards > 1 and _stale(stage, root):
                shards = [extract_shard.with_options(**options).submit(stage, i, feature_shards,
                                                                       root)
                          for i in range(feature_shards)]
                for shard in shards:
                    shard.result()                      # raises if a shard failed
            costs[stage] = run_stage.with_options(**options)(stage, root)
            track_stage(stage, root, uri, parent.info.run_id, costs[stage])
        if register_model:
            register_recommender(root, uri, parent.info.run_id)
        summary = summarize(root, costs)
        mlflow.log_metrics(summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One retrain now, in this process.")
    parser.add_argument("--feature-shards", type=int, default=1,
                        help="split stale feature stages into N parallel tasks (default 1)")
    parser.add_argument("--dask", metavar="ADDRESS",
                        help="run the tasks on this Dask scheduler (tcp://host:8786; needs "
                             "`pip install -e .[dask]`) instead of this process's threads")
    parser.add_argument("--no-wait", action="store_true",
                        help="stop at once if another retrain is running in this repository "
                             "(default: wait for it to finish)")
    args = parser.parse_args(argv)
    flow_ = retrain
    if args.dask:
        from prefect_dask import DaskTaskRunner

        flow_ = retrain.with_options(task_runner=DaskTaskRunner(address=args.dask))
    try:
        flow_(feature_shards=args.feature_shards, wait_for_lock=not args.no_wait)
    except RepoBusy as exc:
        print(f"retrain: {exc}", file=sys.stderr)
        return 3
    except StageFailed as exc:
        # Prefect has logged the traceback; the stage and its own last lines come last.
        print(f"retrain: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
