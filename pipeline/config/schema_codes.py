"""The `quantize` and `resolve` sections of params.yaml (`pipeline.config.schema` holds the
rest), with their cross-key checks."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pipeline.config.enums import (
    CheckpointChoice, ContrastGrad, ContrastReduction, Device, Modality, Positives,
    QuantizeMethod, ResolveStrategy,
)
from pipeline.config.loader import (
    Count, Fraction, NonNegative, NonNegativeFloat, Positive, Range, require,
)


@dataclass(frozen=True)
class RQVAEParams:
    hidden: tuple[Count, ...]
    latent_dim: Count
    beta: NonNegativeFloat
    lr: Positive
    batch_size: Count
    epochs: Count
    checkpoint: CheckpointChoice
    reseed_dead_codes: bool
    device: Device


@dataclass(frozen=True)
class MACRecQuantParams:
    clusters: Annotated[int, Range(2)]
    contrast_from_level: Count
    contrast_weight: NonNegativeFloat
    align_weight: NonNegativeFloat
    tau: Positive
    contrast_reduction: ContrastReduction
    positives: Positives
    contrast_grad: ContrastGrad
    warmup_epochs: NonNegative


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
        require(0 < self.local_scale_min < self.global_scale_min <= 1,
                 "quantize.rqdino.local_scale_min",
                 "must satisfy 0 < local_scale_min < global_scale_min <= 1")


@dataclass(frozen=True)
class QuantizeParams:
    methods: Mapping[Modality, QuantizeMethod]
    levels: Count
    codebook_size: Annotated[int, Range(2)]
    standardize: bool
    kmeans_iters: Count
    rqvae: RQVAEParams
    macrec: MACRecQuantParams
    rqdino: RQDINOParams

    def __post_init__(self) -> None:
        require(len(self.methods) > 0, "quantize.methods", "must name at least one modality")
        for modality, method in self.methods.items():
            require(method is not QuantizeMethod.RQDINO or modality is Modality.IMAGE,
                     f"quantize.methods.{modality}", "is rqdino, which quantizes images only")
        if QuantizeMethod.MACREC in self.methods.values():
            require(1 <= self.macrec.contrast_from_level <= self.levels,
                     "quantize.macrec.contrast_from_level", "must be in [1, quantize.levels]")


@dataclass(frozen=True)
class ResolveParams:
    strategy: ResolveStrategy
