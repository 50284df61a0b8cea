import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.kmeans import kmeans, residual_assign, residual_kmeans


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
    out = residual_assign(x, books)
    assert out.codes.shape == (n, levels) and out.dists.shape == (n, levels, k)
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < k
    # The sum of the chosen codewords is exactly what the codes say ...
    assert torch.allclose(out.quantized, sum(b[out.codes[:, l]] for l, b in enumerate(books)))
    # ... and it approximates the input no worse than the first level alone.
    first = residual_assign(x, books[:1]).quantized
    assert (x - out.quantized).pow(2).sum() <= (x - first).pow(2).sum() + 1e-4
