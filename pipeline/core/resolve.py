"""Conflict resolution: turn raw semantic IDs (several items may share one) into unique IDs.

Three strategies, each returning a `Resolved` whose codes are unique per item or raising:
- `append` (TIGER): one extra level numbering the items inside each colliding group;
- `reassign` (MQL4GRec / MACRec): the item nearest its codeword keeps the code, the others
  move to their nearest free last-level codeword, then to a free code under the nearest
  other codeword of the level above; unlike the public code it never stops while a collision
  remains, and falls back to `append` only when no free code is left;
- `sinkhorn`: balanced last-level assignment inside each colliding prefix group.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


RESOLVE_LEVELS = 2    # reassign looks at the last two levels, sinkhorn at the last one


class ResolveDists(NamedTuple):
    """The distances conflict resolution needs, for the items of collision groups only (their
    number M is what memory grows with, not N x K): each one's distance from its residual to
    every codeword of the last J = min(RESOLVE_LEVELS, L) levels."""
    rows: np.ndarray      # (M,) int64 ascending: row numbers in the (N, L) code table
    values: np.ndarray    # (M, J, K) float32

    def of(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), J, K) distances of the given rows; each must be one of `self.rows`."""
        at = np.searchsorted(self.rows, rows)
        if len(rows) and (at.max() >= len(self.rows) or (self.rows[at] != rows).any()):
            raise ValueError("distances asked for an item that is in no collision group")
        return self.values[at]


class Resolved(NamedTuple):
    codes: np.ndarray      # (N, L) or (N, L + 1) int64, unique rows
    moved: int             # items whose code differs from the raw one
    appended: bool         # whether an extra level was added


def collision_groups(codes: np.ndarray) -> list[np.ndarray]:
    """Item indices of every group of 2+ items sharing a code, in sorted code order."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(counts)[:-1]
    return [g for g in np.split(order, bounds) if len(g) > 1]


def colliding_rows(codes: np.ndarray) -> np.ndarray:
    """(M,) int64 ascending: the rows of (N, L) codes that share their code with another row."""
    groups = collision_groups(codes)
    return np.sort(np.concatenate(groups)) if groups else np.zeros(0, dtype=np.int64)


def collision_rate(codes: np.ndarray) -> float:
    """Share of items whose code is also some other item's code."""
    return sum(len(g) for g in collision_groups(codes)) / max(len(codes), 1)


def code_stats(codes: np.ndarray, size: int) -> dict[str, float]:
    """Collision rate, and per level the number of codes used and the code perplexity."""
    stats = {"items": int(len(codes)), "collision_rate": round(collision_rate(codes), 6)}
    for level in range(codes.shape[1]):
        counts = np.bincount(codes[:, level], minlength=size)
        p = counts[counts > 0] / counts.sum()
        stats[f"level_{level + 1}/used"] = int((counts > 0).sum())
        stats[f"level_{level + 1}/perplexity"] = round(float(np.exp(-(p * np.log(p)).sum())), 3)
    return stats


def append(codes: np.ndarray) -> Resolved:
    """Add a level: 0 for the first item (by index) of each code, 1 for the next, ..."""
    extra = np.zeros(len(codes), dtype=np.int64)
    for group in collision_groups(codes):
        extra[group] = np.arange(len(group))
    out = np.concatenate([codes.astype(np.int64), extra[:, None]], axis=1)
    return Resolved(_check_unique(out), 0, True)


def reassign(codes: np.ndarray, dists: ResolveDists | None, sizes: list[int]) -> Resolved:
    """Distance-based re-assignment at the last two levels (MQL4GRec / MACRec).

    codes: (N, L) raw codes; sizes: codebook size per level; dists: the colliding items'
    distances to every codeword of the last two levels, or None (imported codes: all distances
    equal, so the nearest free code is the lowest-numbered one).
    """
    codes = codes.astype(np.int64).copy()
    n, levels = codes.shape
    used = {tuple(row) for row in codes.tolist()}
    moved = 0
    for group in collision_groups(codes):
        near = _group_dists(dists, group, sizes)
        last = near[-1][np.arange(len(group)), codes[group, -1]]
        order = np.lexsort((group, last))                 # nearest keeps; ties by index
        for at in order[1:]:
            new = _free_code(codes[group[at]], [d[at] for d in near], used)
            if new is None:    # the whole space around this code is taken
                return Resolved(append(codes).codes, moved, True)
            used.add(new)
            codes[group[at]] = new
            moved += 1
    return Resolved(_check_unique(codes), moved, False)


def _group_dists(dists: ResolveDists | None, group: np.ndarray,
                 sizes: list[int]) -> list[np.ndarray]:
    """The group's (G, K_l) distances at each of the last min(2, L) levels (zeros without
    distances)."""
    if dists is None:
        return [np.zeros((len(group), k)) for k in sizes[-RESOLVE_LEVELS:]]
    return list(dists.of(group).transpose(1, 0, 2))


def _free_code(code: np.ndarray, near: list[np.ndarray], used: set) -> tuple | None:
    """Nearest free last-level code under the item's prefix, then under the nearest other
    codewords of the level above; None when every such code is taken. near: the item's
    distances to the codewords of the last one or two levels."""
    prefix = tuple(code[:-1].tolist())
    for c in np.argsort(near[-1], kind="stable"):
        if prefix + (int(c),) not in used:
            return prefix + (int(c),)
    if len(code) < 2:
        return None
    for c2 in np.argsort(near[-2], kind="stable"):
        upper = prefix[:-1] + (int(c2),)
        for c in np.argsort(near[-1], kind="stable"):
            if upper + (int(c),) not in used:
                return upper + (int(c),)
    return None


def sinkhorn(codes: np.ndarray, dists: ResolveDists | None, size: int,
             iterations: int = 50, epsilon: float = 0.05) -> Resolved:
    """Balanced last-level assignment for each colliding prefix group.

    Items that share their first L-1 levels and collide are re-assigned among the last-level
    codewords not used by the rest of the prefix group: an entropic optimal-transport plan on
    the distances (every item placed, every codeword taken at most once), rounded greedily to
    a one-to-one assignment. Groups larger than the free codes fall back to `append` for
    everything.
    """
    codes = codes.astype(np.int64).copy()
    moved = 0
    for group in collision_groups(codes):
        prefix = codes[group[0], :-1]
        same_prefix = np.flatnonzero((codes[:, :-1] == prefix).all(axis=1))
        taken = set(codes[np.setdiff1d(same_prefix, group), -1].tolist())
        free = np.array([c for c in range(size) if c not in taken])
        if len(free) < len(group):
            return Resolved(append(codes).codes, moved, True)
        plan = _sinkhorn_plan(_group_dists(dists, group, [size])[-1][:, free], iterations,
                              epsilon)
        choice = _greedy_round(plan)
        new_last = free[choice]
        moved += int((new_last != codes[group, -1]).sum())
        codes[group, -1] = new_last
    return Resolved(_check_unique(codes), moved, False)


def _sinkhorn_plan(cost: np.ndarray, iterations: int, epsilon: float) -> np.ndarray:
    """(g, f) entropic transport plan (g <= f): each row (item) sends mass 1, each column (free
    codeword) receives at most 1, so an item keeps its near codewords unless another item
    needs them more.

    Sinkhorn-Knopp in the log domain, with the column constraint an inequality (its scaling
    is capped at 1). The log domain matters: distances spread over many standard deviations
    of epsilon underflow the kernel exp(-cost / eps) (in float32, to exact zeros), and the
    rounding of the plain scalings then picked codewords whatever their distance.
    """
    cost = cost.astype(np.float64)    # quantize saves float32 distances
    scale = cost.std() if cost.std() > 0 else 1.0
    log_kernel = -(cost - cost.min()) / (epsilon * scale)
    log_u, log_v = np.zeros(cost.shape[0]), np.zeros(cost.shape[1])
    for _ in range(iterations):
        log_v = np.minimum(0.0, -_logsumexp(log_kernel.T + log_u[None, :]))
        log_u = -_logsumexp(log_kernel + log_v[None, :])
    return np.exp(log_u[:, None] + log_kernel + log_v[None, :])


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x), axis=1)) without overflow or underflow."""
    top = x.max(axis=1)
    return top + np.log(np.exp(x - top[:, None]).sum(axis=1))


def _greedy_round(plan: np.ndarray) -> np.ndarray:
    """One distinct column per row, taking the largest remaining plan entries first."""
    choice = np.full(plan.shape[0], -1)
    taken = np.zeros(plan.shape[1], dtype=bool)
    for flat in np.argsort(-plan, axis=None, kind="stable"):
        r, c = divmod(int(flat), plan.shape[1])
        if choice[r] < 0 and not taken[c]:
            choice[r], taken[c] = c, True
    return choice


def _check_unique(codes: np.ndarray) -> np.ndarray:
    if len(np.unique(codes, axis=0)) != len(codes):
        raise AssertionError("conflict resolution left duplicate semantic IDs")
    return codes
