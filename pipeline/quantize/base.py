"""What every quantizer shares: its output per modality and its inputs (the item vectors of
the feature stages)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from pipeline.config import Params
from pipeline.core.kmeans import QuantizeOutput
from pipeline.io.embeddings import read_embeddings


class Quantized(NamedTuple):
    """The raw semantic IDs of one modality."""
    item_ids: np.ndarray         # (N,) items that have codes
    codes: np.ndarray            # (N, L) int64, code of each level
    dists: np.ndarray | None     # (N, L, K) float32 distances to every code (learned codes)
    history: list[dict]          # one record per training epoch (empty when not trained)


class Quantizer(NamedTuple):
    """A registered method. `fit(modalities, params)` returns each modality's codes. A
    per-modality quantizer (`joint` False) is called once per modality, in params.yaml order;
    a joint one once, after them, with every modality that names it."""
    fit: Callable[[list[str], Params], dict[str, Quantized]]
    joint: bool = False


def item_vectors(params: Params, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 vectors of the items that have one and their (N,) item ids, from
    `<paths.features>/<name>.parquet`."""
    vectors, present = read_embeddings(Path(params.paths.features) / f"{name}.parquet")
    return vectors[present], np.flatnonzero(present)


def training_input(params: Params, name: str) -> tuple[torch.Tensor, np.ndarray]:
    """`item_vectors`, standardised when `quantize.standardize` is set, as a tensor."""
    x, item_ids = item_vectors(params, name)
    return torch.from_numpy(standardize(x) if params.quantize.standardize else x), item_ids


def quantized(item_ids: np.ndarray, out: QuantizeOutput, history: list[dict]) -> Quantized:
    return Quantized(item_ids, out.codes.numpy(), out.dists.numpy().astype(np.float32), history)


def standardize(x: np.ndarray) -> np.ndarray:
    """Per-dimension zero mean and unit variance of (N, D) vectors (constant dims kept at 0)."""
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)
