"""Cleaning of catalogue text: HTML entities and tags, whitespace."""
from __future__ import annotations

import html
import re

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def clean_text(value: str) -> str:
    """Unescape HTML entities (also double-escaped ones), drop tags, collapse whitespace."""
    text = html.unescape(html.unescape(value))
    text = _TAG.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def compose_text(fields: dict[str, str], order: tuple[str, ...], separator: str) -> str:
    """Join the non-empty `fields` in `order` with `separator` (the item-text template)."""
    return separator.join(fields[name] for name in order if fields.get(name))
