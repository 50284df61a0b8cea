"""DVC stage `image_features`: each item's image -> `<paths.features>/image.parquet`, one
vector per item; items whose image is absent, missing, not downloaded or unreadable get a
null vector and their reason in `status`. Remote images are first fetched into
`paths.image_cache` (`image_features.download`; `pipeline.io.downloads`): concurrent,
resumable, never fetched twice; offline, the stage goes on without them."""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.io import tables
from pipeline.config import Params
from pipeline.encoders import image as image_encoders
from pipeline.encoders.extraction import Extraction, extract_resumable, shard_argument, shard_main
from pipeline.io.downloads import fetch_images, remote_urls
from pipeline.io.embeddings import coverage_metrics, load_precomputed, write_embeddings
from pipeline.runtime.checkpoint import fingerprint
from pipeline.runtime.devices import resolve_device, resolve_dtype
from pipeline.io.images import image_path
from pipeline.runtime.stage import stage_main


def run(params: Params) -> dict:
    cfg = params.image_features
    items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS)
    start = time.perf_counter()
    fetched: dict[str, int] = {}
    if cfg.precomputed is not None:
        vectors, status = load_precomputed(cfg.precomputed, cfg.precomputed_ids,
                                           items.column("original_id").to_pylist(),
                                           tables.read_source_rows(params.paths.ingest))
    else:
        fetched = _download(params)
        job, status = extraction(params, items)
        vectors = np.full((len(status), job.dim), np.nan, dtype=np.float32)
        rows = np.flatnonzero(np.array(status) == "ok")
        vectors[rows] = extract_resumable(*job)
        # A file that passed ingest's header check can still fail to decode: it comes back NaN.
        for row in rows[np.isnan(vectors[rows]).any(axis=1)]:
            status[row] = "unreadable"
    seconds = time.perf_counter() - start
    write_embeddings(Path(params.paths.features) / "image.parquet", vectors, status)
    metrics = coverage_metrics(status, vectors.shape[1], seconds)
    return metrics | {f"download/{k}": v for k, v in fetched.items()}


def _download(params: Params) -> dict[str, int]:
    """Fetch the items' remote images not yet in the cache; returns the fetch's counts."""
    dl = params.image_features.download
    return fetch_images(remote_urls(Path(params.paths.ingest)), Path(params.paths.image_cache),
                        dl.connections, dl.timeout, dl.retries, progress="image_features download")


def extraction(params: Params, items) -> tuple[Extraction, list[str]]:
    """The items' image files that are present, the encoder, the work folder named by config
    + files (paths, sizes, modification times); and every item's image status."""
    cfg = params.image_features
    device = resolve_device(cfg.device)
    encoder = image_encoders.build(cfg.encoder, cfg.model, cfg.pretrained,
                                   cfg.revision, device, resolve_dtype(cfg.dtype, device))
    cache = Path(params.paths.image_cache)
    found = [image_path(ref, st, cache) for ref, st in zip(
        items.column("image_ref").to_pylist(), items.column("image_status").to_pylist())]
    status = [st for _, st in found]
    todo = [str(path) for path, st in found if st == "ok"]
    work = Path(params.paths.work) / "image_features" / fingerprint(
        dataclasses.asdict(cfg), todo, [_stamp(p) for p in todo])
    return Extraction(todo, lambda paths: _encode(encoder, paths, cfg.batch_size), encoder.dim,
                      work, cfg.batch_size, "image_features"), status


def _encode(encoder: image_encoders.ImageEncoder, paths, batch_size: int) -> np.ndarray:
    """Encode a batch of image files; a file that cannot be decoded yields a NaN row.

    The encoder always sees `batch_size` images (a short batch is padded with copies of its
    last image): the convolution library picks its algorithm by batch shape and thread count,
    and a short batch came out different on 1 and 2 threads; full batches agree."""
    images, ok = [], []
    for path in paths:
        try:
            with Image.open(path) as img:
                images.append(img.convert("RGB"))
            ok.append(True)
        except (OSError, ValueError, SyntaxError):
            ok.append(False)
    out = np.full((len(paths), encoder.dim), np.nan, dtype=np.float32)
    if images:
        padded = images + [images[-1]] * (batch_size - len(images))
        out[np.array(ok)] = encoder(padded)[:len(images)]
    return out


def _stamp(path: str) -> tuple[int, int]:
    stat = Path(path).stat()
    return stat.st_size, stat.st_mtime_ns


def _shard_plan(params: Params) -> Extraction | None:
    if params.image_features.precomputed is not None:
        return None
    items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS)
    return extraction(params, items)[0]


def main(argv: list[str] | None = None) -> int:
    shard = shard_argument(argv)
    if shard is not None:
        return shard_main("image_features", _shard_plan, shard)
    return stage_main("image_features", run)


if __name__ == "__main__":
    sys.exit(main())
