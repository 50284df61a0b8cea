"""What every dataset adapter shares: the raw record types, line reading with counted
skips, file discovery and image checks."""
from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.core.text import clean_text
from pipeline.runtime.errors import UserInputError


class IngestError(UserInputError, RuntimeError):
    """Input data cannot be ingested; the message names the file, line and reason."""


@dataclass
class RawItem:
    """One catalogue entry as read from metadata, text already cleaned."""
    original_id: str
    title: str = ""
    description: str = ""
    brand: str = ""
    categories: tuple[str, ...] = ()
    image_ref: str | None = None


@dataclass
class RawInteractions:
    """Interactions in file order; `append` keeps the parallel columns in step."""
    users: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)

    def append(self, user: str, item: str, timestamp: int) -> None:
        self.users.append(user)
        self.items.append(item)
        self.timestamps.append(timestamp)

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class RawDataset:
    """What an adapter hands to the ingest stage.

    items: original item id -> metadata, in catalogue order (ids are assigned in this order).
    image_base: folder that relative image references are resolved against.
    codes: modality -> original item id -> imported semantic ID (the `prepared` source only).
    skipped: reason -> number of input rows skipped for it.
    rows: the original item id of each row of the source's published per-item files (a
        `prepared` folder: row i is item index i), None when the source has no such order.
    """
    items: dict[str, RawItem]
    interactions: RawInteractions
    image_base: Path
    codes: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)
    rows: list[str] | None = None


class SkipLog:
    """Counts skipped input rows by reason, or raises on the first one when strict."""

    def __init__(self, strict: bool, counter: Counter) -> None:
        self.strict = strict
        self.counter = counter

    def skip(self, path: Path, lineno: int, reason: str, detail: str = "") -> None:
        if self.strict:
            raise IngestError(f"{path}:{lineno}: {reason}{': ' + detail if detail else ''} "
                              "(set ingest.strict: false to skip such rows and count them)")
        self.counter[f"{path.name}:{reason}"] += 1


def open_text(path: Path) -> IO[str]:
    """Open a text file, transparently gunzipping it when it starts with the gzip magic."""
    with path.open("rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    if gz:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace")


def read_records(path: Path, log: SkipLog,
                 parse: Callable[[str], object] = json.loads) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record) for each line of `path` that parses to a mapping.

    Blank lines are ignored; lines that fail to parse or are not objects are skipped via `log`.
    """
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = parse(line)
            except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
                log.skip(path, lineno, "malformed", f"{type(exc).__name__}: {str(exc)[:80]}")
                continue
            if not isinstance(record, dict):
                log.skip(path, lineno, "not_an_object", type(record).__name__)
                continue
            yield lineno, record


def read_reviews(path: Path, log: SkipLog, user_key: str, item_key: str, time_key: str,
                 time_divisor: int = 1, out: RawInteractions | None = None) -> RawInteractions:
    """Read a JSON-lines review file into interactions (timestamps in seconds)."""
    out = out if out is not None else RawInteractions()
    for lineno, record in read_records(path, log):
        user, item, stamp = record.get(user_key), record.get(item_key), record.get(time_key)
        if user in (None, "") or item in (None, ""):
            log.skip(path, lineno, "missing_user_or_item")
            continue
        try:
            seconds = to_int_timestamp(stamp) // time_divisor
        except (TypeError, ValueError):
            log.skip(path, lineno, "bad_timestamp", repr(stamp)[:40])
            continue
        out.append(str(user), str(item), seconds)
    return out


def read_meta(path: Path, log: SkipLog, to_item: Callable[[dict], RawItem | None],
              parse: Callable[[str], object] = json.loads) -> dict[str, RawItem]:
    """Read a metadata file, one record per line, into items keyed by original id.

    `to_item` maps a record to a RawItem, or None when the record has no item id. A repeated
    id keeps its first record.
    """
    items: dict[str, RawItem] = {}
    for lineno, record in read_records(path, log, parse):
        item = to_item(record)
        if item is None:
            log.skip(path, lineno, "missing_item_id")
        elif item.original_id in items:
            log.skip(path, lineno, "duplicate_item", item.original_id)
        else:
            items[item.original_id] = item
    return items


def find_file(folder: Path, names: list[str]) -> Path:
    """Return the first of `names` (each also tried with `.gz`) that exists in `folder`."""
    tried = []
    for name in names:
        for candidate in (name, name + ".gz"):
            path = folder / candidate
            tried.append(candidate)
            if path.is_file():
                return path
    raise IngestError(f"none of these files exists in {folder}: {', '.join(tried)}")


def as_text(value: object, join: str = " ") -> str:
    """Metadata fields come as strings or lists of strings; return one cleaned string."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return clean_text(join.join(as_text(v, join) for v in value))
    return clean_text(str(value))


def as_categories(value: object) -> tuple[str, ...]:
    """Flatten category lists (lists of lists in Amazon 2014), dropping empties and repeats."""
    out: list[str] = []
    stack = [value] if not isinstance(value, (list, tuple)) else list(value)
    while stack:
        head = stack.pop(0)
        if isinstance(head, (list, tuple)):
            stack[:0] = list(head)
        elif head is not None:
            text = clean_text(str(head))
            if text and text not in out:
                out.append(text)
    return tuple(out)


def first_image(value: object) -> str | None:
    """The first non-empty image reference of a string or list field."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (list, tuple)):
        for v in value:
            ref = first_image(v)
            if ref:
                return ref
    return None


def check_image(ref: str | None, base: Path, root: Path) -> tuple[str | None, str]:
    """Resolve an image reference and report its status (see tables.IMAGE_STATUSES).

    URLs are 'remote' (`image_features` fetches them). Local paths are resolved against
    `base` (the metadata file's folder) and stored relative to `root` when inside it.
    """
    if not ref:
        return None, "absent"
    if ref.startswith(("http://", "https://")):
        return ref, "remote"
    path = Path(ref[len("file://"):] if ref.startswith("file://") else ref)
    path = (base / path) if not path.is_absolute() else path
    path = path.resolve()
    try:
        shown = str(path.relative_to(root.resolve()))
    except ValueError:
        shown = str(path)
    if not path.is_file():
        return shown, "missing"
    try:
        with Image.open(path) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return shown, "unreadable"
    return shown, "local"


def to_int_timestamp(value: object) -> int:
    """Timestamps as int seconds; raises ValueError on anything that is not a number."""
    if isinstance(value, bool):
        raise ValueError("boolean timestamp")
    number = float(value)
    if not np.isfinite(number):
        raise ValueError("non-finite timestamp")
    return int(number)
