"""Model files without pickle: `<name>.safetensors` (tensors only) beside `<name>.json` (the
config and metadata), the Hugging Face convention. Loading them never runs code."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pipeline.io.tables import atomic_path
from pipeline.runtime.errors import UserInputError


def save_weights(folder: Path, name: str, fmt: str, tensors: dict[str, torch.Tensor],
                 meta: dict) -> None:
    """Write `<folder>/<name>.safetensors` and `<name>.json` (each atomically; write them
    inside `tables.atomic_dir` to swap both at once). The JSON holds `meta` (JSON-serialisable)
    and `"format": fmt`, which `load_weights` checks."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / f"{name}.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    with atomic_path(folder / f"{name}.json") as tmp:
        tmp.write_text(json.dumps({**meta, "format": fmt}, indent=2, sort_keys=True) + "\n",
                       encoding="utf-8")


def load_weights(folder: Path, name: str, fmt: str,
                 rerun: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors on the CPU, metadata) of `<folder>/<name>`. A missing or unreadable file, one
    of another format than `fmt`, or a pickle-era `<name>.pt` alone, is a UserInputError that
    says to run `rerun`."""
    weights, meta = folder / f"{name}.safetensors", folder / f"{name}.json"
    if not weights.is_file() or not meta.is_file():
        old = folder / f"{name}.pt"
        why = (f"{old} is a model file of an older version (a pickle, which is not loaded "
               f"because it could run code)" if old.is_file() else
               f"no {weights.name} and {meta.name} in {folder}")
        raise UserInputError(f"{why}: run `{rerun}` to write it again")
    try:
        tensors, saved = load_file(str(weights)), json.loads(meta.read_text(encoding="utf-8"))
    except (SafetensorError, json.JSONDecodeError, OSError) as exc:
        raise UserInputError(f"{weights} or {meta.name} is not a valid model file ({exc}): "
                             f"run `{rerun}` to write it again") from exc
    if saved.get("format") != fmt:
        raise UserInputError(f"{meta} has format {saved.get('format')!r}, not {fmt!r}: run "
                             f"`{rerun}` to write it again")
    return tensors, saved


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix.`, with the prefix removed."""
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
