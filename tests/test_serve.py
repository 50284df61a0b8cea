"""`make serve` as a user meets it: the UI on the port it was given talks to the API on that
port, the deployment is served, and one Ctrl-C stops the server and the runner cleanly."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _post(url: str, body: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_serve_on_another_port_then_one_ctrl_c_stops_everything(tmp_path, free_port):
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "flows.serve", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 240
        deployments = []
        while not deployments:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-3000:]
            time.sleep(1)
            try:
                deployments = _post(f"{api}/deployments/filter", {})
            except OSError:
                continue
        # The UI is told to call the API it was started with, not the default 4200.
        assert _get(f"http://127.0.0.1:{port}/ui-settings")["api_url"] == api
        assert deployments[0]["name"] == "scheduled"
        assert [s["schedule"]["cron"] for s in deployments[0]["schedules"]] == ["0 3 * * *"]
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) >= 2                      # the server and the runner
        os.kill(proc.pid, signal.SIGINT)               # what a terminal's Ctrl-C sends
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "ConnectionRefusedError" not in out
    assert "stopping the runner and the Prefect server" in out
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert not alive, out[-3000:]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{api}/health", timeout=2)
