"""What the feature stages share: device choice, resumable batched extraction, precomputed
embeddings, and the embedding table writer."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from pipeline import tables
from pipeline.errors import UserInputError


class FeatureError(UserInputError):
    """A feature extractor cannot run as configured (model not available, bad file)."""


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when there is one; `cuda` without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FeatureError("device 'cuda' requested but torch sees no GPU; use 'auto' or 'cpu'")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    if dtype is torch.float16 and device.type == "cpu":
        raise FeatureError("dtype float16 is not supported on the CPU; use float32 or bfloat16")
    return dtype


def fingerprint(*parts: object) -> str:
    """A short stable hash of the config and the inputs: names the resumable work folder."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def extract_resumable(inputs: Sequence, encode: Callable[[Sequence], np.ndarray], dim: int,
                      work_dir: Path, batch_size: int, desc: str) -> np.ndarray:
    """Encode `inputs` in batches into an (N, dim) float32 array, resumably.

    Every chunk of batches is saved under `work_dir` as soon as it is done; a rerun after an
    interruption loads finished chunks instead of recomputing them. `work_dir` must be unique
    to the config and inputs (see `fingerprint`); it is deleted once everything is encoded.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    chunk = batch_size * 8
    out = np.empty((len(inputs), dim), dtype=np.float32)
    bar = tqdm(total=len(inputs), desc=desc, unit="item", disable=None, mininterval=2.0)
    for index, start in enumerate(range(0, len(inputs), chunk)):
        stop = min(start + chunk, len(inputs))
        path = work_dir / f"chunk_{index:06d}.npy"
        if path.is_file():
            out[start:stop] = np.load(path)
        else:
            for b in range(start, stop, batch_size):
                out[b:min(b + batch_size, stop)] = encode(inputs[b:min(b + batch_size, stop)])
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, out[start:stop])
            os.replace(tmp, path)
        bar.update(stop - start)
    bar.close()
    shutil.rmtree(work_dir)
    return out


def load_precomputed(npy: str, ids_file: str | None, original_ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """Embeddings a user computed elsewhere: `npy` rows in the order of `ids_file` (one
    original item id per line; without it, rows must follow the items table order)."""
    matrix = np.load(npy, mmap_mode="r")
    if matrix.ndim != 2:
        raise FeatureError(f"{npy}: expected a 2-D array (items x dim), got shape {matrix.shape}")
    if ids_file is None:
        if len(matrix) != len(original_ids):
            raise FeatureError(f"{npy}: {len(matrix)} rows but {len(original_ids)} items; give "
                               "an ids file (precomputed_ids) to align them")
        return np.asarray(matrix, dtype=np.float32), ["ok"] * len(original_ids)
    ids = Path(ids_file).read_text(encoding="utf-8").split()
    if len(ids) != len(matrix):
        raise FeatureError(f"{ids_file}: {len(ids)} ids for {len(matrix)} rows of {npy}")
    row_of = {item: row for row, item in enumerate(ids)}
    out = np.full((len(original_ids), matrix.shape[1]), np.nan, dtype=np.float32)
    status = []
    for i, item in enumerate(original_ids):
        if item in row_of:
            out[i] = matrix[row_of[item]]
            status.append("ok")
        else:
            status.append("not_in_precomputed")
    return out, status


def coverage_metrics(status: list[str], dim: int, seconds: float) -> dict:
    """Items covered / missing (by reason), the dimension and the throughput."""
    covered = sum(s == "ok" for s in status)
    out = {"items": len(status), "covered": covered, "missing": len(status) - covered,
           "dim": dim, "seconds": round(seconds, 3),
           "items_per_s": round(covered / seconds, 2) if seconds > 0 else 0.0}
    for reason in sorted(set(status) - {"ok"}):
        out[f"missing/{reason}"] = status.count(reason)
    return out


def write_embeddings(path: Path, vectors: np.ndarray, status: list[str]) -> None:
    """(N, D) vectors, row i = item i; rows whose status is not "ok" are stored as NaN."""
    n, dim = vectors.shape
    valid = np.array([s == "ok" for s in status], dtype=bool)
    if not np.isfinite(vectors[valid]).all():
        raise FeatureError(f"{path}: non-finite values in computed embeddings")
    vectors = np.where(valid[:, None], vectors, np.nan).astype(np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)
    table = pa.table({"item_id": pa.array(np.arange(n), pa.int64()), "embedding": column,
                      "status": status})
    tables.write_table(table, path, tables.embeddings_schema(dim))


def read_embeddings(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 vectors (NaN rows where missing) and the (N,) bool mask of present rows."""
    dim = pq.read_schema(path).field("embedding").type.list_size
    table = tables.read_table(path, tables.embeddings_schema(dim))
    flat = table.column("embedding").combine_chunks().flatten().to_numpy()
    present = np.array([s == "ok" for s in table.column("status").to_pylist()], dtype=bool)
    return flat.astype(np.float32).reshape(table.num_rows, dim), present
