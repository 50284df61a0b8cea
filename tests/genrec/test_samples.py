"""Training and evaluation samples, built from list columns without per-interaction objects."""
import numpy as np
import pyarrow as pa
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.genrec.tasks import history_samples, sequential_samples


def _padded(history: list[int], width: int, pad: int) -> list[int]:
    kept = history[-width:]
    return [pad] * (width - len(kept)) + kept


def test_sequential_samples_hand_computed():
    out = sequential_samples([[4, 5, 6], [], [7], [8, 9]], max_history=2, n_items=10)
    assert out.history.tolist() == [[10, 4], [4, 5], [10, 8]]
    assert out.target.tolist() == [5, 6, 9]
    assert out.history.dtype == out.target.dtype == torch.int64


def test_history_samples_hand_computed():
    out = history_samples([[1, 2, 3], [4]], [7, 8], max_history=2, n_items=9)
    assert out.history.tolist() == [[2, 3], [9, 4]] and out.target.tolist() == [7, 8]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=12), max_size=8), st.integers(1, 6),
       st.integers(0, 3))
def test_samples_equal_the_per_item_python_reference(sequences, width, cut):
    """Every (sequence, t >= 1) gives its last `width` items before t, left-padded; the same
    from Python lists and from a sliced Arrow list column (offsets not starting at 0)."""
    expected_h = [_padded(s[:t], width, 31) for s in sequences for t in range(1, len(s))]
    expected_t = [s[t] for s in sequences for t in range(1, len(s))]
    column = pa.array([[0]] * cut + sequences, pa.list_(pa.int64())).slice(cut)
    for given_as in (sequences, column, pa.chunked_array([column], pa.list_(pa.int64()))):
        out = sequential_samples(given_as, width, 31)
        assert out.history.reshape(-1, width).tolist() == expected_h
        assert out.target.tolist() == expected_t
    rows = history_samples(column, np.arange(len(sequences)), width, 31)
    assert rows.history.reshape(-1, width).tolist() == [_padded(s, width, 31) for s in sequences]


def test_windows_are_built_in_chunks_with_the_same_result():
    from pipeline.genrec.tasks import left_windows

    values = np.arange(50)
    starts, ends = np.array([0, 10, 20, 20]), np.array([5, 12, 20, 50])
    whole = left_windows(values, starts, ends, 4, -1)
    assert np.array_equal(whole, left_windows(values, starts, ends, 4, -1, chunk=1))
    assert whole.tolist() == [[1, 2, 3, 4], [-1, -1, 10, 11], [-1, -1, -1, -1], [46, 47, 48, 49]]
