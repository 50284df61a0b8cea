"""k-means and residual quantization of item vectors, with faiss.

faiss is the field's k-means and nearest-neighbour library (pure compute: no files, no I/O);
the randomness of a fit comes only from the `torch.Generator` passed in, which draws faiss's
seed, so results are reproducible (and equal at one or two threads: tests/core/test_kmeans.py).
"""
from __future__ import annotations

import faiss
import numpy as np
import torch

# faiss trains on at most this many points per centroid (a seeded sample of the rest):
# 65,536 points for 256 codewords, so a million items cost what 65,536 do.
MAX_POINTS_PER_CENTROID = 256


def kmeans(x: torch.Tensor, k: int, generator: torch.Generator, iters: int = 30) -> torch.Tensor:
    """Cluster (N, D) points into k centroids, returned as (k, D) float32 on x's device.

    k-means++ seeding, `iters` Lloyd iterations, empty clusters split off the largest ones
    (faiss). With N <= k every point is a centroid and the surplus centroids repeat points
    (they stay unused).
    """
    n = x.shape[0]
    if n == 0:
        raise ValueError("k-means needs at least one point")
    points = np.ascontiguousarray(x.detach().float().cpu().numpy())
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    if n <= k:
        return torch.from_numpy(points[np.arange(k) % n]).to(x.device)
    km = faiss.Kmeans(points.shape[1], k, niter=iters, seed=seed, min_points_per_centroid=1,
                      max_points_per_centroid=MAX_POINTS_PER_CENTROID,
                      init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS)
    km.train(points)
    return torch.from_numpy(km.centroids.copy()).to(x.device)


def nearest(x: np.ndarray, book: np.ndarray) -> np.ndarray:
    """(N,) int64 index of the nearest row of book (K, D) to each row of x (N, D) (L2)."""
    _, index = faiss.knn(np.ascontiguousarray(x, dtype=np.float32),
                         np.ascontiguousarray(book, dtype=np.float32), 1)
    return index[:, 0].astype(np.int64)


def residual_assign(x: torch.Tensor, codebooks: list[torch.Tensor],
                    chunk: int = 1 << 16) -> torch.Tensor:
    """(N, L) int64 codes of greedy residual quantization of (N, D) points with L codebooks
    of (K, D) each, `chunk` rows at a time (memory beyond the input and the codes: one chunk's
    residuals; the sum of the chosen codewords is never formed, a million 384-d items would
    spend 1.5 GB on it)."""
    points = x.detach().float().cpu().numpy()
    books = [book.detach().float().cpu().numpy() for book in codebooks]
    codes = np.empty((len(points), len(books)), dtype=np.int64)
    for lo in range(0, len(points), chunk):
        residual = points[lo:lo + chunk].copy()
        for level, book in enumerate(books):
            code = nearest(residual, book)
            residual -= book[code]
            codes[lo:lo + chunk, level] = code
    return torch.from_numpy(codes)


def residual_distances(x: torch.Tensor, codebooks: list[torch.Tensor],
                       codes: torch.Tensor) -> torch.Tensor:
    """(N, L, K) distance from each level's residual of x (N, D) to every codeword, the
    residuals following the given (N, L) codes (for the few items conflict resolution asks
    about)."""
    residual, dists = x.float(), []
    for level, book in enumerate(codebooks):
        dists.append(torch.cdist(residual, book.float()))
        residual = residual - book.float()[codes[:, level]]
    return torch.stack(dists, 1)


def residual_kmeans(x: torch.Tensor, levels: int, k: int, generator: torch.Generator,
                    iters: int = 30) -> list[torch.Tensor]:
    """Fit L codebooks by k-means on successive residuals (RQ-KMeans, no training), on at
    most MAX_POINTS_PER_CENTROID x k rows of x (a seeded sample when there are more, as faiss
    would draw), so time and memory stop growing with N; assign all rows with
    `residual_assign`."""
    residual = x.detach().float()
    cap = MAX_POINTS_PER_CENTROID * k
    if len(residual) > cap:
        rows = torch.randperm(len(residual), generator=generator)[:cap]
        residual = residual[rows.to(residual.device)]
    books = []
    for _ in range(levels):
        book = kmeans(residual, k, generator, iters)
        code = torch.from_numpy(nearest(residual.cpu().numpy(), book.cpu().numpy()))
        residual = residual - book[code.to(book.device)]
        books.append(book)
    return books
