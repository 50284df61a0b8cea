"""Filtering and splitting of user-item interaction logs.

Inputs are parallel integer arrays (one entry per interaction); outputs are boolean masks or
per-user lists. Nothing here reads files.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class KCoreResult(NamedTuple):
    keep: np.ndarray       # (N,) bool: interactions that survive
    iterations: int        # passes until no user or item fell below its threshold


def kcore(users: np.ndarray, items: np.ndarray, user_k: int, item_k: int) -> KCoreResult:
    """Iterated k-core: drop users with < user_k and items with < item_k interactions until stable.

    users, items: (N,) non-negative integer ids. Each pass removes every user and item below
    its threshold at once; passes repeat until one removes nothing.
    """
    keep = np.ones(len(users), dtype=bool)
    iterations = 0
    while True:
        iterations += 1
        user_count = np.bincount(users[keep], minlength=int(users.max(initial=-1)) + 1)
        item_count = np.bincount(items[keep], minlength=int(items.max(initial=-1)) + 1)
        survive = keep & (user_count[users] >= user_k) & (item_count[items] >= item_k)
        if np.array_equal(survive, keep):
            return KCoreResult(keep, iterations)
        keep = survive


class Split(NamedTuple):
    user_id: np.ndarray                  # (U,) int64
    train_items: list[list[int]]         # all items but the last two, chronological
    valid_history: list[list[int]]       # last `max_history` of train_items
    valid_item: np.ndarray               # (U,) second-to-last item
    test_history: list[list[int]]        # last `max_history` of train_items + [valid_item]
    test_item: np.ndarray                # (U,) last item


def leave_one_out(users: np.ndarray, items: np.ndarray, max_history: int) -> Split:
    """Leave-one-out split of chronologically sorted interactions.

    users, items: (N,) int arrays, grouped by user and in time order within each user.
    Every user must have at least three interactions (one each for train, validation, test).
    """
    if len(users) and np.any(np.diff(users) < 0):
        raise ValueError("interactions must be sorted by user")
    uids, starts, counts = np.unique(users, return_index=True, return_counts=True)
    if np.any(counts < 3):
        short = uids[counts < 3][:5].tolist()
        raise ValueError(f"users with fewer than 3 interactions cannot be split: {short}")
    train, valid_hist, test_hist = [], [], []
    for start, count in zip(starts.tolist(), counts.tolist()):
        seq = items[start:start + count].tolist()
        train.append(seq[:-2])
        valid_hist.append(seq[:-2][-max_history:])
        test_hist.append(seq[:-1][-max_history:])
    ends = starts + counts
    return Split(uids.astype(np.int64), train, valid_hist, items[ends - 2].astype(np.int64),
                 test_hist, items[ends - 1].astype(np.int64))
