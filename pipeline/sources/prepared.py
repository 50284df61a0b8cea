"""The folder format of the MQL4GRec / MACRec / LETTER repositories.

`<name>.inter.json`: {"<user_idx>": [item_idx, ...]} in time order (required);
`<name>.item.json`: {"<item_idx>": {"title", "description", "brand", "categories"}} (optional);
`<name>.item2id` / `<name>.user2id`: `original_id<TAB>idx` lines (optional);
per-item feature files such as `<name>.emb-llama-td.npy` (row i = item index i) are read by
the feature stages' `precomputed:` through the row order ingest records (`source_rows.json`);
`<name>.index_<suffix>.json` (or `<name>.index.json`, LETTER's name, for an empty suffix):
{"<item_idx>": ["<a_12>", "<b_7>", ...]} semantic IDs per modality (optional), read here into
integer codes and never written back in that form.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Collection, Mapping
from pathlib import Path

from pipeline.sources.common import (
    IngestError, RawDataset, RawInteractions, RawItem, as_categories, as_text,
)

_TOKEN = re.compile(r"^<([A-Za-z]+)_(\d+)>$")


def code_file(folder: Path, name: str, suffix: str) -> Path:
    """`<name>.index_<suffix>.json`, or `<name>.index.json` when the suffix is empty."""
    return folder / (f"{name}.index_{suffix}.json" if suffix else f"{name}.index.json")


def load(folder: Path, name: str, code_suffixes: Mapping[str, str],
         required: Collection[str] = ()) -> RawDataset:
    """code_suffixes: modality -> suffix of its code file (see `code_file`). A file that is
    absent is not imported (the stage reports which modalities were), unless its modality is
    in `required`: then loading stops, naming the file it looked for."""
    inter_path = folder / f"{name}.inter.json"
    if not inter_path.is_file():
        raise IngestError(f"prepared dataset: {inter_path} not found (expected "
                          f"<dataset.path>/<dataset.name>.inter.json)")
    sequences = _load_json(inter_path)
    item_names = _read_id_map(folder / f"{name}.item2id")
    user_names = _read_id_map(folder / f"{name}.user2id")
    meta_path = folder / f"{name}.item.json"
    meta = _load_json(meta_path) if meta_path.is_file() else {}

    interactions = RawInteractions()
    for user in sorted(sequences, key=_numeric_first):
        items = sequences[user]
        if not isinstance(items, list):
            raise IngestError(f"{inter_path}: user {user!r} maps to {type(items).__name__}, "
                              "expected a list of item indices")
        # No timestamps in this format: the position in the list is the time order.
        for position, idx in enumerate(items):
            interactions.append(user_names.get(str(user), str(user)),
                                item_names.get(str(idx), str(idx)), position)

    catalogue = sorted(list(item_names) or list(meta)
                       or {str(i) for seq in sequences.values() for i in seq}, key=_numeric_first)
    # Published per-item files (MQL4GRec's `<name>.emb-*.npy`) have row i = item index i.
    rows = [item_names.get(idx, idx) for idx in catalogue] \
        if catalogue == [str(i) for i in range(len(catalogue))] else None
    items = {}
    for idx in catalogue:
        record = meta.get(idx, {}) if isinstance(meta.get(idx), dict) else {}
        original = item_names.get(idx, idx)
        items[original] = RawItem(
            original_id=original,
            title=as_text(record.get("title")),
            description=as_text(record.get("description")),
            brand=as_text(record.get("brand")),
            categories=as_categories(record.get("categories")),
        )
    missing = sorted(set(required) - set(code_suffixes))
    if missing:
        raise IngestError(f"quantize.methods.{missing[0]} is 'imported' but "
                          f"dataset.prepared_codes has no entry for {missing[0]}")
    codes = {}
    for modality, suffix in code_suffixes.items():
        path = code_file(folder, name, suffix)
        if modality in required and not path.is_file():
            raise IngestError(f"quantize.methods.{modality} is 'imported' but its code file "
                              f"{path} does not exist (dataset.prepared_codes.{modality}: "
                              f"{suffix!r})")
        if path.is_file():
            codes[modality] = {item_names.get(idx, idx): code
                               for idx, code in parse_code_file(path).items()}
    return RawDataset(items, interactions, folder, codes=codes, skipped=Counter(), rows=rows)


def parse_code_file(path: Path) -> dict[str, tuple[int, ...]]:
    """Read `{"<idx>": ["<a_12>", "<b_7>", ...]}` into {idx: (12, 7, ...)}.

    The letters must name the levels in order (a, b, c, ... in any case) and every item must
    have the same number of levels; anything else raises with the item and token.
    """
    raw = _load_json(path)
    out: dict[str, tuple[int, ...]] = {}
    length = None
    for idx, tokens in raw.items():
        if not isinstance(tokens, list) or not tokens:
            raise IngestError(f"{path}: item {idx!r}: expected a non-empty list of tokens")
        code = []
        for level, token in enumerate(tokens):
            match = _TOKEN.match(str(token))
            if not match or match.group(1).lower() != chr(ord("a") + level):
                raise IngestError(f"{path}: item {idx!r}: token {token!r} at level {level} "
                                  f"is not of the form <{chr(ord('a') + level)}_N>")
            code.append(int(match.group(2)))
        if length is not None and len(code) != length:
            raise IngestError(f"{path}: item {idx!r} has {len(code)} levels, others {length}")
        length = len(code)
        out[str(idx)] = tuple(code)
    return out


def _read_id_map(path: Path) -> dict[str, str]:
    """`original_id<TAB>idx` lines -> {idx: original_id}; empty when the file is absent."""
    if not path.is_file():
        return {}
    out = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2:
                raise IngestError(f"{path}:{lineno}: expected 'original_id<TAB>index'")
            out[parts[1].strip()] = parts[0].strip()
    return out


def _load_json(path: Path) -> dict:
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise IngestError(f"{path}: expected a JSON object at the top level")
    return data


def _numeric_first(key: str) -> tuple[int, int | str]:
    """Sort '2' before '10' when keys are integers; fall back to text order otherwise."""
    text = str(key)
    return (0, int(text)) if text.isdigit() else (1, text)
