"""Schemas of every Parquet table the pipeline writes, and validated, atomic I/O.

A table is checked against its schema on write and on read: the same column names in the same
order, the same types, and no nulls in a non-nullable column. Writes go to a temporary file in
the destination folder and are renamed into place, so a crash never leaves a half-written table.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.runtime.errors import UserInputError


class SchemaError(UserInputError, ValueError):
    """A table does not match the schema declared for it."""


ITEMS = pa.schema([
    pa.field("item_id", pa.int64(), nullable=False),
    pa.field("original_id", pa.string(), nullable=False),
    pa.field("title", pa.string(), nullable=False),
    pa.field("description", pa.string(), nullable=False),
    pa.field("brand", pa.string(), nullable=False),
    pa.field("categories", pa.list_(pa.string()), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    # A local path (relative to the project root when inside it) or a URL; null when the
    # metadata names no image.
    pa.field("image_ref", pa.string(), nullable=True),
    # One of IMAGE_STATUSES.
    pa.field("image_status", pa.string(), nullable=False),
])

IMAGE_STATUSES = ("local", "remote", "missing", "unreadable", "absent")

USERS = pa.schema([
    pa.field("user_id", pa.int64(), nullable=False),
    pa.field("original_id", pa.string(), nullable=False),
])

INTERACTIONS = pa.schema([
    pa.field("user_id", pa.int64(), nullable=False),
    pa.field("item_id", pa.int64(), nullable=False),
    pa.field("timestamp", pa.int64(), nullable=False),
])

# Leave-one-out split, one row per user. `train_items` is the whole training part (every prefix
# is a training sample); the two histories are capped at `ingest.max_history` items.
SEQUENCES = pa.schema([
    pa.field("user_id", pa.int64(), nullable=False),
    pa.field("train_items", pa.list_(pa.int64()), nullable=False),
    pa.field("valid_history", pa.list_(pa.int64()), nullable=False),
    pa.field("valid_item", pa.int64(), nullable=False),
    pa.field("test_history", pa.list_(pa.int64()), nullable=False),
    pa.field("test_item", pa.int64(), nullable=False),
])


def codes_schema(levels: int) -> pa.Schema:
    """Semantic-ID table: one fixed-length integer code list per item."""
    return pa.schema([
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("codes", pa.list_(pa.int32(), levels), nullable=False),
    ])


def predictions_schema(k: int) -> pa.Schema:
    """Per-user top-k of the `evaluate` stage; items -1 / scores -inf where fewer exist."""
    return pa.schema([
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("target", pa.int64(), nullable=False),
        pa.field("items", pa.list_(pa.int64(), k), nullable=False),
        pa.field("scores", pa.list_(pa.float32(), k), nullable=False),
    ])


def write_codes(path: str | Path, item_ids, codes) -> None:
    """Write (N,) item ids and (N, L) integer codes as a semantic-ID table."""
    codes = np.asarray(codes)
    table = pa.table({"item_id": pa.array(np.asarray(item_ids), pa.int64()),
                      "codes": pa.FixedSizeListArray.from_arrays(
                          pa.array(codes.reshape(-1), pa.int32()), codes.shape[1])})
    write_table(table, path, codes_schema(codes.shape[1]))


def read_codes(path: str | Path):
    """(N,) int64 item ids and (N, L) int64 codes of a semantic-ID table."""
    levels = pq.read_schema(path).field("codes").type.list_size
    table = read_table(path, codes_schema(levels))
    flat = table.column("codes").combine_chunks().flatten().to_numpy()
    return table.column("item_id").to_numpy(), flat.astype(np.int64).reshape(-1, levels)


def write_resolve_dists(folder: Path, name: str, item_ids: np.ndarray,
                        values: np.ndarray) -> None:
    """`<name>_dists.npy` (M, J, K) float32, the colliding items' distances to the codewords of
    the last levels, and `<name>_dist_items.npy` (M,) int64, those items' ids (np.save: no
    pickle, byte-identical on a re-run)."""
    np.save(folder / f"{name}_dists.npy", np.asarray(values, dtype=np.float32))
    np.save(folder / f"{name}_dist_items.npy", np.asarray(item_ids, dtype=np.int64))


def read_resolve_dists(folder: Path, name: str,
                       item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The files of `write_resolve_dists` as ((M,) row numbers in the code table whose (N,)
    item ids are given, (M, J, K) distances), or None when the modality has none (imported
    codes)."""
    values_path, items_path = folder / f"{name}_dists.npy", folder / f"{name}_dist_items.npy"
    if not values_path.is_file():
        return None
    values = np.load(values_path, allow_pickle=False)
    items = np.load(items_path, allow_pickle=False)
    rows = np.searchsorted(item_ids, items)
    if len(items) != len(values) or (len(items) and (item_ids[np.minimum(
            rows, len(item_ids) - 1)] != items).any()):
        raise UserInputError(f"{values_path}: its items are not those of the code table; "
                             "re-run the quantize stage")
    return rows.astype(np.int64), values


def embeddings_schema(dim: int) -> pa.Schema:
    """One modality's item representations, row i = item i of the items table.

    `status` is "ok" where the item has a vector, else the reason it has none ("missing",
    "unreadable", "absent", "not_downloaded", "not_in_precomputed", "empty_text"); such rows
    hold NaN. (Parquet does not round-trip null fixed-size lists, hence NaN, not null.)
    """
    return pa.schema([
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
        pa.field("status", pa.string(), nullable=False),
    ])


def validate(table: pa.Table, schema: pa.Schema, name: str) -> None:
    """Raise SchemaError unless `table` has exactly `schema` and no nulls where forbidden."""
    _check_names_and_nulls(table, schema, name)
    for field in schema:
        actual = table.schema.field(field.name).type
        if actual != field.type:
            raise SchemaError(f"{name}: column '{field.name}' has type {actual}, "
                              f"expected {field.type}")


def _check_names_and_nulls(table: pa.Table, schema: pa.Schema, name: str) -> None:
    if table.schema.names != schema.names:
        raise SchemaError(f"{name}: columns {table.schema.names}, expected {schema.names}")
    for field in schema:
        nulls = table.column(field.name).null_count
        if not field.nullable and nulls:
            raise SchemaError(f"{name}: column '{field.name}' has {nulls} nulls")


# Rows per Parquet row group: readers that go a row group at a time (`read_embeddings`) hold
# 65,536 rows at once instead of up to pyarrow's default of 1Mi (1.5 GB of 384-d vectors).
ROW_GROUP_ROWS = 1 << 16


def write_table(table: pa.Table, path: str | Path, schema: pa.Schema) -> None:
    """Validate `table` against `schema` and write it to `path` atomically, in row groups of
    ROW_GROUP_ROWS."""
    path = Path(path)
    _check_names_and_nulls(table, schema, str(path))
    try:
        table = table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, TypeError) as exc:
        raise SchemaError(f"{path}: cannot cast to the declared schema: {exc}") from exc
    validate(table, schema, str(path))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)


def read_table(path: str | Path, schema: pa.Schema) -> pa.Table:
    """Read a Parquet table and check it against `schema`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path} (has its stage run?)")
    table = pq.read_table(path)
    validate(table, schema, str(path))
    return table.cast(schema)


def write_json(obj: object, path: str | Path) -> None:
    """Write `obj` as sorted, indented JSON, atomically (metrics files, reports)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


SKIPPED = "skipped.json"     # in codes/raw and codes/final: {modality: why it has no codes}


def read_skipped(folder: str | Path) -> dict[str, str]:
    """The modalities `quantize` left out of a codes folder, and why ({} when none)."""
    path = Path(folder) / SKIPPED
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


SOURCE_ROWS = "source_rows.json"


def write_source_rows(folder: Path, rows: list[str] | None) -> None:
    """`<paths.ingest>/source_rows.json`: the original item id of each row of the source's
    per-item files (null when the source has no row order)."""
    write_json({"original_ids": rows}, folder / SOURCE_ROWS)


def read_source_rows(folder: str | Path) -> list[str] | None:
    """What `write_source_rows` wrote; None for a source without a row order."""
    path = Path(folder) / SOURCE_ROWS
    return json.loads(path.read_text(encoding="utf-8"))["original_ids"] if path.is_file() else None


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary sibling to write; it replaces `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _drop_stale(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a whole output folder in a temporary sibling, then swap it into place.

    Readers never see a half-written folder: on an exception the previous folder (if any)
    is left untouched and the temporary one is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _drop_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _drop_stale(path: Path) -> None:
    """Remove the temporary siblings of `path` that a killed run left (one run writes a
    repository at a time: `flows.lock`)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
    shutil.rmtree(path.with_name(f".{path.name}.old"), ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
