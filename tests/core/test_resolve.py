import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.resolve import (
    ResolveDists, _sinkhorn_plan, append, colliding_rows, collision_groups, collision_rate,
    reassign, sinkhorn,
)


def _unique(codes):
    return len(np.unique(codes, axis=0)) == len(codes)


def _every_row(*levels: np.ndarray) -> ResolveDists:
    """Distances of every item (N, K) per level, as quantize would save them had every item
    collided."""
    return ResolveDists(np.arange(len(levels[0])), np.stack(levels, axis=1))


def test_collision_groups_and_rate():
    codes = np.array([[1, 2], [0, 0], [1, 2], [1, 2], [0, 1]])
    assert [g.tolist() for g in collision_groups(codes)] == [[0, 2, 3]]
    assert collision_rate(codes) == pytest.approx(3 / 5)


def test_append_numbers_items_inside_groups():
    codes = np.array([[1, 2], [0, 0], [1, 2]])
    out = append(codes)
    assert out.codes.tolist() == [[1, 2, 0], [0, 0, 0], [1, 2, 1]] and out.appended


def test_reassign_nearest_keeps_others_move_to_nearest_free():
    codes = np.array([[0, 1], [0, 1], [0, 2]])
    last = np.array([[0.0, 0.5, 0.9, 0.2],     # item 0: at 0.5 from its codeword 1
                     [0.3, 0.1, 0.4, 0.8],     # item 1: nearer (0.1) -> keeps (0, 1)
                     [0.0, 0.0, 0.0, 0.0]])
    out = reassign(codes, _every_row(np.zeros((3, 4)), last), [2, 4])
    # item 0 moves to its nearest free last code: 0 (0.0); 1 is kept by item 1, 2 is item 2's.
    assert out.codes.tolist() == [[0, 0], [0, 1], [0, 2]]
    assert out.moved == 1 and not out.appended


def test_reassign_moves_up_a_level_when_the_prefix_is_full():
    codes = np.array([[0, 0], [0, 1], [0, 1]])          # prefix 0 has only 2 last codes
    dists = _every_row(np.array([[0.0, 1.0]] * 3), np.array([[0.0, 0.5]] * 3))
    out = reassign(codes, dists, [2, 2])
    assert out.codes.tolist() == [[0, 0], [0, 1], [1, 0]] and not out.appended


@pytest.mark.parametrize("n, appended", [(16, False), (17, True)])
def test_all_identical_items_end_unique(n, appended):
    codes = np.zeros((n, 2), dtype=int)
    out = reassign(codes, None, [4, 4])
    assert _unique(out.codes) and out.appended is appended
    assert np.array_equal(out.codes, reassign(codes, None, [4, 4]).codes)


def test_sinkhorn_group_larger_than_codebook_falls_back_to_append():
    codes = np.zeros((5, 2), dtype=int)
    out = sinkhorn(codes, None, size=4)
    assert out.appended and _unique(out.codes)


def test_sinkhorn_prefers_near_codewords():
    codes = np.array([[0, 0], [0, 0], [1, 0]])
    last = np.array([[0.0, 5.0, 5.0, 0.1], [0.0, 5.0, 5.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    out = sinkhorn(codes, _every_row(last), size=4)
    # Both want 0; item 0 has a near alternative (3), item 1 does not: item 1 keeps 0.
    assert out.codes.tolist() == [[0, 3], [0, 0], [1, 0]]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 3)),
                min_size=1, max_size=40), st.integers(0, 10_000))
def test_every_strategy_ends_unique_and_deterministic(rows, seed):
    codes = np.array(rows)
    rng = np.random.default_rng(seed)
    dists = _every_row(*(rng.random((len(codes), 4)) for _ in range(2)))
    for resolve in (lambda: reassign(codes, dists, [4, 4, 4]),
                    lambda: sinkhorn(codes, dists, 4),
                    lambda: append(codes)):
        first, second = resolve(), resolve()
        assert _unique(first.codes)
        assert np.array_equal(first.codes, second.codes)
    # reassign only touches colliding items.
    out = reassign(codes, dists, [4, 4, 4])
    if not out.appended:
        colliding = {int(i) for g in collision_groups(codes) for i in g}
        for i in set(range(len(codes))) - colliding:
            assert out.codes[i].tolist() == codes[i].tolist()


def test_sinkhorn_keeps_near_codewords_when_the_kernel_underflows():
    # Two items nearest to codeword 176, float32 distances (as quantize saves them) spread
    # over ~100 eps * std: the kernel underflowed to zeros and the plain Sinkhorn-Knopp
    # plan sent the items to far codewords (3 and 16).
    rng = np.random.default_rng(0)
    cost = 0.09 + 0.03 * rng.random((2, 256))
    cost[0, [176, 106]] = 0.0850, 0.0855     # item 0 has a near second choice ...
    cost[1, [176, 228]] = 0.0884, 0.0899     # ... item 1's is further away
    cost = cost.astype(np.float32)
    plan = _sinkhorn_plan(cost, iterations=50, epsilon=0.05)
    assert np.isfinite(plan).all()
    np.testing.assert_allclose(plan.sum(axis=1), 1.0, rtol=1e-9)
    assert (plan.sum(axis=0) <= 1.0 + 1e-6).all()
    codes = np.zeros((2, 2), dtype=int)
    out = sinkhorn(codes, _every_row(cost), size=256)
    assert out.codes[:, 1].tolist() == [106, 176]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=30),
       st.integers(0, 10_000))
def test_the_colliding_rows_distances_resolve_as_every_rows_distances_do(rows, seed):
    """Quantize keeps the distances of the items in collision groups only: same result."""
    codes = np.array(rows)
    rng = np.random.default_rng(seed)
    full = _every_row(rng.random((len(codes), 4)), rng.random((len(codes), 4)))
    kept = colliding_rows(codes)
    only = ResolveDists(kept, full.values[kept])
    assert np.array_equal(reassign(codes, only, [4, 4]).codes,
                          reassign(codes, full, [4, 4]).codes)
    assert np.array_equal(sinkhorn(codes, only, 4).codes, sinkhorn(codes, full, 4).codes)


def test_distances_of_an_item_in_no_collision_group_are_refused():
    dists = ResolveDists(np.array([1, 3]), np.zeros((2, 2, 4), dtype=np.float32))
    assert dists.of(np.array([3, 1])).shape == (2, 2, 4)
    with pytest.raises(ValueError, match="no collision group"):
        dists.of(np.array([2]))
