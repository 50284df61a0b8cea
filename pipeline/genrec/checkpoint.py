"""The trained recommender's file (`<paths.model>/model.pt`): the kept weights, the model
config, the train params and the semantic IDs, so it rebuilds without params.yaml."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from pipeline.config import TrainParams, section_from_dict
from pipeline.genrec.catalog import Catalog, build_catalog
from pipeline.models.genrec import GenRec, GenRecConfig
from pipeline.runtime.checkpoint import plain
from pipeline.runtime.errors import UserInputError


def save_model(path: Path, state: dict, model_cfg: GenRecConfig, cfg: TrainParams,
               n_items: int, codes: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write the recommender atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "config": dataclasses.asdict(model_cfg),
                "train": plain(dataclasses.asdict(cfg)), "n_items": n_items,
                "codes": dict(codes)}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


class Loaded(NamedTuple):
    """A trained recommender, in eval mode, with its catalogue and train params."""
    model: GenRec
    catalog: Catalog
    cfg: TrainParams


def load_model(path: str | Path, device: torch.device) -> Loaded:
    """Rebuild the trained recommender from its checkpoint alone."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"no trained model at {path}: run the train stage first "
                             f"(dvc repro train)")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    cfg = section_from_dict(TrainParams, saved["train"], "train")
    model = GenRec(GenRecConfig(**saved["config"]))
    model.load_state_dict(saved["model"])
    catalog = build_catalog(saved["codes"], saved["n_items"], cfg)
    return Loaded(model.to(device).eval(), catalog, cfg)
