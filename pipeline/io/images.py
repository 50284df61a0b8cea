"""Where an item's image lives on disk.

Remote images (URLs in the metadata) are fetched by the `image_features` stage
(`pipeline.io.downloads`) into `paths.image_cache`, named by a hash of the URL.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlparse


def cache_name(url: str) -> str:
    """File name of a downloaded URL: sha1 of the URL plus the URL's extension."""
    suffix = Path(urlparse(url).path).suffix.lower()
    suffix = suffix if suffix in {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"} else ".img"
    return hashlib.sha1(url.encode("utf-8")).hexdigest() + suffix


def image_path(ref: str | None, status: str, cache: Path) -> tuple[Path | None, str]:
    """(path to read, status): local files as ingested, remote ones from the cache."""
    if status == "local":
        return Path(ref), "ok"
    if status == "remote":
        path = cache / cache_name(ref)
        return (path, "ok") if path.is_file() else (None, "not_downloaded")
    return None, status
