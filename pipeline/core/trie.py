"""Prefix trie over one modality's semantic IDs, as sorted edge lists per level.

Level l has `n_nodes[l]` nodes (level 0: the root only) and `sizes[l]` codes. Its edges are
kept as one sorted key per edge (`node * K_l + code`) with the node reached at level l + 1 —
at the last level, the item's row in the codes table — and `ptr`, where each node's edges
start. Memory grows with the edges (at most N per level), not with nodes x K: a dense
(nodes, K) table would take ~2.3 GB per modality at a million items with 4 x 256 codes.
`allowed` (the codes that continue a prefix, as a (R, K) mask) and `child` (the next node)
are batched tensor operations; nothing walks the trie in Python per token.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Trie(NamedTuple):
    keys: list[torch.Tensor]      # L tensors (E_l,) int64: node * K_l + code, ascending
    ptr: list[torch.Tensor]       # L tensors (n_nodes_l + 1,) int64: node n's edges are
                                  # keys[ptr[n]:ptr[n + 1]]
    target: list[torch.Tensor]    # L tensors (E_l,) int64: the node each edge leads to
    item_nodes: torch.Tensor      # (N, L) int64: node of each item's prefix at every level
    sizes: tuple[int, ...]        # K_l per level

    def to(self, device: torch.device) -> "Trie":
        return Trie([k.to(device) for k in self.keys], [p.to(device) for p in self.ptr],
                    [t.to(device) for t in self.target], self.item_nodes.to(device), self.sizes)

    def allowed(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """(R, K_l) bool: the codes that continue each of the (R,) nodes of `level`. On the
        CPU by walking the nodes' edges (work in proportion to the edges); on an accelerator
        by `allowed_lookup`, whose shapes are known before it runs, so that the device is
        never waited for (the edge walk must read its edge count back first)."""
        if nodes.device.type == "cpu":
            return self.allowed_edges(level, nodes)
        return self.allowed_lookup(level, nodes)

    def allowed_edges(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """`allowed` by walking each node's edges."""
        k, ptr = self.sizes[level], self.ptr[level]
        start = ptr[nodes]
        counts = ptr[nodes + 1] - start
        rows = torch.repeat_interleave(torch.arange(len(nodes), device=nodes.device), counts)
        first = torch.cumsum(counts, 0) - counts                 # each row's first slot
        edge = torch.arange(len(rows), device=nodes.device) - first[rows] + start[rows]
        mask = torch.zeros(len(nodes), k, dtype=torch.bool, device=nodes.device)
        mask[rows, self.keys[level][edge] % k] = True
        return mask

    def allowed_lookup(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """`allowed` by looking every (node, code) pair up in the level's sorted keys:
        R x K_l binary searches, fixed shapes, no host synchronisation."""
        k = self.sizes[level]
        keys = self.keys[level]
        query = nodes[:, None] * k + torch.arange(k, device=nodes.device)
        pos = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)
        return keys[pos] == query

    def child(self, level: int, nodes: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """(R,) int64: the node that `codes` lead to from `nodes` at `level` (at the last level,
        the item's row), -1 where the trie has no such edge."""
        keys = self.keys[level]
        query = nodes * self.sizes[level] + codes
        pos = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)
        return torch.where(keys[pos] == query, self.target[level][pos], -1)


def build_trie(codes: np.ndarray, sizes: tuple[int, ...] | None = None) -> Trie:
    """Trie of (N, L) non-negative integer codes whose rows are unique. `sizes` (K_l per
    level) defaults to the largest code of each level + 1."""
    codes = np.asarray(codes, dtype=np.int64)
    n, levels = codes.shape
    if n == 0:
        raise ValueError("cannot build a trie over zero items")
    if len(np.unique(codes, axis=0)) != n:
        raise ValueError("semantic IDs must be unique to build the trie (run resolve)")
    sizes = tuple(int(k) for k in (sizes or codes.max(axis=0) + 1))
    if codes.min() < 0 or any(codes[:, l].max() >= sizes[l] for l in range(levels)):
        raise ValueError(f"codes out of range for level sizes {sizes}")
    nodes = np.zeros((n, levels), dtype=np.int64)
    for l in range(1, levels):
        _, nodes[:, l] = np.unique(codes[:, :l], axis=0, return_inverse=True)
    keys, ptr, target = [], [], []
    for l in range(levels):
        count = int(nodes[:, l].max()) + 1
        nxt = nodes[:, l + 1] if l + 1 < levels else np.arange(n)
        level_keys, first = np.unique(nodes[:, l] * sizes[l] + codes[:, l], return_index=True)
        keys.append(torch.from_numpy(level_keys))
        ptr.append(torch.from_numpy(np.searchsorted(level_keys, np.arange(count + 1) * sizes[l])))
        target.append(torch.from_numpy(nxt[first]))
    return Trie(keys, ptr, target, torch.from_numpy(nodes), sizes)
