"""RQ-VAE (TIGER / MQL4GRec): MLP encoder, L residual codebooks, mirrored MLP decoder.

Unlike the public MQL4GRec/MACRec code, the residual passed to the next level is computed from
the raw codeword, not from the straight-through output, so every level's residual carries
gradient back to the encoder (MACRec §3.2 applies its contrastive loss from level 3 on; with
straight-through residuals that loss could not change any weight).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from pipeline.core.kmeans import residual_distances, residual_kmeans


@dataclass(frozen=True)
class RQVAEConfig:
    in_dim: int
    hidden: tuple[int, ...] = (512, 256, 128)
    latent_dim: int = 32
    levels: int = 4
    codebook_size: int = 256
    beta: float = 0.25


class RQVAEOutput(NamedTuple):
    recon: torch.Tensor            # (B, in_dim)
    latent: torch.Tensor           # (B, latent_dim) encoder output z
    quantized: torch.Tensor        # (B, latent_dim) sum of chosen codewords (straight-through)
    codes: torch.Tensor            # (B, L) int64
    residuals: list[torch.Tensor]  # L tensors (B, latent_dim), residual entering each level
    quant_loss: torch.Tensor       # scalar: codebook + beta * commitment, summed over levels


def mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def residual_quantize(z: torch.Tensor, codebooks: torch.Tensor, beta: float):
    """Residual quantization of z (B, D) with codebooks (L, K, D), straight-through.

    Returns (codes (B, L) int64, quantized (B, D) = z + (sum of codewords - z).detach(),
    the L residuals entering each level (B, D), loss = sum over levels of codebook +
    beta * commitment). The next residual subtracts the raw codeword, so every level's
    residual keeps a gradient path to z.
    """
    residual, total = z, torch.zeros_like(z)
    codes, residuals = [], []
    loss = z.new_zeros(())
    for book in codebooks:
        code = torch.cdist(residual.detach(), book.detach()).argmin(dim=1)
        chosen = book[code]
        loss = loss + (chosen - residual.detach()).pow(2).mean() \
            + beta * (residual - chosen.detach()).pow(2).mean()
        residuals.append(residual)
        codes.append(code)
        total = total + chosen
        residual = residual - chosen
    return torch.stack(codes, 1), z + (total - z).detach(), residuals, loss


class RQVAE(nn.Module):
    def __init__(self, cfg: RQVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dims = [cfg.in_dim, *cfg.hidden, cfg.latent_dim]
        self.encoder = mlp(dims)
        self.decoder = mlp(dims[::-1])
        self.codebooks = nn.Parameter(torch.randn(cfg.levels, cfg.codebook_size, cfg.latent_dim) * 0.01)

    @torch.no_grad()
    def init_codebooks(self, x: torch.Tensor, generator: torch.Generator) -> None:
        """k-means on the residuals of the encoded batch `x` (B, in_dim) seeds every level."""
        books = residual_kmeans(self.encoder(x), self.cfg.levels, self.cfg.codebook_size, generator)
        self.codebooks.copy_(torch.stack(books))

    def quantize(self, z: torch.Tensor):
        return residual_quantize(z, self.codebooks, self.cfg.beta)

    def forward(self, x: torch.Tensor) -> RQVAEOutput:
        z = self.encoder(x)
        codes, quantized, residuals, loss = self.quantize(z)
        return RQVAEOutput(self.decoder(quantized), z, quantized, codes, residuals, loss)

    @torch.no_grad()
    def distances(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """(B, L, K) distance from each level's residual to every codeword, the residuals
        following the (B, L) codes."""
        return residual_distances(self.encoder(x), list(self.codebooks), codes)

    @torch.no_grad()
    def reseed_dead_codes(self, x: torch.Tensor, generator: torch.Generator) -> int:
        """Give every codeword that no row of `x` (N, in_dim) uses the residual of a random row
        at its level (distinct rows), level by level, as a reseeded level changes the
        residuals below it. Returns how many codewords were reseeded."""
        reseeded = 0
        for level in range(self.cfg.levels):
            codes, _, residuals, _ = self.quantize(self.encoder(x))
            counts = torch.bincount(codes[:, level], minlength=self.cfg.codebook_size)
            dead = (counts == 0).nonzero().flatten()
            rows = torch.randperm(len(x), generator=generator)[:len(dead)].to(x.device)
            self.codebooks[level, dead] = residuals[level][rows]
            reseeded += len(dead)
        return reseeded

