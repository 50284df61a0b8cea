"""Strict loading of params.yaml into typed, frozen objects.

params.yaml is the only configuration of the pipeline. Every section maps onto a frozen
dataclass below; `load_params` refuses unknown keys, missing keys and wrong types with a
`ConfigError` that names the key, its section and what is allowed.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml

from pipeline.errors import UserInputError


class ConfigError(UserInputError, ValueError):
    """params.yaml is not valid; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Range:
    """Bounds of a numeric param, checked when params.yaml is loaded: `lo <= value <= hi`,
    with either end open (strict) or absent."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def holds(self, value: float) -> bool:
        above = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
        below = self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
        return above and below

    def __str__(self) -> str:
        if self.hi is None:
            return f"{'greater than' if self.lo_open else 'at least'} {self.lo:g}"
        return (f"in {'(' if self.lo_open else '['}{self.lo:g}, "
                f"{self.hi:g}{')' if self.hi_open else ']'}")


# Every int and float field below carries one of these (tests/unit/test_config.py checks it).
Count = Annotated[int, Range(1)]                        # sizes, epochs, widths: >= 1
NonNegative = Annotated[int, Range(0)]
Positive = Annotated[float, Range(0, lo_open=True)]     # rates, temperatures: > 0
NonNegativeFloat = Annotated[float, Range(0)]            # loss weights, decay: >= 0
Fraction = Annotated[float, Range(0, 1, hi_open=True)]   # dropout, ratios, momenta: [0, 1)


class Source(str, enum.Enum):
    SYNTHETIC = "synthetic"
    AMAZON2018 = "amazon2018"
    AMAZON2014 = "amazon2014"
    AMAZON2023 = "amazon2023"
    MOVIELENS100K = "movielens100k"
    PREPARED = "prepared"


class MissingMetadata(str, enum.Enum):
    DROP = "drop"
    KEEP = "keep"


class TextField(str, enum.Enum):
    TITLE = "title"
    BRAND = "brand"
    CATEGORIES = "categories"
    DESCRIPTION = "description"


class Modality(str, enum.Enum):
    TEXT = "text"
    IMAGE = "image"
    COLLAB = "collab"


class Pooling(str, enum.Enum):
    MEAN = "mean"
    CLS = "cls"
    LAST_TOKEN = "last_token"


class Device(str, enum.Enum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class DType(str, enum.Enum):
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"


class ImageEncoderName(str, enum.Enum):
    EFFICIENTNET_LITE0 = "efficientnet_lite0"
    OPEN_CLIP = "open_clip"
    HF_CLIP = "hf_clip"


class QuantizeMethod(str, enum.Enum):
    RQVAE = "rqvae"
    RQKMEANS = "rqkmeans"
    MACREC = "macrec"
    RQDINO = "rqdino"
    IMPORTED = "imported"


class CheckpointChoice(str, enum.Enum):
    BEST_COLLISION = "best_collision"
    LAST = "last"


class TrainMethod(str, enum.Enum):
    TIGER = "tiger"
    MQL4GREC = "mql4grec"
    MACREC = "macrec"
    MSCGREC = "mscgrec"


class TaskName(str, enum.Enum):
    SEQREC = "seqrec"
    SEQIMAGE = "seqimage"
    ITEM2IMAGE = "item2image"
    IMAGE2ITEM = "image2item"
    SEQITEM2IMAGE = "seqitem2image"
    SEQIMAGE2ITEM = "seqimage2item"


class Fusion(str, enum.Enum):
    MEAN = "mean"
    MEAN_BONUS = "mean_bonus"
    MAX = "max"


class Schedule(str, enum.Enum):
    COSINE = "cosine"
    INVERSE_SQRT = "inverse_sqrt"
    CONSTANT = "constant"


class Resume(str, enum.Enum):
    AUTO = "auto"
    NEVER = "never"


class ResolveStrategy(str, enum.Enum):
    APPEND = "append"
    REASSIGN = "reassign"
    SINKHORN = "sinkhorn"


@dataclass(frozen=True)
class PathsConfig:
    synthetic: str
    ingest: str
    features: str
    sasrec: str
    codes: str
    model: str
    image_cache: str
    work: str
    evaluate: str
    reports: str
    metrics: str
    plots: str


@dataclass(frozen=True)
class DatasetConfig:
    source: Source
    name: str
    path: str
    prepared_codes: Mapping[Modality, str]


@dataclass(frozen=True)
class SyntheticConfig:
    name: str
    n_items: Annotated[int, Range(20)]
    n_users: Count
    min_len: Count
    max_len: Count
    image_size: Annotated[int, Range(16, 512)]

    def __post_init__(self) -> None:
        _require(2 <= self.min_len <= self.max_len, "synthetic.min_len",
                 "must satisfy 2 <= min_len <= max_len")


@dataclass(frozen=True)
class IngestConfig:
    user_k: Count
    item_k: Count
    max_history: Count
    missing_metadata: MissingMetadata
    strict: bool
    text_fields: tuple[TextField, ...]
    text_separator: str

    def __post_init__(self) -> None:
        _require(self.user_k >= 3, "ingest.user_k",
                 "must be at least 3: leave-one-out needs a training, a validation and a test item")
        _require(len(self.text_fields) > 0, "ingest.text_fields", "must name at least one field")


@dataclass(frozen=True)
class TextFeaturesConfig:
    model: str
    revision: str
    pooling: Pooling
    normalize: bool
    max_length: Count
    batch_size: Count
    device: Device
    dtype: DType
    precomputed: str | None
    precomputed_ids: str | None


@dataclass(frozen=True)
class ImageFeaturesConfig:
    encoder: ImageEncoderName
    model: str
    pretrained: str | None
    revision: str
    batch_size: Count
    device: Device
    dtype: DType
    precomputed: str | None
    precomputed_ids: str | None


@dataclass(frozen=True)
class SASRecParams:
    hidden: Count
    layers: Count
    heads: Count
    dropout: Fraction
    max_len: Count
    lr: Positive
    weight_decay: NonNegativeFloat
    batch_size: Count
    epochs: Count
    patience: Count
    mask_history: bool
    device: Device
    precomputed: str | None
    precomputed_ids: str | None

    def __post_init__(self) -> None:
        _require(self.hidden % self.heads == 0, "sasrec.hidden", "must be divisible by sasrec.heads")


@dataclass(frozen=True)
class RQVAEParams:
    hidden: tuple[Count, ...]
    latent_dim: Count
    beta: NonNegativeFloat
    lr: Positive
    batch_size: Count
    epochs: Count
    checkpoint: CheckpointChoice
    device: Device


@dataclass(frozen=True)
class MACRecQuantParams:
    clusters: Annotated[int, Range(2)]
    contrast_from_level: Count
    contrast_weight: NonNegativeFloat
    align_weight: NonNegativeFloat
    tau: Positive


@dataclass(frozen=True)
class RQDINOParams:
    hidden: tuple[Count, ...]
    latent_dim: Count
    projector_dim: Count
    prototypes: Count
    beta: NonNegativeFloat
    lr: Positive
    batch_size: Count
    epochs: Count
    freeze_trunk: bool
    rounds: Count
    local_crops: NonNegative
    local_size: Count
    global_scale_min: Positive
    local_scale_min: Positive
    color_jitter: NonNegativeFloat
    tau_student: Positive
    tau_teacher: Positive
    teacher_momentum: Fraction
    center_momentum: Fraction
    checkpoint: CheckpointChoice
    device: Device

    def __post_init__(self) -> None:
        _require(0 < self.local_scale_min < self.global_scale_min <= 1,
                 "quantize.rqdino.local_scale_min",
                 "must satisfy 0 < local_scale_min < global_scale_min <= 1")


@dataclass(frozen=True)
class QuantizeConfig:
    methods: Mapping[Modality, QuantizeMethod]
    levels: Count
    codebook_size: Annotated[int, Range(2)]
    standardize: bool
    kmeans_iters: Count
    rqvae: RQVAEParams
    macrec: MACRecQuantParams
    rqdino: RQDINOParams

    def __post_init__(self) -> None:
        _require(len(self.methods) > 0, "quantize.methods", "must name at least one modality")
        for modality, method in self.methods.items():
            _require(method is not QuantizeMethod.RQDINO or modality is Modality.IMAGE,
                     f"quantize.methods.{modality.value}", "is rqdino, which quantizes images only")
        if QuantizeMethod.MACREC in self.methods.values():
            _require(1 <= self.macrec.contrast_from_level <= self.levels,
                     "quantize.macrec.contrast_from_level", "must be in [1, quantize.levels]")


@dataclass(frozen=True)
class ResolveConfig:
    strategy: ResolveStrategy


@dataclass(frozen=True)
class GenRecParams:
    d_model: Count
    d_ff: Count
    layers: Count
    decoder_layers: Count
    heads: Count
    d_kv: Count
    dropout: Fraction
    tie_head: bool


@dataclass(frozen=True)
class TrainConfig:
    method: TrainMethod
    tiger_modality: Modality
    tasks: tuple[TaskName, ...]
    implicit_weight: NonNegativeFloat
    implicit_tau: Positive
    modalities: tuple[Modality, ...]
    modality_dropout: Fraction
    dual_positions: bool
    constrained: bool
    max_history: Count
    model: GenRecParams
    lr: Positive
    weight_decay: NonNegativeFloat
    warmup_ratio: Fraction
    schedule: Schedule
    grad_clip: Positive
    batch_size: Count
    epochs: Count
    patience: Count
    valid_users: NonNegative
    beam: Count
    fusion: Fusion
    device: Device
    compile: bool
    resume: Resume

    def __post_init__(self) -> None:
        if self.method in (TrainMethod.MQL4GREC, TrainMethod.MACREC):
            _require(len(self.tasks) > 0, "train.tasks", "must list at least one task")
            _require(TaskName.SEQREC in self.tasks or TaskName.SEQIMAGE in self.tasks,
                     "train.tasks", "must include seqrec or seqimage (the tasks that are decoded)")
        if self.method is TrainMethod.MSCGREC:
            _require(Modality.COLLAB in self.modalities, "train.modalities",
                     "must include collab: mscgrec generates the collaborative codes")


@dataclass(frozen=True)
class EvaluateConfig:
    beam: Count
    fusion: Fusion
    top_k: Count
    users: NonNegative
    batch_size: Count
    device: Device

    def __post_init__(self) -> None:
        _require(self.top_k >= 10, "evaluate.top_k", "must be at least 10 (the largest metric K)")
        _require(self.beam >= self.top_k, "evaluate.beam",
                 f"must be at least evaluate.top_k ({self.top_k}): a beam of W returns W items")


@dataclass(frozen=True)
class Params:
    seed: NonNegative
    paths: PathsConfig
    dataset: DatasetConfig
    synthetic: SyntheticConfig
    ingest: IngestConfig
    text_features: TextFeaturesConfig
    image_features: ImageFeaturesConfig
    sasrec: SASRecParams
    quantize: QuantizeConfig
    resolve: ResolveConfig
    train: TrainConfig
    evaluate: EvaluateConfig

    def __post_init__(self) -> None:
        # One protocol for the evaluate table: every model reads the same history length.
        _require(self.sasrec.max_len == self.train.max_history, "sasrec.max_len",
                 f"({self.sasrec.max_len}) must equal train.max_history "
                 f"({self.train.max_history}): the evaluate stage compares SASRec and the "
                 f"generative model on the same histories")


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"params.yaml: '{key}' {message}")


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raises ConfigError naming the offending key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path.resolve()}")
    with path.open(encoding="utf-8") as fh:
        try:
            raw = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return params_from_dict(raw)


def params_from_dict(raw: object) -> Params:
    """Validate an already-parsed params mapping (what tests shrink) into `Params`."""
    return _build(Params, raw, "")


def with_overrides(raw: dict, overrides: Mapping[str, object]) -> dict:
    """A deep copy of the params mapping `raw` with dotted keys (`train.lr`) set, as
    `dvc exp run -S` does. Not validated: pass the result to `params_from_dict`, which names
    a misspelt key."""
    raw = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return raw


def section_from_dict(cls: type, raw: object, where: str):
    """Validate one section (e.g. the train config saved inside a model checkpoint)."""
    return _build(cls, raw, where)


def _build(cls: type, raw: object, where: str):
    section = where or "top level"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"params.yaml: '{where or 'params'}' must be a mapping, "
                          f"got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls, include_extras=True)
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"params.yaml: unknown key '{_join(where, key)}' in section "
                              f"'{section}'{hint}; allowed keys: {', '.join(fields)}")
    missing = [name for name in fields if name not in raw]
    if missing:
        raise ConfigError(f"params.yaml: missing key '{_join(where, missing[0])}' in section "
                          f"'{section}'; required keys: {', '.join(fields)}")
    values = {name: _convert(hints[name], raw[name], _join(where, name)) for name in fields}
    return cls(**values)


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def _convert(tp, value: object, key: str):
    """Check `value` against the annotation `tp`; return it in its typed, immutable form."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        converted = _convert(args[0], value, key)
        for bound in args[1:]:
            if not bound.holds(converted):
                raise ConfigError(f"params.yaml: '{key}' is {value!r}; it must be {bound}")
        return converted
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, key)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = [m.value for m in tp]
        if value not in allowed:
            raise ConfigError(f"params.yaml: '{key}' is {value!r}; allowed values: "
                              f"{', '.join(map(str, allowed))}")
        return tp(value)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"params.yaml: '{key}' must be a list, got {value!r}")
        return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is Mapping:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"params.yaml: '{key}' must be a mapping, got {value!r}")
        return types.MappingProxyType({
            _convert(args[0], k, f"{key} (key)"): _convert(args[1], v, f"{key}.{k}")
            for k, v in value.items()})
    return _scalar(tp, value, key)


def _scalar(tp: type, value: object, key: str):
    # bool is a subclass of int in Python; `user_k: true` must not pass as 1.
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:
        raise TypeError(f"unsupported annotation {tp!r} for '{key}'")
    if not ok:
        raise ConfigError(f"params.yaml: '{key}' must be of type {tp.__name__}, "
                          f"got {value!r} ({type(value).__name__})")
    return tp(value)
