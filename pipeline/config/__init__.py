"""params.yaml, the only configuration, loaded strictly into typed, frozen objects.

`load_params` refuses unknown keys, missing keys, wrong types and out-of-range numbers with a
`ConfigError` that names the key and what is allowed. `schema.py` holds the sections (the
`quantize` and `resolve` ones in `schema_codes.py`), `enums.py` the allowed words,
`loader.py` the checking.
"""
from __future__ import annotations

from pathlib import Path

from pipeline.config.enums import (
    CheckpointChoice, ContrastGrad, ContrastReduction, Device, DType, Fusion, ImageEncoderName, ItemUpdates, MissingMetadata, Modality, Pooling, Positives, Precision, QuantizeMethod, ResolveStrategy, Resume, SASRecLoss, Schedule, Source, TaskName, TextField, TrainMethod,
)
from pipeline.config.loader import ConfigError, Range, build, read_yaml, with_overrides
from pipeline.config.schema_codes import (
    MACRecQuantParams, QuantizeParams, ResolveParams, RQDINOParams, RQVAEParams,
)
from pipeline.config.schema import (
    DatasetParams, DownloadParams, EvaluateParams, GenRecParams, ImageFeaturesParams, IngestParams, Params, PathsParams, SASRecParams, SyntheticParams, TextFeaturesParams, TrainParams,
)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raises ConfigError naming the offending key."""
    return params_from_dict(read_yaml(path))


def params_from_dict(raw: object) -> Params:
    """Validate an already-parsed params mapping (what tests shrink) into `Params`."""
    return build(Params, raw, "")


def section_from_dict(cls: type, raw: object, where: str):
    """Validate one section (e.g. the train params saved inside a model checkpoint)."""
    return build(cls, raw, where)


__all__ = [
    "CheckpointChoice", "ConfigError", "ContrastGrad", "ContrastReduction", "DType",
    "DatasetParams", "Device", "DownloadParams", "EvaluateParams", "Fusion", "GenRecParams", "ImageEncoderName",
    "ImageFeaturesParams", "IngestParams", "ItemUpdates", "MACRecQuantParams", "MissingMetadata", "Modality",
    "Params", "PathsParams", "Pooling", "Positives", "Precision", "QuantizeMethod", "QuantizeParams",
    "RQDINOParams", "RQVAEParams", "Range", "ResolveParams", "ResolveStrategy", "Resume",
    "SASRecLoss", "SASRecParams", "Schedule", "Source", "SyntheticParams", "TaskName", "TextField",
    "TextFeaturesParams", "TrainMethod", "TrainParams", "load_params", "params_from_dict",
    "read_yaml", "section_from_dict", "with_overrides",
]
