"""DVC stage `ingest`: raw dataset files -> validated Parquet tables and the leave-one-out split.

Outputs in `paths.ingest`: items, users, interactions and sequences tables (schemas in
`pipeline.io.tables`) and `codes/<modality>.parquet` for semantic IDs imported from a `prepared`
dataset. Metrics: counts before and after every filter and every skipped row by reason.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from pipeline.io import tables
from pipeline.config import MissingMetadata, Params
from pipeline.core.interactions import kcore, leave_one_out
from pipeline.core.text import compose_text
from pipeline.runtime.progress import bar
from pipeline.runtime.stage import stage_main
from pipeline.sources import load_source
from pipeline.sources.common import IngestError, RawDataset, RawItem, check_image


def run(params: Params) -> dict:
    cfg = params.ingest
    raw = load_source(params)
    metrics: dict[str, int] = {"raw/catalogue_items": len(raw.items)}
    df = pl.DataFrame({"user": raw.interactions.users, "item": raw.interactions.items,
                       "timestamp": raw.interactions.timestamps},
                      schema={"user": pl.String, "item": pl.String, "timestamp": pl.Int64})
    df = df.with_row_index("seq")  # file order: the stable tie-break for equal timestamps
    _count(metrics, "raw", df, "the raw files")

    known = pl.Series(list(raw.items), dtype=pl.String)
    unknown = df.filter(~pl.col("item").is_in(known.implode()))["item"].unique()
    metrics["metadata/items_without_metadata"] = len(unknown)
    if cfg.missing_metadata is MissingMetadata.DROP:
        df = df.filter(pl.col("item").is_in(known.implode()))
    else:
        for item in sorted(unknown.to_list()):
            raw.items[item] = RawItem(original_id=item)
    _count(metrics, "metadata", df, f"ingest.missing_metadata={cfg.missing_metadata}")

    # Keep each user's earliest interaction with an item.
    df = df.sort(["timestamp", "seq"]).unique(["user", "item"], keep="first", maintain_order=True)
    _count(metrics, "dedup", df, "dropping repeated user-item pairs")

    users = df["user"].rank("dense").cast(pl.Int64).to_numpy() - 1
    items = df["item"].rank("dense").cast(pl.Int64).to_numpy() - 1
    core = kcore(users, items, cfg.user_k, cfg.item_k)
    df = df.filter(pl.Series(core.keep))
    metrics["kcore/iterations"] = core.iterations
    _count(metrics, "kcore", df, f"the k-core filter (ingest.user_k={cfg.user_k}, "
                                 f"ingest.item_k={cfg.item_k})")

    user_order = df["user"].unique(maintain_order=True).to_list()  # by first interaction
    surviving = set(df["item"].unique().to_list())
    item_order = [item for item in raw.items if item in surviving]
    df = df.with_columns(
        user_id=pl.col("user").replace_strict(user_order, range(len(user_order)),
                                              return_dtype=pl.Int64),
        item_id=pl.col("item").replace_strict(item_order, range(len(item_order)),
                                              return_dtype=pl.Int64),
    ).sort(["user_id", "timestamp", "seq"])

    with tables.atomic_dir(params.paths.ingest) as out:
        _write_users(out, user_order)
        metrics |= _write_items(out, raw, item_order, params)
        tables.write_table(df.select("user_id", "item_id", "timestamp").to_arrow(),
                           out / "interactions.parquet", tables.INTERACTIONS)
        _write_sequences(out, df, cfg.max_history)
        metrics |= _write_codes(out, raw, item_order)
        tables.write_source_rows(out, raw.rows)
    metrics |= {f"skipped/{_metric_key(reason)}": n for reason, n in sorted(raw.skipped.items())}
    metrics["final/users"] = len(user_order)
    metrics["final/items"] = len(item_order)
    metrics["final/interactions"] = df.height
    return metrics


def _count(metrics: dict, step: str, df: pl.DataFrame, cause: str) -> None:
    metrics[f"{step}/interactions"] = df.height
    metrics[f"{step}/users"] = df["user"].n_unique()
    metrics[f"{step}/items"] = df["item"].n_unique()
    if df.height == 0:
        raise IngestError(f"no interactions left after {cause}; "
                          f"counts so far: {metrics}")


def _write_users(out: Path, user_order: list[str]) -> None:
    table = pa.table({"user_id": np.arange(len(user_order), dtype=np.int64),
                      "original_id": user_order})
    tables.write_table(table, out / "users.parquet", tables.USERS)


def _write_items(out: Path, raw: RawDataset, item_order: list[str], params: Params) -> dict:
    cfg = params.ingest
    fields = tuple(cfg.text_fields)
    rows = {name: [] for name in tables.ITEMS.names}
    statuses = {status: 0 for status in tables.IMAGE_STATUSES}
    root = Path.cwd()
    for item_id, original in enumerate(bar(item_order, desc="ingest: items", unit="item",
                                           mininterval=2.0)):
        item = raw.items[original]
        values = {"title": item.title, "description": item.description, "brand": item.brand,
                  "categories": ", ".join(item.categories)}
        ref, status = check_image(item.image_ref, raw.image_base, root)
        statuses[status] += 1
        for name, value in (("item_id", item_id), ("original_id", original),
                            ("title", item.title), ("description", item.description),
                            ("brand", item.brand), ("categories", list(item.categories)),
                            ("text", compose_text(values, fields, cfg.text_separator)),
                            ("image_ref", ref), ("image_status", status)):
            rows[name].append(value)
    tables.write_table(pa.table(rows), out / "items.parquet", tables.ITEMS)
    empty = sum(1 for text in rows["text"] if not text)
    return {"items/empty_text": empty, **{f"images/{k}": v for k, v in statuses.items()}}


def _write_sequences(out: Path, df: pl.DataFrame, max_history: int) -> None:
    split = leave_one_out(df["user_id"].to_numpy(), df["item_id"].to_numpy(), max_history)
    table = pa.table({"user_id": split.user_id, "train_items": split.train_items,
                      "valid_history": split.valid_history, "valid_item": split.valid_item,
                      "test_history": split.test_history, "test_item": split.test_item})
    tables.write_table(table, out / "sequences.parquet", tables.SEQUENCES)


def _write_codes(out: Path, raw: RawDataset, item_order: list[str]) -> dict:
    """Imported semantic IDs, one table per modality, for the items that survived filtering,
    and `codes/index.json` naming them (empty for sources without codes). The index keeps the
    folder non-empty: DVC does not restore an empty folder when it checks `ingest` out (as
    `dvc exp run` does), and `quantize` depends on this one."""
    (out / "codes").mkdir()
    metrics, index = {}, {}
    for modality, codes in sorted(raw.codes.items()):
        present = [(i, codes[orig]) for i, orig in enumerate(item_order) if orig in codes]
        if not present:
            raise IngestError(f"imported {modality} codes cover none of the {len(item_order)} items")
        tables.write_codes(out / "codes" / f"{modality}.parquet", [i for i, _ in present],
                           np.array([c for _, c in present], dtype=np.int64))
        metrics[f"codes/{modality}_items"] = len(present)
        metrics[f"codes/{modality}_missing"] = len(item_order) - len(present)
        index[modality] = {"items": len(present), "levels": len(present[0][1])}
    tables.write_json({"modalities": index}, out / "codes" / "index.json")
    return metrics


def _metric_key(reason: str) -> str:
    # MLflow accepts letters, digits, '_', '-', '.', ' ', '/' in metric names.
    return re.sub(r"[^\w.\-/]", "_", reason.replace(":", "/"))


def main() -> int:
    return stage_main("ingest", run)


if __name__ == "__main__":
    sys.exit(main())
