"""k-means (k-means++ initialisation, Lloyd iterations) and residual quantization in torch.

Randomness comes only from the `torch.Generator` passed in, so results are reproducible.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


def kmeans(x: torch.Tensor, k: int, generator: torch.Generator, iters: int = 30) -> torch.Tensor:
    """Cluster (N, D) float points into k centroids, returned as (k, D).

    With N < k the surplus centroids repeat points (they stay unused); empty clusters are
    re-seeded on the point farthest from its centroid.
    """
    x = x.float()
    n = x.shape[0]
    if n == 0:
        raise ValueError("k-means needs at least one point")
    centroids = _plus_plus(x, k, generator)
    for _ in range(iters):
        dist = torch.cdist(x, centroids)                       # (N, k)
        assign = dist.argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).float()
        moved = sums / counts.clamp(min=1)[:, None]
        empty = counts == 0
        if empty.any() and n >= k:
            far = dist.gather(1, assign[:, None]).squeeze(1).argsort(descending=True)
            moved[empty] = x[far[: int(empty.sum())]]
        new = torch.where(empty[:, None] & (n < k), centroids, moved)
        if torch.allclose(new, centroids):
            break
        centroids = new
    return centroids


def _plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each next centroid drawn with probability ~ squared distance."""
    n = x.shape[0]
    first = torch.randint(n, (1,), generator=generator)
    chosen = [int(first)]
    closest = ((x - x[first]) ** 2).sum(dim=1)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:   # every point coincides with a centroid: any point will do
            pick = int(torch.randint(n, (1,), generator=generator))
        else:
            pick = int(torch.multinomial(closest / total, 1, generator=generator))
        chosen.append(pick)
        closest = torch.minimum(closest, ((x - x[pick]) ** 2).sum(dim=1))
    return x[chosen].clone()


class QuantizeOutput(NamedTuple):
    codes: torch.Tensor        # (N, L) int64, one codeword index per level
    quantized: torch.Tensor    # (N, D) sum of the chosen codewords
    dists: torch.Tensor        # (N, L, K) distance of each level's residual to every codeword


def residual_assign(x: torch.Tensor, codebooks: list[torch.Tensor]) -> QuantizeOutput:
    """Greedy residual quantization of (N, D) points with L codebooks of (K, D) each."""
    residual = x.float()
    codes, dists = [], []
    quantized = torch.zeros_like(residual)
    for book in codebooks:
        dist = torch.cdist(residual, book.float())
        code = dist.argmin(dim=1)
        chosen = book[code].float()
        quantized = quantized + chosen
        residual = residual - chosen
        codes.append(code)
        dists.append(dist)
    return QuantizeOutput(torch.stack(codes, 1), quantized, torch.stack(dists, 1))


def residual_kmeans(x: torch.Tensor, levels: int, k: int, generator: torch.Generator,
                    iters: int = 30) -> list[torch.Tensor]:
    """Fit L codebooks by k-means on successive residuals (RQ-KMeans, no training)."""
    residual = x.float()
    books = []
    for _ in range(levels):
        book = kmeans(residual, k, generator, iters)
        residual = residual - book[torch.cdist(residual, book).argmin(dim=1)]
        books.append(book)
    return books
