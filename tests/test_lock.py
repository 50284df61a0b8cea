"""One retrain at a time per repository (flows/lock.py), across processes."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.lock import RepoBusy, repo_lock

ROOT = Path(__file__).resolve().parents[1]
TAKE = ("import sys; from pathlib import Path; from flows.lock import repo_lock\n"
        "with repo_lock(Path(sys.argv[1]), wait=sys.argv[2] == 'wait'):\n"
        "    print('got it', flush=True)\n")


def _start(repo: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TAKE, str(repo), mode], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_run_waits_for_the_first_and_says_so(tmp_path):
    with repo_lock(tmp_path):
        waiter = _start(tmp_path, "wait")
        time.sleep(3)
        assert waiter.poll() is None                        # still waiting
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert out.splitlines() == [
        next(line for line in out.splitlines() if "waiting for it to finish" in line), "got it"]
    assert "pid " in out                                    # names the holder


def test_a_second_run_told_not_to_wait_stops_with_a_clear_message(tmp_path):
    with repo_lock(tmp_path):
        stopper = _start(tmp_path, "nowait")
        out, err = stopper.communicate(timeout=60)
        with pytest.raises(RepoBusy, match="another retrain"):
            with repo_lock(tmp_path, wait=False):
                pass
    assert stopper.returncode != 0 and "RepoBusy: another retrain" in err and out == ""
    with repo_lock(tmp_path, wait=False):                   # released: free again
        pass


def test_a_killed_holder_releases_the_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", TAKE.replace(
        "print('got it', flush=True)", "print('got it', flush=True); import time; time.sleep(600)"),
        str(tmp_path), "wait"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "got it"
    holder.kill()
    holder.wait(timeout=30)
    with repo_lock(tmp_path, wait=False):
        pass
