"""Fixtures of the stage tests: a tiny shop carried through to unique semantic IDs."""
import copy
import os
import shutil
from pathlib import Path

import pytest

from pipeline.config import params_from_dict


@pytest.fixture(scope="session")
def coded_data(real_params, tiny_t5, tmp_path_factory):
    """Tiny shop with text, image and collab semantic IDs (rqkmeans, 3 x 8 codes), built
    once per session; returns (params mapping, folder holding its data/).

    With MMGENREC_CODED_DATA=DIR the data/ folder is copied from DIR when DIR holds one
    (and saved there after a build otherwise): a GPU machine without polars or the packaged
    encoders runs the stage tests on data built here (bench/gpu_check.py)."""
    root = tmp_path_factory.mktemp("coded")
    prebuilt = Path(os.environ.get("MMGENREC_CODED_DATA", "")) / "data"
    raw = copy.deepcopy(real_params)
    raw["synthetic"].update(n_items=120, n_users=150, min_len=5, max_len=12, image_size=16)
    raw["sasrec"].update(epochs=2, hidden=16)
    raw["quantize"].update(methods={"text": "rqkmeans", "image": "rqkmeans",
                                    "collab": "rqkmeans"}, levels=3, codebook_size=8)
    raw["train"].update(epochs=2, batch_size=64, valid_users=40, beam=10, model=tiny_t5)
    if "MMGENREC_CODED_DATA" in os.environ and prebuilt.is_dir():
        shutil.copytree(prebuilt, root / "data")
        return raw, root
    # imported here: a GPU machine without polars uses prebuilt data and never runs them
    from pipeline.stages import (
        image_features, ingest, quantize, resolve, sasrec, synthetic, text_features,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        params = params_from_dict(raw)
        for stage in (synthetic, ingest, text_features, image_features, sasrec, quantize, resolve):
            stage.run(params)
    if "MMGENREC_CODED_DATA" in os.environ:
        shutil.copytree(root / "data", prebuilt)
    return raw, root


@pytest.fixture
def coded(coded_data, tmp_path, monkeypatch):
    raw, root = coded_data
    shutil.copytree(root / "data", tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    return copy.deepcopy(raw)


@pytest.fixture
def trained(coded):
    """`coded` with a one-epoch tiger model in data/model (evaluate: beam 12, 60 users)."""
    from pipeline.stages import train
    coded["train"].update(method="tiger", epochs=1)
    coded["evaluate"].update(beam=12, users=60)
    train.run(params_from_dict(coded))
    return coded
