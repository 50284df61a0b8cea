"""What every quantizer shares: its output per modality and its inputs (the item vectors of
the feature stages)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from pipeline.config import Params
from pipeline.core.resolve import RESOLVE_LEVELS, ResolveDists, colliding_rows
from pipeline.io.embeddings import read_embeddings


class Quantized(NamedTuple):
    """The raw semantic IDs of one modality."""
    item_ids: np.ndarray         # (N,) items that have codes
    codes: np.ndarray            # (N, L) int64, code of each level
    dists: ResolveDists | None   # the colliding items' distances (learned codebooks)
    history: list[dict]          # one record per training epoch (empty when not trained)


class Coded(NamedTuple):
    """What a fitted quantizer hands on for one modality."""
    codes: torch.Tensor          # (N, L) int64, code of each level
    dists: ResolveDists          # the colliding items' distances (for `resolve`)


class Quantizer(NamedTuple):
    """A registered method. `fit(modalities, params)` returns each modality's codes. A
    per-modality quantizer (`joint` False) is called once per modality, in params.yaml order;
    a joint one once, after them, with every modality that names it, or, when fewer than
    two of them have items, `alone` for the one left."""
    fit: Callable[[list[str], Params], dict[str, Quantized]]
    joint: bool = False
    alone: Callable[[list[str], Params], dict[str, Quantized]] | None = None
    vectors: bool = True         # reads `<paths.features>/<modality>.parquet`


def item_vectors(params: Params, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 vectors of the items that have one and their (N,) item ids, from
    `<paths.features>/<name>.parquet`."""
    vectors, present = read_embeddings(Path(params.paths.features) / f"{name}.parquet")
    return (vectors if present.all() else vectors[present]), np.flatnonzero(present)


def training_input(params: Params, name: str) -> tuple[torch.Tensor, np.ndarray]:
    """`item_vectors`, standardised when `quantize.standardize` is set, as a tensor."""
    x, item_ids = item_vectors(params, name)
    return torch.from_numpy(standardize(x) if params.quantize.standardize else x), item_ids


def quantized(item_ids: np.ndarray, out: Coded, history: list[dict]) -> Quantized:
    return Quantized(item_ids, out.codes.numpy(), out.dists, history)


def distances_of(model, x: torch.Tensor, codes: torch.Tensor
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    """`rows -> model.distances(x[rows], codes[rows])` for `with_dists`, on x's device."""
    return lambda rows: model.distances(x[rows.to(x.device)], codes[rows.to(codes.device)])


def with_dists(codes: torch.Tensor, distances: Callable[[torch.Tensor], torch.Tensor],
               chunk: int = 1 << 16) -> Coded:
    """The output of a learned codebook, with what `resolve` needs: `distances(rows)` ((M,)
    int64 row numbers -> (M, L, K) distances to every codeword) evaluated for the colliding
    rows of the (N, L) codes only, `chunk` rows at a time, keeping the last RESOLVE_LEVELS
    levels."""
    codes = codes.cpu()
    rows = colliding_rows(codes.numpy())
    parts = []
    with torch.no_grad():
        for lo in range(0, max(len(rows), 1), chunk):
            part = distances(torch.from_numpy(rows[lo:lo + chunk]))[:, -RESOLVE_LEVELS:]
            parts.append(part.cpu().numpy().astype(np.float32))
    return Coded(codes, ResolveDists(rows, np.concatenate(parts)))


def standardize(x: np.ndarray, block: int = 32) -> np.ndarray:
    """Per-dimension zero mean and unit variance of (N, D) float32 vectors, in place (constant
    dims kept at 0); returns x. The statistics are taken `block` columns at a time (the same
    bits as over the whole array, without an N x D temporary)."""
    columns = range(0, x.shape[1], block)
    mean = np.concatenate([x[:, c:c + block].mean(axis=0) for c in columns])
    std = np.concatenate([x[:, c:c + block].std(axis=0) for c in columns])
    x -= mean
    x /= np.where(std > 0, std, 1.0)
    return x
