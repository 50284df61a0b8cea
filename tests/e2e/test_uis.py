"""The Prefect and MLflow UIs in a real browser (headless Chromium through Selenium), looked
at as a user does after a retrain: the Prefect UI served by `python -m flows.serve` (what
`make serve` runs) lists the scheduled deployment with its cron and a completed flow run with
its summary artifact; the MLflow UI opens the experiment on its training runs, with the parent
run, one nested run per stage, `test/hr_10`, and the registered model's version.

Needs Debian's `chromium` and `chromium-driver` and the `e2e` extra (`make e2e` installs
them); skipped without them. Screenshots go to reports/e2e/ (not committed).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flows import tracking
from flows.retrain import STAGES

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "reports" / "e2e"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _wait_http(url: str, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, f"{proc.args} ended with {proc.returncode}"
        assert time.monotonic() < deadline, f"{url} did not answer in {seconds} s"
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(1)


def _post(url: str, body: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -e '.[e2e]'")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromium-driver are not installed (make e2e installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1440,1000",
                "--disable-dev-shm-usage"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _page_shows(driver, url: str | None, needles: list[str], shot: str, seconds: float = 90) -> str:
    """Open `url`, wait until the rendered page's text holds every needle, save a
    screenshot; returns the page text. Fails with what the page showed instead."""
    if url is not None:                        # None: look again at the page as it is now
        driver.get(url)
    deadline = time.monotonic() + seconds
    text = ""
    while time.monotonic() < deadline:
        text = driver.execute_script("return document.body ? document.body.innerText : ''")
        if all(n in text for n in needles):
            break
        time.sleep(1)
    driver.save_screenshot(str(SHOTS / f"{shot}.png"))
    missing = [n for n in needles if n not in text]
    assert not missing, f"{url}: {missing} not shown; the page showed:\n{text[:3000]}"
    return text


@pytest.fixture
def servers(tiny_repo, tmp_path, free_port):
    """A Prefect server + the deployment runner (`python -m flows.serve`), one finished
    retrain of the tiny repo recorded on it and in MLflow, and the MLflow UI over that store.
    Yields (Prefect base URL, MLflow base URL, MLflow tracking URI)."""
    prefect_port, mlflow_port = free_port(), free_port()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "MLFLOW_TRACKING_URI": uri}
    env.pop("PREFECT_API_URL", None)
    procs = [subprocess.Popen([sys.executable, "-m", "flows.serve", "--port", str(prefect_port)],
                              cwd=tiny_repo, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        prefect = f"http://127.0.0.1:{prefect_port}"
        _wait_http(f"{prefect}/api/health", procs[0])
        retrain = subprocess.run([sys.executable, "-m", "flows.retrain"], cwd=tiny_repo,
                                 env={**env, "PREFECT_API_URL": f"{prefect}/api"},
                                 capture_output=True, text=True, timeout=1200)
        assert retrain.returncode == 0, retrain.stderr[-3000:]
        procs.append(subprocess.Popen(["mlflow", "ui", "--backend-store-uri", uri, "--host",
                                       "127.0.0.1", "--port", str(mlflow_port)], env=env,
                                      start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        mlflow = f"http://127.0.0.1:{mlflow_port}"
        _wait_http(f"{mlflow}/health", procs[1])
        yield prefect, mlflow, uri
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def test_prefect_and_mlflow_uis_show_the_retrain(browser, servers):
    check_uis(browser, *servers)


def check_uis(browser, prefect: str, mlflow_ui: str, uri: str) -> None:
    """What a user looks for in each UI after a retrain (screenshots in reports/e2e/)."""
    # Prefect: the deployment with its schedule, the finished run and its summary artifact.
    _page_shows(browser, f"{prefect}/deployments", ["scheduled", "retrain",
                                                    "At 03:00 AM every day"], "prefect_deployments")
    runs = _post(f"{prefect}/api/flow_runs/filter", {})
    done = [r for r in runs if r["state_type"] == "COMPLETED"]
    assert done, runs
    _page_shows(browser, f"{prefect}/runs/flow-run/{done[0]['id']}",
                ["retrain", done[0]["name"], "Completed"], "prefect_flow_run")
    _page_shows(browser, f"{prefect}/artifacts/key/retrain-summary",
                ["retrain-summary", done[0]["name"]], "prefect_artifact_versions")
    (artifact,) = _post(f"{prefect}/api/artifacts/filter",
                        {"artifacts": {"key": {"any_": ["retrain-summary"]}}})
    _page_shows(browser, f"{prefect}/artifacts/artifact/{artifact['id']}",
                ["test/hr_10", "peak RSS MiB", "evaluate"], "prefect_summary_artifact")

    # MLflow: the experiment opens on its training runs; parent, stages, metric, model.
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("mmgenrec")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    _page_shows(browser, f"{mlflow_ui}/#/experiments", ["mmgenrec"], "mlflow_experiments")
    # The address `make mlflow-ui` prints (the experiment list would open it on traces).
    _page_shows(browser, tracking.runs_page(uri, mlflow_ui),
                [parent.info.run_name, f"{len(STAGES) + 1} matching runs"],
                "mlflow_experiment_runs")
    from selenium.webdriver.common.by import By

    name_cell = browser.find_element(By.XPATH, f"//a[.//span[text()='{parent.info.run_name}']]"
                                               f"/ancestor::div[@role='gridcell']")
    name_cell.find_element(By.TAG_NAME, "button").click()        # expand the nested runs
    _page_shows(browser, None, [parent.info.run_name, *STAGES], "mlflow_nested_runs")
    _page_shows(browser,
                f"{mlflow_ui}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}",
                [parent.info.run_name, "test/hr_10", "mmgenrec"], "mlflow_parent_run")
    _page_shows(browser, f"{mlflow_ui}/#/models/mmgenrec", ["mmgenrec", "Version 1"],
                "mlflow_registered_model")
