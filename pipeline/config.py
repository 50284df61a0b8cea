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

import yaml

from pipeline.errors import UserInputError


class ConfigError(UserInputError, ValueError):
    """params.yaml is not valid; the message names the key and what is allowed."""


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
    n_items: int
    n_users: int
    min_len: int
    max_len: int
    image_size: int

    def __post_init__(self) -> None:
        _require(self.n_items >= 20, "synthetic.n_items", "must be at least 20")
        _require(self.n_users >= 1, "synthetic.n_users", "must be at least 1")
        _require(2 <= self.min_len <= self.max_len, "synthetic.min_len",
                 "must satisfy 2 <= min_len <= max_len")
        _require(16 <= self.image_size <= 512, "synthetic.image_size", "must be in [16, 512]")


@dataclass(frozen=True)
class IngestConfig:
    user_k: int
    item_k: int
    max_history: int
    missing_metadata: MissingMetadata
    strict: bool
    text_fields: tuple[TextField, ...]
    text_separator: str

    def __post_init__(self) -> None:
        _require(self.user_k >= 3, "ingest.user_k",
                 "must be at least 3: leave-one-out needs a training, a validation and a test item")
        _require(self.item_k >= 1, "ingest.item_k", "must be at least 1")
        _require(self.max_history >= 1, "ingest.max_history", "must be at least 1")
        _require(len(self.text_fields) > 0, "ingest.text_fields", "must name at least one field")


@dataclass(frozen=True)
class TextFeaturesConfig:
    model: str
    revision: str
    pooling: Pooling
    normalize: bool
    max_length: int
    batch_size: int
    device: Device
    dtype: DType
    precomputed: str | None
    precomputed_ids: str | None

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, "text_features.batch_size", "must be at least 1")
        _require(self.max_length >= 1, "text_features.max_length", "must be at least 1")


@dataclass(frozen=True)
class ImageFeaturesConfig:
    encoder: ImageEncoderName
    model: str
    pretrained: str | None
    revision: str
    batch_size: int
    device: Device
    dtype: DType
    precomputed: str | None
    precomputed_ids: str | None

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, "image_features.batch_size", "must be at least 1")


@dataclass(frozen=True)
class SASRecParams:
    hidden: int
    layers: int
    heads: int
    dropout: float
    max_len: int
    lr: float
    weight_decay: float
    batch_size: int
    epochs: int
    patience: int
    mask_history: bool
    device: Device
    precomputed: str | None
    precomputed_ids: str | None

    def __post_init__(self) -> None:
        _require(self.hidden % self.heads == 0, "sasrec.hidden", "must be divisible by sasrec.heads")
        _require(0.0 <= self.dropout < 1.0, "sasrec.dropout", "must be in [0, 1)")
        _require(self.epochs >= 1 and self.patience >= 1, "sasrec.epochs",
                 "and sasrec.patience must be at least 1")


@dataclass(frozen=True)
class RQVAEParams:
    hidden: tuple[int, ...]
    latent_dim: int
    beta: float
    lr: float
    batch_size: int
    epochs: int
    checkpoint: CheckpointChoice
    device: Device


@dataclass(frozen=True)
class MACRecQuantParams:
    clusters: int
    contrast_from_level: int
    contrast_weight: float
    align_weight: float
    tau: float

    def __post_init__(self) -> None:
        _require(self.clusters >= 2, "quantize.macrec.clusters", "must be at least 2")
        _require(self.tau > 0, "quantize.macrec.tau", "must be positive")


@dataclass(frozen=True)
class RQDINOParams:
    hidden: tuple[int, ...]
    latent_dim: int
    projector_dim: int
    prototypes: int
    beta: float
    lr: float
    batch_size: int
    epochs: int
    freeze_trunk: bool
    rounds: int
    local_crops: int
    local_size: int
    global_scale_min: float
    local_scale_min: float
    color_jitter: float
    tau_student: float
    tau_teacher: float
    teacher_momentum: float
    center_momentum: float
    checkpoint: CheckpointChoice
    device: Device

    def __post_init__(self) -> None:
        _require(self.rounds >= 1, "quantize.rqdino.rounds", "must be at least 1")
        _require(self.local_crops >= 0, "quantize.rqdino.local_crops", "must be >= 0")
        _require(0 < self.local_scale_min < self.global_scale_min <= 1,
                 "quantize.rqdino.local_scale_min",
                 "must satisfy 0 < local_scale_min < global_scale_min <= 1")
        _require(self.tau_student > 0 and self.tau_teacher > 0, "quantize.rqdino.tau_student",
                 "and tau_teacher must be positive")
        _require(0 <= self.teacher_momentum < 1 and 0 <= self.center_momentum < 1,
                 "quantize.rqdino.teacher_momentum", "and center_momentum must be in [0, 1)")


@dataclass(frozen=True)
class QuantizeConfig:
    methods: Mapping[Modality, QuantizeMethod]
    levels: int
    codebook_size: int
    standardize: bool
    kmeans_iters: int
    rqvae: RQVAEParams
    macrec: MACRecQuantParams
    rqdino: RQDINOParams

    def __post_init__(self) -> None:
        _require(len(self.methods) > 0, "quantize.methods", "must name at least one modality")
        _require(self.levels >= 1, "quantize.levels", "must be at least 1")
        _require(self.codebook_size >= 2, "quantize.codebook_size", "must be at least 2")
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
    d_model: int
    d_ff: int
    layers: int
    decoder_layers: int
    heads: int
    d_kv: int
    dropout: float


@dataclass(frozen=True)
class TrainConfig:
    method: TrainMethod
    tiger_modality: Modality
    tasks: tuple[TaskName, ...]
    implicit_weight: float
    implicit_tau: float
    modalities: tuple[Modality, ...]
    modality_dropout: float
    dual_positions: bool
    constrained: bool
    max_history: int
    model: GenRecParams
    lr: float
    weight_decay: float
    warmup_ratio: float
    grad_clip: float
    batch_size: int
    epochs: int
    patience: int
    valid_users: int
    beam: int
    fusion: Fusion
    device: Device
    compile: bool
    resume: Resume

    def __post_init__(self) -> None:
        _require(self.max_history >= 1, "train.max_history", "must be at least 1")
        _require(self.epochs >= 1 and self.patience >= 1, "train.epochs",
                 "and train.patience must be at least 1")
        _require(0.0 <= self.modality_dropout < 1.0, "train.modality_dropout", "must be in [0, 1)")
        _require(0.0 <= self.warmup_ratio < 1.0, "train.warmup_ratio", "must be in [0, 1)")
        _require(self.beam >= 1 and self.valid_users >= 1, "train.beam",
                 "and train.valid_users must be at least 1")
        if self.method in (TrainMethod.MQL4GREC, TrainMethod.MACREC):
            _require(len(self.tasks) > 0, "train.tasks", "must list at least one task")
            _require(TaskName.SEQREC in self.tasks or TaskName.SEQIMAGE in self.tasks,
                     "train.tasks", "must include seqrec or seqimage (the tasks that are decoded)")
        if self.method is TrainMethod.MSCGREC:
            _require(Modality.COLLAB in self.modalities, "train.modalities",
                     "must include collab: mscgrec generates the collaborative codes")


@dataclass(frozen=True)
class EvaluateConfig:
    beam: int
    fusion: Fusion
    top_k: int
    users: int
    batch_size: int
    device: Device

    def __post_init__(self) -> None:
        _require(self.top_k >= 10, "evaluate.top_k", "must be at least 10 (the largest metric K)")
        _require(self.beam >= self.top_k, "evaluate.beam",
                 f"must be at least evaluate.top_k ({self.top_k}): a beam of W returns W items")
        _require(self.users >= 0, "evaluate.users", "must be 0 (every test user) or a count")
        _require(self.batch_size >= 1, "evaluate.batch_size", "must be at least 1")


@dataclass(frozen=True)
class Params:
    seed: int
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
    hints = typing.get_type_hints(cls)
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
