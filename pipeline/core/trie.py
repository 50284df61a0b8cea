"""Prefix trie over one modality's semantic IDs, as dense per-level tensors.

Level l has `n_nodes[l]` nodes (level 0: the root only) and `sizes[l]` codes. For a node at
level l, `allowed[l][node]` (bool, (K_l,)) marks the codes that continue some catalogue item
and `child[l][node, code]` is the node reached at level l + 1 — at the last level, the item's
row in the codes table — or -1. Constrained training and beam search index these tensors
directly; nothing walks the trie in Python per token.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Trie(NamedTuple):
    allowed: list[torch.Tensor]   # L tensors (n_nodes_l, K_l) bool
    child: list[torch.Tensor]     # L tensors (n_nodes_l, K_l) int64, -1 where not allowed
    item_nodes: torch.Tensor      # (N, L) int64: node of each item's prefix at every level
    sizes: tuple[int, ...]        # K_l per level

    def to(self, device: torch.device) -> "Trie":
        return Trie([a.to(device) for a in self.allowed], [c.to(device) for c in self.child],
                    self.item_nodes.to(device), self.sizes)


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
    allowed, child = [], []
    for l in range(levels):
        count = int(nodes[:, l].max()) + 1
        nxt = nodes[:, l + 1] if l + 1 < levels else np.arange(n)
        table = np.full((count, sizes[l]), -1, dtype=np.int64)
        table[nodes[:, l], codes[:, l]] = nxt
        child.append(torch.from_numpy(table))
        allowed.append(torch.from_numpy(table >= 0))
    return Trie(allowed, child, torch.from_numpy(nodes), sizes)
