"""Amazon Reviews 2023 (Hou et al.): `<name>.jsonl[.gz]` reviews plus `meta_<name>.jsonl[.gz]`.
Items are keyed by `parent_asin`; timestamps are milliseconds."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.sources.common import (
    RawDataset, RawItem, SkipLog, as_categories, as_text, find_file, first_image, read_meta, read_reviews,
)


def load(folder: Path, name: str, strict: bool) -> RawDataset:
    skipped: Counter = Counter()
    log = SkipLog(strict, skipped)
    reviews = find_file(folder, [f"{name}.jsonl", f"{name}.json"])
    meta = find_file(folder, [f"meta_{name}.jsonl", f"meta_{name}.json"])
    interactions = read_reviews(reviews, log, "user_id", "parent_asin", "timestamp",
                                time_divisor=1000)
    items = read_meta(meta, log, to_item)
    return RawDataset(items, interactions, meta.parent, skipped=skipped)


def to_item(record: dict) -> RawItem | None:
    asin = record.get("parent_asin")
    if not asin:
        return None
    details = record.get("details") if isinstance(record.get("details"), dict) else {}
    images = record.get("images") if isinstance(record.get("images"), list) else []
    refs = [img.get(key) for img in images if isinstance(img, dict)
            for key in ("hi_res", "large", "thumb")]
    return RawItem(
        original_id=str(asin),
        title=as_text(record.get("title")),
        description=as_text(record.get("description")),
        brand=as_text(record.get("store") or details.get("Brand")),
        categories=as_categories(record.get("categories") or record.get("main_category")),
        image_ref=first_image(refs),
    )
