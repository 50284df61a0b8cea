"""The registered model over HTTP, as a client meets it: MLflow's scoring server on a loopback
port answers what `Recommender` answers, and bad requests get a 400 that names the problem
while the server goes on serving."""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipeline.serve.pyfunc import log_recommender
from pipeline.serve.recommender import Recommender


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def server(trained, tmp_path, free_port):
    import mlflow

    Path("params.yaml").write_text(json.dumps(trained))           # JSON is YAML
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("serving")
    with mlflow.start_run() as run:
        log_recommender(mlflow, run.info.run_id, Path.cwd())
    # Logged as code, not as a pickled object: loading it unpickles nothing.
    files = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "recommender")}
    assert "recommender/python_model.pkl" not in files and "recommender/MLmodel" in files
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(["mlflow", "models", "serve", "-m", "models:/mmgenrec/latest",
                             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-3000:]
        try:
            urllib.request.urlopen(f"{base}/ping", timeout=2)
            break
        except OSError:
            time.sleep(1)
    yield f"{base}/invocations"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.slow
def test_rest_answers_like_the_recommender_and_refuses_bad_requests(server, trained):
    histories = [[3, 17], [5], [1, 2, 3, 4, 5, 6]]
    status, body = _post(server, {"dataframe_records": [{"history": h} for h in histories],
                                  "params": {"k": 5}})
    assert status == 200, body
    local = Recommender("data/model", "data/ingest/items.parquet", "cpu", beam=12)
    expected = local.recommend_many(histories, k=5)
    assert [row["items"] for row in body["predictions"]] == [[r.item_id for r in row]
                                                             for row in expected]
    for row, want in zip(body["predictions"], expected):
        assert row["scores"] == pytest.approx([r.score for r in want])

    bad = {
        "unknown item id(s): 999": {"dataframe_records": [{"history": [3, 999]}]},
        "history of row 1 is empty": {"dataframe_records": [{"history": [3]}, {"history": []}]},
        "k must be between 1 and the beam width 12, got 0": {
            "dataframe_records": [{"history": [3]}], "params": {"k": 0}},
        "k must be between 1 and the beam width 12, got 13": {
            "dataframe_records": [{"history": [3]}], "params": {"k": 13}},
        "history": {"dataframe_records": [{"history": 7}]},
    }
    for message, request in bad.items():
        status, body = _post(server, request)
        assert 400 <= status < 500 and message in body["message"], (message, status, body)
    status, body = _post(server, {"dataframe_records": [{"history": [3, 17]}],
                                  "params": {"k": 5}})
    assert status == 200 and len(body["predictions"][0]["items"]) == 5    # still serving
