"""Shared fixtures: the real params.yaml, shrunk, with every path inside `tmp_path`."""
from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

# Offline and quiet, before any library reads these: a hub request must fail at once.
for key, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                   "HF_HUB_DISABLE_TELEMETRY": "1", "DVC_NO_ANALYTICS": "1",
                   "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}.items():
    os.environ[key] = value

ROOT = Path(__file__).resolve().parents[1]
TINY_T5 = dict(d_model=32, d_ff=64, layers=1, decoder_layers=1, heads=2, d_kv=16, dropout=0.0,
               tie_head=False)
INSTRUMENTS = ROOT.parent / "shared" / "datasets" / "amazon18-instruments"


@pytest.fixture(scope="session")
def real_params() -> dict:
    with (ROOT / "params.yaml").open() as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="session")
def tiny_t5() -> dict:
    """The `train.model` section of the tests: a one-layer T5 (a copy per session; do not
    mutate it)."""
    return dict(TINY_T5)


@pytest.fixture
def params_dict(real_params: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """params.yaml with a tiny synthetic shop; the working directory is `tmp_path`."""
    monkeypatch.chdir(tmp_path)
    raw = copy.deepcopy(real_params)
    raw["synthetic"].update(n_items=120, n_users=150, min_len=5, max_len=12, image_size=16)
    return raw


@pytest.fixture
def tiny_repo(params_dict: dict, tiny_t5: dict, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away git + DVC repository at `tmp_path/repo` holding this project's code and
    a params.yaml for a tiny run of every stage (seconds per stage); DVC and the stages run
    from this venv."""
    repo = tmp_path / "repo"
    repo.mkdir()
    tracked = subprocess.run(["git", "ls-files", "data"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()       # data/ READMEs, ignores
    for name in ("pipeline", "flows", "dvc.yaml", ".dvcignore", *tracked):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, repo / name)
    params_dict["sasrec"].update(epochs=2, hidden=16)
    params_dict["quantize"].update(methods={"text": "rqkmeans", "image": "rqkmeans",
                                            "collab": "rqkmeans"}, levels=3, codebook_size=8)
    params_dict["train"].update(epochs=1, batch_size=64, valid_users=40, beam=10, model=tiny_t5)
    params_dict["evaluate"].update(beam=10, users=50)
    (repo / "params.yaml").write_text(yaml.safe_dump(params_dict, sort_keys=False))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", str(repo))
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(repo / ".dvc" / "tmp" / "site"))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=repo, check=True)
    return repo


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function that returns a loopback TCP port no process listens on right now."""
    def pick() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    return pick


@pytest.fixture
def instruments_dir() -> Path:
    """The shared Amazon-2018 Instruments benchmark folder; skips the test when it is absent."""
    if not INSTRUMENTS.is_dir():
        pytest.skip(f"shared dataset absent: {INSTRUMENTS}")
    return INSTRUMENTS


SLOW = ("stages", "e2e", "test_flows.py")     # whole stages, DVC, Prefect, MLflow, a browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`-m "not slow"` leaves the unit tests: every test that runs a whole stage or an
    external tool is marked slow here, by where it lives. Tests marked `cuda` skip when
    torch sees no GPU."""
    import torch

    no_gpu = pytest.mark.skip(reason="torch sees no CUDA GPU")
    for item in items:
        if Path(item.path).relative_to(ROOT / "tests").parts[0] in SLOW:
            item.add_marker(pytest.mark.slow)
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)
