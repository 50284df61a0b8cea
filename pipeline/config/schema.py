"""The schema of params.yaml: one frozen dataclass per section, with the cross-key checks.

Each section is a `<Section>Params`; a model's own `<Model>Config` (in `pipeline.models`) is
what the model is rebuilt from, without params.yaml.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pipeline.config.enums import (
    Device, DType, Fusion, ImageEncoderName, ItemUpdates, MissingMetadata, Modality, Pooling, Precision, Resume, SASRecLoss, Schedule, Source, TaskName, TextField, TrainMethod,
)
from pipeline.config.loader import Count, Fraction, NonNegative, NonNegativeFloat, Positive, Range, require
from pipeline.config.schema_codes import QuantizeParams, ResolveParams


@dataclass(frozen=True)
class PathsParams:
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
    costs: str
    plots: str


@dataclass(frozen=True)
class DatasetParams:
    source: Source
    name: str
    path: str
    prepared_codes: Mapping[Modality, str]


@dataclass(frozen=True)
class SyntheticParams:
    name: str
    n_items: Annotated[int, Range(20)]
    n_users: Count
    min_len: Count
    max_len: Count
    image_size: Annotated[int, Range(16, 512)]

    def __post_init__(self) -> None:
        require(2 <= self.min_len <= self.max_len, "synthetic.min_len",
                 "must satisfy 2 <= min_len <= max_len")


@dataclass(frozen=True)
class IngestParams:
    user_k: Count
    item_k: Count
    max_history: Count
    missing_metadata: MissingMetadata
    strict: bool
    text_fields: tuple[TextField, ...]
    text_separator: str

    def __post_init__(self) -> None:
        require(self.user_k >= 3, "ingest.user_k",
                 "must be at least 3: leave-one-out needs a training, a validation and a test item")
        require(len(self.text_fields) > 0, "ingest.text_fields", "must name at least one field")


@dataclass(frozen=True)
class TextFeaturesParams:
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
class DownloadParams:
    connections: Count
    timeout: Positive
    retries: NonNegative


@dataclass(frozen=True)
class ImageFeaturesParams:
    download: DownloadParams
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
    loss: SASRecLoss
    negatives: Count
    item_updates: ItemUpdates
    epochs: Count
    patience: Count
    valid_users: NonNegative
    mask_history: bool
    device: Device
    precomputed: str | None
    precomputed_ids: str | None

    def __post_init__(self) -> None:
        require(self.hidden % self.heads == 0, "sasrec.hidden", "must be divisible by sasrec.heads")
        if self.item_updates == ItemUpdates.SPARSE:
            require(self.loss == SASRecLoss.SAMPLED, "sasrec.item_updates",
                    "sparse needs sasrec.loss: sampled (the full softmax touches every row)")
            require(self.weight_decay == 0, "sasrec.item_updates",
                    "sparse needs sasrec.weight_decay: 0 (torch's SparseAdam has no weight decay)")


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
class TrainParams:
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
    ema: Fraction
    batch_size: Count
    epochs: Count
    patience: Count
    valid_users: NonNegative
    beam: Count
    fusion: Fusion
    device: Device
    precision: Precision
    compile: bool
    deterministic: bool
    resume: Resume

    def __post_init__(self) -> None:
        if self.method in (TrainMethod.MQL4GREC, TrainMethod.MACREC):
            require(len(self.tasks) > 0, "train.tasks", "must list at least one task")
            require(TaskName.SEQREC in self.tasks or TaskName.SEQIMAGE in self.tasks,
                     "train.tasks", "must include seqrec or seqimage (the tasks that are decoded)")
        if self.method is TrainMethod.MSCGREC:
            require(Modality.COLLAB in self.modalities, "train.modalities",
                     "must include collab: mscgrec generates the collaborative codes")


@dataclass(frozen=True)
class EvaluateParams:
    beam: Count
    fusion: Fusion
    top_k: Count
    users: NonNegative
    batch_size: Count
    device: Device

    def __post_init__(self) -> None:
        require(self.top_k >= 10, "evaluate.top_k", "must be at least 10 (the largest metric K)")
        require(self.beam >= self.top_k, "evaluate.beam",
                 f"must be at least evaluate.top_k ({self.top_k}): a beam of W returns W items")


@dataclass(frozen=True)
class Params:
    seed: NonNegative
    paths: PathsParams
    dataset: DatasetParams
    synthetic: SyntheticParams
    ingest: IngestParams
    text_features: TextFeaturesParams
    image_features: ImageFeaturesParams
    sasrec: SASRecParams
    quantize: QuantizeParams
    resolve: ResolveParams
    train: TrainParams
    evaluate: EvaluateParams

    def __post_init__(self) -> None:
        # One protocol for the evaluate table: every model reads the same history length.
        require(self.sasrec.max_len == self.train.max_history, "sasrec.max_len",
                 f"({self.sasrec.max_len}) must equal train.max_history "
                 f"({self.train.max_history}): the evaluate stage compares SASRec and the "
                 f"generative model on the same histories")
