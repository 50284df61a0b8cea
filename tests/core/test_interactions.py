import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.interactions import kcore, leave_one_out


def test_kcore_hand_computed_needs_two_passes():
    # user 0: items 0,1,2 ; user 1: items 0,1 ; user 2: item 2 only.
    # Pass 1 (k=2): user 2 has 1 -> removed; item 2 has 2 (users 0,2) -> survives pass 1.
    # Pass 2: item 2 now has 1 -> removed. Pass 3: stable (users 0,1 have 2 each).
    users = np.array([0, 0, 0, 1, 1, 2])
    items = np.array([0, 1, 2, 0, 1, 2])
    result = kcore(users, items, user_k=2, item_k=2)
    assert result.keep.tolist() == [True, True, False, True, True, False]
    assert result.iterations == 3


def test_kcore_can_empty_everything():
    result = kcore(np.array([0, 1]), np.array([0, 1]), user_k=2, item_k=1)
    assert not result.keep.any()


def _reference_kcore(pairs, user_k, item_k):
    """Remove one violating user or item at a time; the k-core does not depend on the order."""
    alive = list(range(len(pairs)))
    while True:
        users = [pairs[j][0] for j in alive]
        items = [pairs[j][1] for j in alive]
        bad_user = next((u for u in users if users.count(u) < user_k), None)
        bad_item = next((i for i in items if items.count(i) < item_k), None)
        if bad_user is not None:
            alive = [j for j in alive if pairs[j][0] != bad_user]
        elif bad_item is not None:
            alive = [j for j in alive if pairs[j][1] != bad_item]
        else:
            return alive


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), min_size=1, max_size=80),
       st.integers(1, 4), st.integers(1, 4))
def test_kcore_matches_one_at_a_time_reference(pairs, user_k, item_k):
    users = np.array([p[0] for p in pairs])
    items = np.array([p[1] for p in pairs])
    keep = kcore(users, items, user_k, item_k).keep
    assert np.flatnonzero(keep).tolist() == _reference_kcore(pairs, user_k, item_k)


def test_leave_one_out_hand_computed():
    users = np.array([0, 0, 0, 0, 1, 1, 1])
    items = np.array([5, 6, 7, 8, 1, 2, 3])
    split = leave_one_out(users, items, max_history=1)
    assert split.user_id.tolist() == [0, 1]
    assert split.train_items == [[5, 6], [1]]
    assert split.valid_history == [[6], [1]]
    assert split.valid_item.tolist() == [7, 2]
    assert split.test_history == [[7], [2]]
    assert split.test_item.tolist() == [8, 3]


def test_leave_one_out_rejects_short_and_unsorted():
    with pytest.raises(ValueError, match="fewer than 3"):
        leave_one_out(np.array([0, 0]), np.array([1, 2]), 20)
    with pytest.raises(ValueError, match="sorted by user"):
        leave_one_out(np.array([1, 1, 1, 0, 0, 0]), np.arange(6), 20)
