"""Resumable work: the per-epoch checkpoint every training stage writes and reloads, and the
fingerprint that names a resumable work folder.

A checkpoint holds the `state_dict` of each named object (model, optimizer, scheduler), the
data-order generator, torch's global RNGs (CPU and CUDA: dropout, initialisation) and the loop's own `state`
mapping, so a resumed run continues exactly where the interrupted one stopped.
"""
from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import torch

from pipeline.runtime.errors import UserInputError


def save_progress(path: Path, state: dict, stateful: dict, generator: torch.Generator) -> None:
    """Write the checkpoint atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**{name: obj.state_dict() for name, obj in stateful.items()},
                "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                # dropout on a GPU draws from CUDA's generators
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
                "state": state}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def load_progress(path: Path, stateful: dict, generator: torch.Generator) -> dict:
    """Restore every object and RNG from `path`; returns the saved loop `state`. The file is
    read with `weights_only=True` (tensors and plain containers, never code); one that holds
    anything else is refused with a UserInputError."""
    try:
        saved = torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserInputError(f"{path} is not a resume checkpoint this version wrote (it holds "
                             f"more than tensors and plain values, and is not loaded): delete "
                             f"it to start the run over") from exc
    for name, obj in stateful.items():
        obj.load_state_dict(saved[name])
    generator.set_state(saved["generator"])
    torch.set_rng_state(saved["torch_rng"])
    if saved.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    return saved["state"]


def fingerprint(*parts: object) -> str:
    """A short stable hash of the config and the inputs: names the resumable work folder."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def plain(obj):
    """asdict output with enums as their values (JSON- and torch.load-friendly)."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return getattr(obj, "value", obj)
