"""`imported`: the semantic IDs that came with a `prepared` dataset (no training)."""
from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.io import tables
from pipeline.quantize.base import Quantized
from pipeline.runtime.errors import UserInputError


def fit(names: list[str], params: Params) -> dict[str, Quantized]:
    (name,) = names
    path = Path(params.paths.ingest) / "codes" / f"{name}.parquet"
    if not path.is_file():
        raise UserInputError(f"quantize.methods.{name} is 'imported' but {path} does not exist: "
                             "only a prepared dataset with an index file for it has one")
    item_ids, codes = tables.read_codes(path)
    return {name: Quantized(item_ids, codes, None, [])}
