"""The words params.yaml allows for each mode, as `StrEnum`s: a member *is* its string, so it
goes to the library (and into f-strings, JSON and MLflow) as it is, never as `.value`."""
from __future__ import annotations

import enum


class Source(enum.StrEnum):
    SYNTHETIC = "synthetic"
    AMAZON2018 = "amazon2018"
    AMAZON2014 = "amazon2014"
    AMAZON2023 = "amazon2023"
    MOVIELENS100K = "movielens100k"
    PREPARED = "prepared"


class MissingMetadata(enum.StrEnum):
    DROP = "drop"
    KEEP = "keep"


class TextField(enum.StrEnum):
    TITLE = "title"
    BRAND = "brand"
    CATEGORIES = "categories"
    DESCRIPTION = "description"


class Modality(enum.StrEnum):
    TEXT = "text"
    IMAGE = "image"
    COLLAB = "collab"


class Pooling(enum.StrEnum):
    MEAN = "mean"
    CLS = "cls"
    LAST_TOKEN = "last_token"


class Device(enum.StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class DType(enum.StrEnum):
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"


class Precision(enum.StrEnum):
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"


class ImageEncoderName(enum.StrEnum):
    EFFICIENTNET_LITE0 = "efficientnet_lite0"
    OPEN_CLIP = "open_clip"
    HF_CLIP = "hf_clip"


class SASRecLoss(enum.StrEnum):
    FULL = "full"
    SAMPLED = "sampled"


class ItemUpdates(enum.StrEnum):
    DENSE = "dense"
    SPARSE = "sparse"


class QuantizeMethod(enum.StrEnum):
    RQVAE = "rqvae"
    RQKMEANS = "rqkmeans"
    MACREC = "macrec"
    RQDINO = "rqdino"
    IMPORTED = "imported"


class ContrastReduction(enum.StrEnum):
    SUM = "sum"
    MEAN = "mean"


class Positives(enum.StrEnum):
    ALL = "all"
    ONE = "one"


class ContrastGrad(enum.StrEnum):
    ENCODER_AND_CODEBOOKS = "encoder_and_codebooks"
    ENCODER = "encoder"


class CheckpointChoice(enum.StrEnum):
    BEST_COLLISION = "best_collision"
    LAST = "last"


class TrainMethod(enum.StrEnum):
    TIGER = "tiger"
    MQL4GREC = "mql4grec"
    MACREC = "macrec"
    MSCGREC = "mscgrec"


class TaskName(enum.StrEnum):
    SEQREC = "seqrec"
    SEQIMAGE = "seqimage"
    ITEM2IMAGE = "item2image"
    IMAGE2ITEM = "image2item"
    SEQITEM2IMAGE = "seqitem2image"
    SEQIMAGE2ITEM = "seqimage2item"


class Fusion(enum.StrEnum):
    MEAN = "mean"
    MEAN_BONUS = "mean_bonus"
    MAX = "max"


class Schedule(enum.StrEnum):
    COSINE = "cosine"
    INVERSE_SQRT = "inverse_sqrt"
    CONSTANT = "constant"


class Resume(enum.StrEnum):
    AUTO = "auto"
    NEVER = "never"


class ResolveStrategy(enum.StrEnum):
    APPEND = "append"
    REASSIGN = "reassign"
    SINKHORN = "sinkhorn"
