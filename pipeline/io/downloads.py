"""Remote item images into `paths.image_cache`: concurrent, resumable, retried with back-off,
checked to be whole images, failures counted by reason.

The `image_features` stage calls `fetch_images` before it encodes (`image_features.download`
params); `python -m pipeline.io.downloads` runs the same fetch alone. A file already in the
cache is never fetched again. A URL that failed for good (an HTTP 4xx other than 408/429, an
answer that is not an image) is remembered in `<cache>/failed.json` and not asked for again;
time-outs, server errors and truncated answers are retried, and tried again on the next run.
Offline (every one of the first attempts finds no host), one line says so and the fetch
stops: the stage goes on without those images.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from PIL import Image

from pipeline.config import load_params
from pipeline.io import tables
from pipeline.io.images import cache_name
from pipeline.runtime.progress import bar

FAILED = "failed.json"          # url -> reason, of the URLs that failed for good
FOR_GOOD = ("http_4xx", "not_an_image")
OFFLINE_AFTER = 8               # first attempts that all found no host: offline


class Fetcher:
    """One fetch of many URLs; `offline` is set once the first attempts all find no host."""

    def __init__(self, timeout: float, retries: int, backoff: float = 0.5) -> None:
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.offline = threading.Event()
        self._lock, self._first = threading.Lock(), []

    def fetch(self, url: str, target: Path) -> str:
        """'fetched' or why not: http_4xx, http_5xx, timeout, truncated, not_an_image,
        unreachable, offline. Retries everything but the first two and the last."""
        reason = "offline"
        for attempt in range(self.retries + 1):
            if self.offline.is_set():
                return "offline"
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 10.0))
            reason = self._once(url, target)
            self._note(reason)
            if reason == "fetched" or reason in FOR_GOOD:
                return reason
        return reason

    def _once(self, url: str, target: Path) -> str:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as answer:
                data = answer.read()
        except urllib.error.HTTPError as exc:
            temporary = exc.code >= 500 or exc.code in (408, 429)
            return "http_5xx" if temporary else "http_4xx"
        except http.client.IncompleteRead:
            return "truncated"
        except (TimeoutError, socket.timeout):
            return "timeout"
        except urllib.error.URLError as exc:
            return "timeout" if isinstance(exc.reason, (TimeoutError, socket.timeout)) \
                else "unreachable"
        except OSError:
            return "unreachable"
        checked = _image_check(data)
        if checked == "ok":
            tmp = target.with_name(target.name + f".{threading.get_ident()}.part")
            tmp.write_bytes(data)
            os.replace(tmp, target)
            return "fetched"
        return checked

    def _note(self, reason: str) -> None:
        with self._lock:
            if len(self._first) < OFFLINE_AFTER:
                self._first.append(reason)
                if len(self._first) == OFFLINE_AFTER and set(self._first) == {"unreachable"}:
                    self.offline.set()


def _image_check(data: bytes) -> str:
    """'ok' for bytes that decode whole as an image; 'truncated' for an image cut short;
    'not_an_image' for anything else (an HTML error page, say)."""
    try:
        Image.open(io.BytesIO(data)).close()
    except Exception:                       # noqa: BLE001 (PIL raises many kinds)
        return "not_an_image"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except Exception:                       # noqa: BLE001
        return "truncated"
    return "ok"


def fetch_images(urls: list[str], cache: Path, connections: int, timeout: float,
                 retries: int, progress: str = "images") -> dict[str, int]:
    """Fetch the URLs not yet in `cache`, `connections` at a time. Returns counts: requested,
    cached (already there), fetched, known_failures (failed for good before, not asked
    again), and failed/<reason>."""
    cache.mkdir(parents=True, exist_ok=True)
    known = _read_failed(cache)
    urls = list(dict.fromkeys(urls))
    todo = [u for u in urls if not (cache / cache_name(u)).is_file() and u not in known]
    counts = Counter(requested=len(urls), cached=sum((cache / cache_name(u)).is_file()
                                                     for u in urls),
                     known_failures=sum(u in known for u in urls))
    fetcher = Fetcher(timeout, retries)
    with ThreadPoolExecutor(max_workers=connections) as pool:
        jobs = {pool.submit(fetcher.fetch, u, cache / cache_name(u)): u for u in todo}
        for job in bar(as_completed(jobs), total=len(jobs), desc=progress, unit="image",
                       enabled=bool(progress)):
            reason = job.result()
            counts["fetched" if reason == "fetched" else f"failed/{reason}"] += 1
            if reason in FOR_GOOD:
                known[jobs[job]] = reason
    if todo:
        tables.write_json(known, cache / FAILED)
    if fetcher.offline.is_set():
        print(f"{progress}: offline: no image host could be reached; "
              f"{counts['failed/offline'] + counts['failed/unreachable']} images not fetched, "
              f"going on without them")
    return dict(counts)


def _read_failed(cache: Path) -> dict[str, str]:
    path = cache / FAILED
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def remote_urls(ingest: Path) -> list[str]:
    """The image URLs of the ingested items whose image is remote."""
    items = tables.read_table(ingest / "items.parquet", tables.ITEMS)
    return [ref for ref, status in zip(items.column("image_ref").to_pylist(),
                                       items.column("image_status").to_pylist())
            if status == "remote"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    cfg = params.image_features.download
    counts = fetch_images(remote_urls(Path(params.paths.ingest)), Path(params.paths.image_cache),
                          cfg.connections, cfg.timeout, cfg.retries)
    print("images: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
