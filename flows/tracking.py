"""MLflow observes the pipeline: one parent run per pipeline run, one nested run per stage
(named like the stage) with its params section, its metrics file, its curves as stepped
metrics, tags (git commit, dataset, the stage's DVC lock hash) and its artifacts; the trained
recommender logged and registered as a pyfunc model. Nothing here changes what a stage does.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.config import params_from_dict, read_yaml

STAGE_ARTIFACTS = {               # extra files a stage's run carries, relative to paths.*
    "quantize": [("plots", "quantize")],
    "resolve": [("plots", "resolve")],
    "train": [("plots", "train")],
    "evaluate": [("reports", "evaluate.md"), ("reports", "evaluate.png")],
}
MODEL_NAME = "mmgenrec"
EXPERIMENT = "mmgenrec"


def flatten(obj, prefix: str = "") -> dict[str, str]:
    """{"a": {"b": 1}} -> {"a.b": "1"}; lists become their JSON text."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            out |= flatten(value, f"{prefix}{key}.")
        return out
    return {prefix[:-1]: json.dumps(obj) if isinstance(obj, list) else str(obj)}


def stage_tags(repo: Path, stage: str, raw: dict) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text()) if (repo / "dvc.lock").is_file() else {}
    entry = (lock.get("stages") or {}).get(stage)
    tags = {"stage": stage, "dataset.source": str(raw["dataset"]["source"]),
            "dataset.name": str(raw["dataset"]["name"]), "git_commit": git_commit(repo)}
    if entry is not None:
        tags["dvc.stage_hash"] = hashlib.md5(json.dumps(entry, sort_keys=True).encode()).hexdigest()
    return tags


def git_commit(repo: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def log_stage(mlflow, parent_id: str, repo: Path, stage: str) -> str:
    """A nested run for `stage` under `parent_id`, from the files the stage wrote. Returns its id."""
    raw = read_yaml(repo / "params.yaml")     # the sections as written, for the run's params
    paths = params_from_dict(raw).paths
    experiment = mlflow.get_run(parent_id).info.experiment_id
    with mlflow.start_run(run_name=stage, nested=True, parent_run_id=parent_id,
                          experiment_id=experiment) as run:
        mlflow.set_tags(stage_tags(repo, stage, raw))
        params = flatten({"seed": raw["seed"], stage: raw.get(stage, {})})
        mlflow.log_params({k[:250]: v[:6000] for k, v in params.items()})
        for folder, under in ((paths.metrics, None), (paths.costs, "costs")):  # results, timings
            path = repo / folder / f"{stage}.json"
            if path.is_file():
                _log_values(mlflow, json.loads(path.read_text()))
                mlflow.log_artifact(str(path), artifact_path=under)
        _log_curves(mlflow, repo / paths.plots, stage)
        for key, name in STAGE_ARTIFACTS.get(stage, []):
            path = repo / getattr(paths, key) / name
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=name)
            elif path.is_file():
                mlflow.log_artifact(str(path))
        return run.info.run_id


def _log_values(mlflow, values: dict) -> None:
    """Numbers as metrics; a list of numbers (e.g. `timing/epoch_minutes`) as one stepped
    metric, step 1 first."""
    mlflow.log_metrics({k: float(v) for k, v in values.items() if _number(v)})
    for key, value in values.items():
        if isinstance(value, list) and all(_number(v) for v in value):
            for step, v in enumerate(value, 1):
                mlflow.log_metric(key, float(v), step=step)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _log_curves(mlflow, plots: Path, stage: str) -> None:
    """Per-epoch records (`plots/<stage>/epochs.json`, a list of {"epoch": n, key: value})
    as metrics with steps."""
    path = plots / stage / "epochs.json"
    if not path.is_file():
        return
    for record in json.loads(path.read_text()):
        step = int(record.get("epoch", 0))
        mlflow.log_metrics({f"curve/{k}": float(v) for k, v in record.items()
                            if k != "epoch" and isinstance(v, (int, float))}, step=step)


def runs_page(tracking_uri: str, ui: str) -> str:
    """The MLflow UI address of the experiment's training runs. MLflow 3's UI opens an
    experiment on its GenAI trace overview unless the address asks for the model-training
    view, and the experiment's id is only known to the store."""
    import mlflow

    experiment = mlflow.MlflowClient(tracking_uri).get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return f"{ui}/#/experiments?workflowType=machine_learning  (no `{EXPERIMENT}` runs yet)"
    return f"{ui}/#/experiments/{experiment.experiment_id}?workflowType=machine_learning"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the MLflow UI address of the runs.")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--ui", required=True, help="the UI's base address")
    args = parser.parse_args(argv)
    page = runs_page(args.tracking_uri, args.ui)
    print(f"MLflow UI: the {EXPERIMENT} training runs are at {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
