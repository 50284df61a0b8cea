"""RQ-DINO (MSCGRec §3.2): residual quantization inside a DINO student/teacher over images.

The network is trunk -> head: the trunk is the image encoder (frozen by default, then its
features are computed once outside the network), the head standardises the trunk features,
maps them to a small latent, residually quantizes it with a straight-through estimator and
projects the quantized latent onto `prototypes` for the DINO loss. There is no decoder and
no reconstruction loss: the codes only have to keep what makes two crops of one image alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.core.kmeans import residual_distances, residual_kmeans
from pipeline.models.rqvae import mlp, residual_quantize


@dataclass(frozen=True)
class RQDINOConfig:
    in_dim: int
    hidden: tuple[int, ...] = (512,)
    latent_dim: int = 32
    levels: int = 4
    codebook_size: int = 256
    beta: float = 0.25
    projector_dim: int = 256
    prototypes: int = 1024


class RQDINOOutput(NamedTuple):
    logits: torch.Tensor      # (B, prototypes) cosine similarities in [-1, 1]
    latent: torch.Tensor      # (B, latent_dim) before quantization
    codes: torch.Tensor       # (B, L) int64
    quant_loss: torch.Tensor  # scalar: codebook + beta * commitment over levels


class RQDINOHead(nn.Module):
    def __init__(self, cfg: RQDINOConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("shift", torch.zeros(cfg.in_dim))
        self.register_buffer("scale", torch.ones(cfg.in_dim))
        self.encoder = mlp([cfg.in_dim, *cfg.hidden, cfg.latent_dim])
        self.codebooks = nn.Parameter(torch.randn(cfg.levels, cfg.codebook_size, cfg.latent_dim) * 0.01)
        self.projector = mlp([cfg.latent_dim, cfg.projector_dim, cfg.projector_dim])
        # DINO's last layer: weight-normalised prototypes, here as cosine similarities.
        self.prototypes = nn.Parameter(torch.randn(cfg.prototypes, cfg.projector_dim) * 0.02)

    @torch.no_grad()
    def init(self, features: torch.Tensor, generator: torch.Generator) -> None:
        """Per-dimension standardisation from `features` (N, in_dim), then codebooks seeded
        by residual k-means on the encoded features."""
        std = features.std(dim=0)
        self.shift.copy_(features.mean(dim=0))
        self.scale.copy_(torch.where(std > 0, std, torch.ones_like(std)))
        books = residual_kmeans(self.latent(features), self.cfg.levels, self.cfg.codebook_size,
                                generator)
        self.codebooks.copy_(torch.stack(books))

    def latent(self, features: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, latent_dim) on the unit sphere: the DINO gradient reaches the
        latent only through the straight-through estimator, and an unbounded latent runs away
        from codebooks that follow it only through the codebook loss."""
        return F.normalize(self.encoder((features - self.shift) / self.scale), dim=-1)

    def forward(self, features: torch.Tensor) -> RQDINOOutput:
        z = self.latent(features)
        codes, quantized, _, loss = residual_quantize(z, self.codebooks, self.cfg.beta)
        h = F.normalize(self.projector(quantized), dim=-1)
        logits = h @ F.normalize(self.prototypes, dim=-1).T
        return RQDINOOutput(logits, z, codes, loss)

    @torch.no_grad()
    def distances(self, features: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """(B, L, K) distance from each level's residual to every codeword, the residuals
        following the (B, L) codes."""
        return residual_distances(self.latent(features), list(self.codebooks), codes)


class RQDINO(nn.Module):
    """trunk (images (B, 3, H, W) -> (B, in_dim); nn.Identity when the trunk is frozen and its
    features are precomputed) followed by the quantizing head."""

    def __init__(self, trunk: nn.Module, head: RQDINOHead) -> None:
        super().__init__()
        self.trunk, self.head = trunk, head

    def forward(self, x: torch.Tensor) -> RQDINOOutput:
        return self.head(self.trunk(x))
