"""DVC stage `text_features`: the items' text -> `<paths.features>/text.parquet`, one vector per
item (null for items with empty text), aligned row-for-row with the items table."""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.io import tables
from pipeline.config import Params
from pipeline.encoders.text import TextEncoder
from pipeline.encoders.extraction import Extraction, extract_resumable, shard_argument, shard_main
from pipeline.io.embeddings import coverage_metrics, load_precomputed, write_embeddings
from pipeline.runtime.checkpoint import fingerprint
from pipeline.runtime.devices import resolve_device, resolve_dtype
from pipeline.runtime.stage import stage_main


def run(params: Params) -> dict:
    cfg = params.text_features
    items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS)
    texts = items.column("text").to_pylist()
    start = time.perf_counter()
    if cfg.precomputed is not None:
        vectors, status = load_precomputed(cfg.precomputed, cfg.precomputed_ids,
                                           items.column("original_id").to_pylist(),
                                           tables.read_source_rows(params.paths.ingest))
    else:
        job = extraction(params, texts)
        present = np.array([bool(t) for t in texts])
        vectors = np.full((len(texts), job.dim), np.nan, dtype=np.float32)
        vectors[present] = extract_resumable(*job)
        status = ["ok" if p else "empty_text" for p in present]
    seconds = time.perf_counter() - start
    write_embeddings(Path(params.paths.features) / "text.parquet", vectors, status)
    return coverage_metrics(status, vectors.shape[1], seconds)


def extraction(params: Params, texts: list[str]) -> Extraction:
    """The non-empty texts, the encoder, and the work folder named by config + texts."""
    cfg = params.text_features
    device = resolve_device(cfg.device)
    encoder = TextEncoder(cfg.model, cfg.revision, cfg.pooling, cfg.normalize,
                          cfg.max_length, device, resolve_dtype(cfg.dtype, device))
    todo = [t for t in texts if t]
    work = Path(params.paths.work) / "text_features" / fingerprint(dataclasses.asdict(cfg), todo)
    return Extraction(todo, encoder, encoder.dim, work, cfg.batch_size, "text_features")


def _shard_plan(params: Params) -> Extraction | None:
    if params.text_features.precomputed is not None:
        return None
    items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS)
    return extraction(params, items.column("text").to_pylist())


def main(argv: list[str] | None = None) -> int:
    shard = shard_argument(argv)
    if shard is not None:
        return shard_main("text_features", _shard_plan, shard)
    return stage_main("text_features", run)


if __name__ == "__main__":
    sys.exit(main())
