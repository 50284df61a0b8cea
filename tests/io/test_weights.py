"""Model files are safetensors + JSON: they round-trip, and a pickle in their place is refused
without running it."""
import os
import pickle
from pathlib import Path

import pytest
import torch

from pipeline.genrec.checkpoint import load_model
from pipeline.io.weights import load_weights, prefixed, save_weights
from pipeline.runtime.checkpoint import load_progress
from pipeline.runtime.errors import UserInputError


class _Payload:
    """Unpickling this runs a shell command that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_weights_and_metadata_round_trip(tmp_path):
    tensors = {"model.w": torch.arange(6.0).view(2, 3), "codes.text.items": torch.arange(4)}
    save_weights(tmp_path, "model", "x/1", tensors, {"n_items": 4})
    loaded, meta = load_weights(tmp_path, "model", "x/1", "dvc repro train")
    assert meta == {"format": "x/1", "n_items": 4}
    assert torch.equal(prefixed(loaded, "model")["w"], tensors["model.w"])
    assert sorted(loaded) == sorted(tensors)
    with pytest.raises(UserInputError, match="format 'x/1', not 'y/1'.*dvc repro train"):
        load_weights(tmp_path, "model", "y/1", "dvc repro train")


@pytest.mark.parametrize("name", ["model.safetensors", "model.pt"])
def test_a_pickle_in_place_of_the_model_is_refused_not_run(tmp_path, name):
    marker = tmp_path / "ran"
    (tmp_path / name).write_bytes(pickle.dumps(_Payload(marker)))
    (tmp_path / "model.json").write_text('{"format": "mmgenrec.genrec/1"}')
    with pytest.raises(UserInputError, match="dvc repro train"):
        load_model(tmp_path, torch.device("cpu"))
    assert not marker.exists()


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_resume_checkpoint_holding_code_is_refused_not_run(tmp_path, writer):
    marker, ckpt = tmp_path / "ran", tmp_path / "last.pt"
    if writer == "pickle":
        ckpt.write_bytes(pickle.dumps({"state": _Payload(marker)}))
    else:
        torch.save({"state": _Payload(marker)}, ckpt)
    with pytest.raises(UserInputError, match="delete it"):
        load_progress(ckpt, {}, torch.Generator())
    assert not marker.exists()
