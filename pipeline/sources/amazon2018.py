"""Amazon Review Data 2018 (Ni et al.): `<name>.json[.gz]` reviews or `<name>.csv[.gz]`
ratings (item,user,rating,timestamp), plus `meta_<name>.json[.gz]` metadata."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from pipeline.sources.common import (
    RawDataset, RawInteractions, RawItem, SkipLog, as_categories, as_text, find_file, first_image, open_text, read_meta, read_reviews, to_int_timestamp,
)


def load(folder: Path, name: str, strict: bool) -> RawDataset:
    skipped: Counter = Counter()
    log = SkipLog(strict, skipped)
    reviews = find_file(folder, [f"{name}.json", f"{name}.jsonl", f"{name}.csv"])
    meta = find_file(folder, [f"meta_{name}.json", f"meta_{name}.jsonl"])
    if ".csv" in reviews.suffixes:
        interactions = read_ratings_csv(reviews, log)
    else:
        interactions = read_reviews(reviews, log, "reviewerID", "asin", "unixReviewTime")
    items = read_meta(meta, log, to_item)
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
        categories=as_categories(record.get("category")),
        image_ref=first_image(record.get("imageURLHighRes")) or first_image(record.get("imageURL")),
    )


def read_ratings_csv(path: Path, log: SkipLog) -> RawInteractions:
    """Ratings-only files: `item,user,rating,timestamp` rows without a header."""
    out = RawInteractions()
    with open_text(path) as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row:
                continue
            if len(row) != 4:
                log.skip(path, lineno, "wrong_column_count", str(len(row)))
                continue
            item, user, _rating, stamp = row
            if not item or not user:
                log.skip(path, lineno, "missing_user_or_item")
                continue
            try:
                out.append(user, item, to_int_timestamp(stamp))
            except ValueError:
                log.skip(path, lineno, "bad_timestamp", stamp[:40])
    return out
