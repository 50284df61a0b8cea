import faiss
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.kmeans import (
    kmeans, nearest, residual_assign, residual_distances, residual_kmeans,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_kmeans_finds_separated_blobs():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(30, 2, generator=_gen(i)) for i, c in enumerate(centres)])
    found = kmeans(x, 3, _gen())
    assert torch.cdist(centres, found).min(dim=1).values.max() < 0.2


def test_kmeans_is_deterministic_under_a_seed_and_varies_across_seeds():
    x = torch.randn(200, 4, generator=_gen(5))
    assert torch.equal(kmeans(x, 8, _gen(1)), kmeans(x, 8, _gen(1)))
    assert not torch.equal(kmeans(x, 8, _gen(1), iters=0), kmeans(x, 8, _gen(2), iters=0))


def test_kmeans_with_fewer_points_than_clusters():
    x = torch.randn(3, 2, generator=_gen())
    books = kmeans(x, 5, _gen())
    assert books.shape == (5, 2)
    assert torch.cdist(x, books).min(dim=1).values.max() < 1e-5


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 60), st.integers(1, 3), st.integers(2, 9), st.integers(0, 1000))
def test_residual_codes_in_range_and_reconstruction_improves(n, levels, k, seed):
    x = torch.randn(n, 3, generator=_gen(seed))
    books = residual_kmeans(x, levels, k, _gen(seed))
    codes = residual_assign(x, books)
    assert codes.shape == (n, levels)
    assert int(codes.min()) >= 0 and int(codes.max()) < k
    # The sum of the chosen codewords approximates the input no worse than the first level
    # alone.
    quantized = sum(b[codes[:, l]] for l, b in enumerate(books))
    first = books[0][residual_assign(x, books[:1])[:, 0]]
    assert (x - quantized).pow(2).sum() <= (x - first).pow(2).sum() + 1e-4


def _lloyd(x: torch.Tensor, k: int, g: torch.Generator, iters: int = 30) -> torch.Tensor:
    """The hand-written k-means faiss replaced (k-means++ on all points, Lloyd on all points):
    the reference its code quality is held to."""
    chosen = [int(torch.randint(len(x), (1,), generator=g))]
    closest = ((x - x[chosen[0]]) ** 2).sum(1)
    for _ in range(1, k):
        chosen.append(int(torch.multinomial(closest / closest.sum(), 1, generator=g)))
        closest = torch.minimum(closest, ((x - x[chosen[-1]]) ** 2).sum(1))
    c = x[chosen].clone()
    for _ in range(iters):
        assign = torch.cdist(x, c).argmin(1)
        for j in range(k):
            if (assign == j).any():
                c[j] = x[assign == j].mean(0)
    return c


def _inertia(x: torch.Tensor, c: torch.Tensor) -> float:
    return float(torch.cdist(x, c).min(1).values.pow(2).sum())


def test_faiss_kmeans_is_as_good_as_the_hand_written_lloyd_it_replaced():
    x = torch.randn(3000, 16, generator=_gen(3))
    ours = np.mean([_inertia(x, kmeans(x, 32, _gen(s))) for s in range(3)])
    reference = np.mean([_inertia(x, _lloyd(x, 32, _gen(s))) for s in range(3)])
    assert ours <= 1.02 * reference


def test_residual_codes_collide_no_more_than_with_the_hand_written_kmeans():
    """Before/after check of RQ-KMeans code quality (collision rate), three seeds each."""
    from pipeline.core.resolve import collision_rate

    x = torch.randn(2000, 8, generator=_gen(4))
    ours, reference = [], []
    for seed in range(3):
        ours.append(collision_rate(residual_assign(x, residual_kmeans(x, 3, 8, _gen(seed))).numpy()))
        books, residual, g = [], x, _gen(seed)
        for _ in range(3):
            books.append(_lloyd(residual, 8, g))
            residual = residual - books[-1][torch.cdist(residual, books[-1]).argmin(1)]
        reference.append(collision_rate(residual_assign(x, books).numpy()))
    assert np.mean(ours) <= np.mean(reference) + 0.02


def test_kmeans_gives_the_same_centroids_at_one_and_two_threads():
    x = torch.randn(5000, 8, generator=_gen(6))
    before = faiss.omp_get_max_threads()
    try:
        results = []
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            results.append(kmeans(x, 64, _gen(0)))
    finally:
        faiss.omp_set_num_threads(before)
    assert torch.equal(*results)


def test_nearest_and_residual_distances_agree_with_brute_force():
    x, book = torch.randn(50, 4, generator=_gen(7)), torch.randn(9, 4, generator=_gen(8))
    assert np.array_equal(nearest(x.numpy(), book.numpy()), torch.cdist(x, book).argmin(1).numpy())
    books = residual_kmeans(x, 2, 5, _gen(0))
    codes = residual_assign(x, books)
    dists = residual_distances(x, books, codes)
    assert dists.shape == (50, 2, 5)
    assert torch.equal(dists.argmin(2), codes)


def test_assignment_in_chunks_equals_one_pass():
    x = torch.randn(300, 6, generator=_gen(9))
    books = residual_kmeans(x, 3, 8, _gen(0))
    whole, chunked = residual_assign(x, books), residual_assign(x, books, chunk=7)
    assert torch.equal(whole, chunked)


def test_residual_kmeans_fits_on_a_seeded_sample_beyond_256_points_a_codeword():
    """3,000 points, k = 4: the codebooks come from 1,024 of them, the same under a seed, and
    still cover the data (every codeword used by the full assignment)."""
    x = torch.randn(3000, 5, generator=_gen(10))
    first, again = residual_kmeans(x, 2, 4, _gen(1)), residual_kmeans(x, 2, 4, _gen(1))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    codes = residual_assign(x, first)
    assert all(len(torch.unique(codes[:, level])) == 4 for level in range(2))
