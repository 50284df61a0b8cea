"""Shared fixtures: the real params.yaml, shrunk, with every path inside `tmp_path`."""
from __future__ import annotations

import copy
import os
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
def instruments_dir() -> Path:
    """The shared Amazon-2018 Instruments benchmark folder; skips the test when it is absent."""
    if not INSTRUMENTS.is_dir():
        pytest.skip(f"shared dataset absent: {INSTRUMENTS}")
    return INSTRUMENTS


SLOW = ("stages", "test_flows.py")     # whole stages, DVC, Prefect and MLflow runs


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`-m "not slow"` leaves the unit tests: every test that runs a whole stage or an
    external tool is marked slow here, by where it lives."""
    for item in items:
        if Path(item.path).relative_to(ROOT / "tests").parts[0] in SLOW:
            item.add_marker(pytest.mark.slow)
