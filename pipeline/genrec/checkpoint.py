"""The trained recommender's files in `<paths.model>/`: `model.safetensors` (the kept weights
under `model.`, each modality's item ids and semantic IDs under `codes.<modality>.`) and
`model.json` (model config, train params, catalogue size), so it rebuilds without params.yaml
and without unpickling anything."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from pipeline.config import TrainParams, section_from_dict
from pipeline.genrec.catalog import Catalog, build_catalog
from pipeline.io.weights import load_weights, prefixed, save_weights
from pipeline.models.genrec import GenRec, GenRecConfig
from pipeline.runtime.checkpoint import plain

FORMAT = "mmgenrec.genrec/1"
RERUN = "dvc repro train"


def save_model(folder: Path, state: dict, model_cfg: GenRecConfig, cfg: TrainParams,
               n_items: int, codes: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write the recommender into `folder` (use `tables.atomic_dir` to swap it in whole)."""
    tensors = {f"model.{k}": v for k, v in state.items()}
    for m, (ids, c) in codes.items():
        # copies: the code tables arrive as read-only views of Arrow buffers
        tensors[f"codes.{m}.items"] = torch.tensor(np.asarray(ids, dtype=np.int64))
        tensors[f"codes.{m}.codes"] = torch.tensor(np.asarray(c, dtype=np.int64))
    save_weights(folder, "model", FORMAT, tensors, {
        "config": dataclasses.asdict(model_cfg), "train": plain(dataclasses.asdict(cfg)),
        "n_items": n_items, "modalities": list(codes)})


class Loaded(NamedTuple):
    """A trained recommender, in eval mode, with its catalogue and train params."""
    model: GenRec
    catalog: Catalog
    cfg: TrainParams


def load_model(folder: str | Path, device: torch.device) -> Loaded:
    """Rebuild the trained recommender from its folder alone, model and catalogue on
    `device` (a model trained on a GPU loads on a CPU-only machine too)."""
    tensors, meta = load_weights(Path(folder), "model", FORMAT, RERUN)
    cfg = section_from_dict(TrainParams, meta["train"], "train")
    model = GenRec(GenRecConfig(**meta["config"]))
    model.load_state_dict(prefixed(tensors, "model"))
    stored = {m: prefixed(tensors, f"codes.{m}") for m in meta["modalities"]}
    codes = {m: (t["items"].numpy(), t["codes"].numpy()) for m, t in stored.items()}
    catalog = build_catalog(codes, meta["n_items"], cfg)
    return Loaded(model.to(device).eval(), catalog.to(device), cfg)
