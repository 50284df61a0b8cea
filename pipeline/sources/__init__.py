"""Dataset adapters: each reads one raw format into the same `common.RawDataset`.

`SOURCES` maps each `dataset.source` word to a reader of params. To add a format: a module
with `load(folder, name, strict) -> RawDataset` (see `amazon2018.py`), its word in `Source`
(pipeline/config/enums.py), and one line here.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.config import Params, QuantizeMethod, Source
from pipeline.sources import amazon2014, amazon2018, amazon2023, movielens100k, prepared
from pipeline.sources.common import IngestError, RawDataset


def dataset_folder(params: Params) -> Path:
    """`dataset.path`, which must be a folder."""
    folder = Path(params.dataset.path)
    if not folder.is_dir():
        raise IngestError(f"dataset.path {folder} is not a folder (dataset.source is "
                          f"{params.dataset.source}); see README 'Swapping datasets'")
    return folder


def _in_folder(load: Callable[[Path, str, bool], RawDataset]) -> Callable[[Params], RawDataset]:
    """A reader of the `load(folder, name, strict)` kind, fed from params."""
    return lambda params: load(dataset_folder(params), params.dataset.name, params.ingest.strict)


def _synthetic(params: Params) -> RawDataset:
    # The generated shop is Amazon 2018 data, read by the same reader as real data.
    return amazon2018.load(Path(params.paths.synthetic), params.synthetic.name,
                           params.ingest.strict)


def _prepared(params: Params) -> RawDataset:
    imported = [modality for modality, method in params.quantize.methods.items()
                if method is QuantizeMethod.IMPORTED]
    return prepared.load(dataset_folder(params), params.dataset.name,
                         dict(params.dataset.prepared_codes), required=imported)


SOURCES: dict[Source, Callable[[Params], RawDataset]] = {
    Source.SYNTHETIC: _synthetic,
    Source.AMAZON2018: _in_folder(amazon2018.load),
    Source.AMAZON2014: _in_folder(amazon2014.load),
    Source.AMAZON2023: _in_folder(amazon2023.load),
    Source.MOVIELENS100K: lambda params: movielens100k.load(params.ingest.strict),
    Source.PREPARED: _prepared,
}


def load_source(params: Params) -> RawDataset:
    """Read the dataset that `params.dataset.source` selects."""
    return SOURCES[params.dataset.source](params)
