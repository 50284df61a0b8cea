"""Optional, resumable download of remote item images into `paths.image_cache`.

    python -m pipeline.io.downloads [--params params.yaml] [--retries 3] [--timeout 20]

Reads the ingested items table, fetches every `remote` image not already in the cache (files
already there are never fetched again, so an interrupted run simply continues), and prints
what was fetched and what failed. Run it before the `image_features` stage when online.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.io import tables
from pipeline.config import load_params
from pipeline.io.images import cache_name
from pipeline.runtime.progress import bar


def download_all(urls: list[str], cache: Path, retries: int, timeout: float) -> dict[str, int]:
    """Fetch each URL into `cache` (atomically: temp file + rename). Returns counts."""
    cache.mkdir(parents=True, exist_ok=True)
    counts = {"already_cached": 0, "fetched": 0, "failed": 0}
    for url in bar(urls, desc="download_images", unit="image"):
        target = cache / cache_name(url)
        if target.is_file():
            counts["already_cached"] += 1
            continue
        counts["fetched" if _fetch(url, target, retries, timeout) else "failed"] += 1
    return counts


def _fetch(url: str, target: Path, retries: int, timeout: float) -> bool:
    tmp = target.with_name(target.name + ".part")
    for attempt in range(retries):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, tmp.open("wb") as fh:
                fh.write(response.read())
            os.replace(tmp, target)
            return True
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, urllib.error.HTTPError) and exc.code == 404:
                return False
            time.sleep(min(2 ** attempt, 10) * 0.1)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args(argv)
    params = load_params(args.params)
    items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS)
    urls = [ref for ref, status in zip(items.column("image_ref").to_pylist(),
                                       items.column("image_status").to_pylist())
            if status == "remote"]
    counts = download_all(urls, Path(params.paths.image_cache), args.retries, args.timeout)
    print(f"download_images: {len(urls)} remote images: " +
          ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0 if counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
