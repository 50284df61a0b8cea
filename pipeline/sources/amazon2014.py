"""Amazon product data 2014 (McAuley et al.): `reviews_<name>_5.json[.gz]` plus
`meta_<name>.json[.gz]`, whose lines are Python literals rather than JSON."""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from pipeline.sources.common import (
    RawDataset, RawItem, SkipLog, as_categories, as_text, find_file, first_image, read_meta, read_reviews,
)


def load(folder: Path, name: str, strict: bool) -> RawDataset:
    skipped: Counter = Counter()
    log = SkipLog(strict, skipped)
    reviews = find_file(folder, [f"reviews_{name}_5.json", f"reviews_{name}.json"])
    meta = find_file(folder, [f"meta_{name}.json"])
    interactions = read_reviews(reviews, log, "reviewerID", "asin", "unixReviewTime")
    # The metadata lines are Python dict literals: literal_eval parses them without running code.
    items = read_meta(meta, log, to_item, parse=ast.literal_eval)
    return RawDataset(items, interactions, meta.parent, skipped=skipped)


def to_item(record: dict) -> RawItem | None:
    asin = record.get("asin")
    if not asin:
        return None
    return RawItem(
        original_id=str(asin),
        title=as_text(record.get("title")),
        description=as_text(record.get("description")),
        brand=as_text(record.get("brand")),
        categories=as_categories(record.get("categories")),
        image_ref=first_image(record.get("imUrl")),
    )
