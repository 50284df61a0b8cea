"""What the quantizers share: the distances kept for `resolve`, and standardisation."""
import numpy as np
import torch

from pipeline.core.kmeans import residual_assign, residual_distances, residual_kmeans
from pipeline.quantize.base import standardize, with_dists


def test_only_the_colliding_rows_distances_are_kept_whatever_the_chunk():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g)
    books = residual_kmeans(x, 2, 3, g)          # 9 codes for 200 items: most collide
    codes = residual_assign(x, books)
    kept = [with_dists(codes, lambda rows: residual_distances(x[rows], books, codes[rows]),
                       chunk=c).dists for c in (1 << 16, 7)]
    # equal up to the last bits cdist gives for another batch size
    assert np.array_equal(kept[0].rows, kept[1].rows)
    assert np.allclose(kept[0].values, kept[1].values, atol=1e-5)
    assert kept[0].values.shape == (len(kept[0].rows), 2, 3)
    full = residual_distances(x, books, codes)[kept[0].rows].numpy()
    assert np.allclose(kept[0].values, full, atol=1e-5)


def test_standardize_in_place():
    x = np.array([[1.0, 5.0], [3.0, 5.0]], dtype=np.float32)
    out = standardize(x)
    assert out is x and x.tolist() == [[-1.0, 0.0], [1.0, 0.0]]
