"""Resumable training: the per-epoch checkpoint every training stage writes and reloads.

A checkpoint holds the `state_dict` of each named object (model, optimizer, scheduler), the
data-order generator, torch's global RNG (dropout, initialisation) and the loop's own `state`
mapping, so a resumed run continues exactly where the interrupted one stopped.
"""
from __future__ import annotations

from pathlib import Path

import torch


def save_progress(path: Path, state: dict, stateful: dict, generator: torch.Generator) -> None:
    """Write the checkpoint atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**{name: obj.state_dict() for name, obj in stateful.items()},
                "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                "state": state}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def load_progress(path: Path, stateful: dict, generator: torch.Generator) -> dict:
    """Restore every object and RNG from `path`; returns the saved loop `state`."""
    saved = torch.load(path, weights_only=False)
    for name, obj in stateful.items():
        obj.load_state_dict(saved[name])
    generator.set_state(saved["generator"])
    torch.set_rng_state(saved["torch_rng"])
    return saved["state"]
