"""Item embedding tables (`<paths.features>/<modality>.parquet`: row i = item i, NaN rows and a
status where an item has no vector) and embeddings a user computed elsewhere."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.io import tables
from pipeline.runtime.errors import FeatureError


def load_precomputed(npy: str, ids_file: str | None, original_ids: list[str],
                     source_rows: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Embeddings a user computed elsewhere, aligned to the items table (`original_ids`).

    The rows of `npy` belong to: the ids in `ids_file` (one original item id per line), else
    `source_rows` (a `prepared` folder's item order: row i = item index i, as the published
    `<name>.emb-*.npy` files are laid out), else the items table's own rows. Items without a
    row are marked `not_in_precomputed`."""
    matrix = np.load(npy, mmap_mode="r")
    if matrix.ndim != 2:
        raise FeatureError(f"{npy}: expected a 2-D array (items x dim), got shape {matrix.shape}")
    if ids_file is not None:
        ids = Path(ids_file).read_text(encoding="utf-8").split()
        if len(ids) != len(matrix):
            raise FeatureError(f"{ids_file}: {len(ids)} ids for {len(matrix)} rows of {npy}")
    elif source_rows is not None:
        ids = source_rows
        if len(ids) != len(matrix):
            raise FeatureError(f"{npy}: {len(matrix)} rows but the prepared dataset has "
                               f"{len(ids)} items (row i must be item index i); give an ids "
                               "file (precomputed_ids) to align them")
    else:
        if len(matrix) != len(original_ids):
            raise FeatureError(f"{npy}: {len(matrix)} rows but {len(original_ids)} items; give "
                               "an ids file (precomputed_ids) to align them")
        return np.asarray(matrix, dtype=np.float32), ["ok"] * len(original_ids)
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
           "dim": dim, "timing/seconds": round(seconds, 3),
           "timing/items_per_s": round(covered / seconds, 2) if seconds > 0 else 0.0}
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
    """(N, D) float32 vectors (NaN rows where missing) and the (N,) bool mask of present rows,
    read a row group at a time into the one array: the peak memory is the array and a row
    group, not the table's copies and a Python string per row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path} (has its stage run?)")
    parquet = pq.ParquetFile(path, pre_buffer=False)    # pre-buffering keeps the whole file
    dim = parquet.schema_arrow.field("embedding").type.list_size
    schema = tables.embeddings_schema(dim)
    vectors = np.empty((parquet.metadata.num_rows, dim), dtype=np.float32)
    present = np.empty(parquet.metadata.num_rows, dtype=bool)
    row = 0
    for group in range(parquet.metadata.num_row_groups):
        part = parquet.read_row_group(group)
        tables.validate(part, schema, str(path))
        rows = slice(row, row + part.num_rows)
        vectors[rows] = part.column("embedding").combine_chunks().flatten().to_numpy(
            zero_copy_only=False).reshape(part.num_rows, dim)
        present[rows] = pc.equal(part.column("status"), "ok").to_numpy(zero_copy_only=False)
        row += part.num_rows
    return vectors, present


def count_present(path: Path) -> tuple[int, int]:
    """(items with a vector, items) of an embeddings table, from its status column alone."""
    status = pq.read_table(Path(path), columns=["status"]).column("status")
    return int(pc.sum(pc.equal(status, "ok")).as_py() or 0), len(status)
