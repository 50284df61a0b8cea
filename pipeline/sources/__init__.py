"""Dataset adapters: each reads one raw format into the same `RawDataset`."""
from __future__ import annotations

from pathlib import Path

from pipeline.config import Params, Source
from pipeline.sources import amazon2014, amazon2018, amazon2023, movielens100k, prepared
from pipeline.sources.common import IngestError, RawDataset


def load(params: Params) -> RawDataset:
    """Read the dataset that `params.dataset.source` selects."""
    ds, strict = params.dataset, params.ingest.strict
    folder = Path(ds.path)
    if ds.source is Source.SYNTHETIC:
        # The generated shop is Amazon 2018 data, read by the same reader as real data.
        return amazon2018.load(Path(params.paths.synthetic), params.synthetic.name, strict)
    if ds.source is Source.MOVIELENS100K:
        return movielens100k.load(strict)
    if not folder.is_dir():
        raise IngestError(f"dataset.path {folder} is not a folder (dataset.source is "
                          f"{ds.source.value}); see README 'Swapping datasets'")
    if ds.source is Source.AMAZON2018:
        return amazon2018.load(folder, ds.name, strict)
    if ds.source is Source.AMAZON2014:
        return amazon2014.load(folder, ds.name, strict)
    if ds.source is Source.AMAZON2023:
        return amazon2023.load(folder, ds.name, strict)
    return prepared.load(folder, ds.name, {m.value: s for m, s in ds.prepared_codes.items()})


__all__ = ["IngestError", "RawDataset", "load"]
