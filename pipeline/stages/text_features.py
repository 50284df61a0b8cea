"""DVC stage `text_features`: the items' text -> `<paths.features>/text.parquet`, one vector per
item (null for items with empty text), aligned row-for-row with the items table."""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from pipeline import tables
from pipeline.config import Params
from pipeline.encoders.text import TextEncoder
from pipeline.features import (
    coverage_metrics, extract_resumable, fingerprint, load_precomputed, resolve_device,
    resolve_dtype, write_embeddings,
)
from pipeline.runner import stage_main


def run(params: Params) -> dict:
    cfg = params.text_features
    items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS)
    texts = items.column("text").to_pylist()
    start = time.perf_counter()
    if cfg.precomputed is not None:
        vectors, status = load_precomputed(cfg.precomputed, cfg.precomputed_ids,
                                           items.column("original_id").to_pylist())
    else:
        device = resolve_device(cfg.device.value)
        encoder = TextEncoder(cfg.model, cfg.revision, cfg.pooling.value, cfg.normalize,
                              cfg.max_length, device, resolve_dtype(cfg.dtype.value, device))
        present = np.array([bool(t) for t in texts])
        todo = [t for t in texts if t]
        work = Path(params.paths.work) / "text_features" / fingerprint(
            dataclasses.asdict(cfg), todo)
        vectors = np.full((len(texts), encoder.dim), np.nan, dtype=np.float32)
        vectors[present] = extract_resumable(todo, encoder, encoder.dim, work, cfg.batch_size,
                                             "text_features")
        status = ["ok" if p else "empty_text" for p in present]
    seconds = time.perf_counter() - start
    write_embeddings(Path(params.paths.features) / "text.parquet", vectors, status)
    return coverage_metrics(status, vectors.shape[1], seconds)


def main() -> int:
    return stage_main("text_features", run)


if __name__ == "__main__":
    sys.exit(main())
