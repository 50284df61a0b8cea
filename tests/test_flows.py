"""Orchestration with real components: the cron deployment read back through the Prefect API,
and the retrain flow running every stage through DVC in a throw-away repo, tracked in an
MLflow SQLite store, its registered model loaded back and asked for recommendations."""
import asyncio
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml


@pytest.fixture(scope="module")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_deployment_is_registered_with_its_cron_schedule(prefect_api):
    from prefect.client.orchestration import get_client

    from flows import serve

    deployment_id = serve.deployment().apply()

    async def read():
        async with get_client() as client:
            return await client.read_deployment(deployment_id)

    deployment = asyncio.run(read())
    assert deployment.name == serve.DEPLOYMENT
    assert [s.schedule.cron for s in deployment.schedules] == [serve.CRON]
    assert all(s.active for s in deployment.schedules)


@pytest.mark.slow
def test_retrain_flow_runs_tracks_and_registers(prefect_api, tiny_repo, tmp_path):
    import mlflow

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import TaskRunSort
    from prefect_dask import DaskTaskRunner

    from flows.lock import repo_lock
    from flows.retrain import STAGES, retrain

    repo = tiny_repo
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    # Feature stages in 2 shards each, as Prefect tasks on a local Dask cluster (in-process
    # workers, no dashboard); a user points the same runner at a real scheduler.
    dask = DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1,
                                          "processes": False, "dashboard_address": None})
    summary = retrain.with_options(task_runner=dask)(
        repo=str(repo), tracking_uri=uri, overrides={"evaluate.top_k": 10}, feature_shards=2)
    assert 0 <= summary["test/hr_10"] <= 1 and summary["test/invalid_rate"] == 0
    status = subprocess.run(["dvc", "status"], cwd=repo, capture_output=True, text=True)
    assert "up to date" in status.stdout                            # dvc.lock holds every stage

    async def task_names():
        async with get_client() as prefect:
            runs = await prefect.read_task_runs(limit=200, sort=TaskRunSort.EXPECTED_START_TIME_ASC)
            return {t.name for t in runs}

    shards = {f"{stage}-shard-{i}" for stage in ("text_features", "image_features") for i in (0, 1)}
    assert shards <= asyncio.run(task_names())

    async def log_lines():
        lines = []
        async with get_client() as prefect:
            while page := await prefect.read_logs(limit=200, offset=len(lines)):
                lines += [log.message for log in page]
        return lines

    # Each stage's own lines (progress with an ETA, epoch lines) reach the run's logs.
    logs = asyncio.run(log_lines())
    assert any(m.startswith("[train] train epoch 1:") and "<" in m for m in logs)
    assert any(m.startswith("[evaluate] ") for m in logs)

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("mmgenrec")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert sorted(r.info.run_name for r in children) == sorted(STAGES)
    train = next(r for r in children if r.info.run_name == "train")
    assert train.data.params["train.method"] == "mscgrec" and "valid/hr_10" in train.data.metrics
    assert len(client.get_metric_history(train.info.run_id, "curve/train/loss")) == 1
    assert train.data.tags["dvc.stage_hash"] and train.data.tags["dataset.source"] == "synthetic"
    assert all(r.data.tags["dvc.ran"] == "true" for r in children)             # a fresh repo
    assert train.data.metrics["cost/seconds"] > 0
    assert train.data.metrics["cost/peak_rss_mb"] > 100          # DVC and torch alone exceed it
    evaluate = next(r for r in children if r.info.run_name == "evaluate")
    artifacts = {a.path for a in client.list_artifacts(evaluate.info.run_id)}
    assert {"evaluate.json", "evaluate.md", "evaluate.png"} <= artifacts

    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/mmgenrec/1")
    out = model.predict(pd.DataFrame({"history": [[1, 2, 3], [5]]}), params={"k": 5})
    assert [len(items) for items in out["items"]] == [5, 5]
    assert all(0 <= i < 120 for items in out["items"] for i in items)

    # A second retrain while one holds the repository: told not to wait it stops at once and
    # writes nothing; by default it waits, says so, and runs once the first has finished.
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PREFECT_HOME": str(tmp_path / "prefect")}
    params_before = (repo / "params.yaml").read_text()
    with repo_lock(repo):
        busy = subprocess.run([sys.executable, "-m", "flows.retrain", "--no-wait"], cwd=repo,
                              env=env, capture_output=True, text=True, timeout=600)
        assert busy.returncode == 3 and "another retrain" in busy.stderr
        waiting = subprocess.Popen([sys.executable, "-m", "flows.retrain"], cwd=repo, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        while not any("waiting for it to finish" in line for line in lines):
            line = waiting.stdout.readline()
            assert line, "".join(lines)[-3000:]                  # it must not end first
            lines.append(line)
        assert len(client.search_runs([experiment.experiment_id])) == len(runs)
    rest, _ = waiting.communicate(timeout=900)
    assert waiting.returncode == 0, rest[-3000:]
    assert (repo / "params.yaml").read_text() == params_before
    parents = [r for r in client.search_runs([experiment.experiment_id])
               if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2
    status = subprocess.run(["dvc", "status"], cwd=repo, capture_output=True, text=True)
    assert "up to date" in status.stdout


def test_overrides_are_validated_before_params_yaml_changes(real_params, tmp_path):
    from flows.retrain import apply_overrides
    from pipeline.config import ConfigError

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(real_params, sort_keys=False))
    before = path.read_text()
    with pytest.raises(ConfigError, match="train.lrr"):
        apply_overrides(path, {"train.lrr": 0.1})
    assert path.read_text() == before
    apply_overrides(path, {"train.lr": 0.0005, "dataset.source": "movielens100k"})
    changed = yaml.safe_load(path.read_text())
    assert changed["train"]["lr"] == 0.0005 and changed["dataset"]["source"] == "movielens100k"
