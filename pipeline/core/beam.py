"""Trie-constrained beam search, batched over users and vectorised over beams.

The model is reached through `step(tokens (B*W,), state) -> (logits (B*W, V), state)` and
`reorder(state, index (B*W,)) -> state` (e.g. a KV cache gathered along the batch); the trie
masks every level at once with tensor indexing. Every returned item is a real catalogue row.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from pipeline.core.trie import Trie


class BeamOutput(NamedTuple):
    items: torch.Tensor    # (B, W) int64 rows of the codes table, best first; -1 past the end
    scores: torch.Tensor   # (B, W) float: sequence log-probability, -inf past the end


def level_log_probs(logits: torch.Tensor, offset: int, allowed: torch.Tensor,
                    normalize: str) -> torch.Tensor:
    """(R, V) logits -> (R, K) log-probabilities of one level's codes, -inf where the trie
    forbids them. `full`: softmax over the whole vocabulary (what HF `generate` with a
    prefix_allowed_tokens_fn scores); `trie`: softmax over the allowed codes only (what
    constrained sequence learning trains)."""
    k = allowed.shape[1]
    if normalize == "full":
        logits = logits.float()
        scores = logits[:, offset:offset + k] - torch.logsumexp(logits, dim=-1, keepdim=True)
        return scores.masked_fill(~allowed, -torch.inf)
    masked = logits[:, offset:offset + k].float().masked_fill(~allowed, -torch.inf)
    # A node with no allowed code gives NaN; nan_to_num would also turn -inf into the
    # lowest finite float, which a beam would take for a live candidate.
    return torch.log_softmax(masked, dim=-1).nan_to_num(nan=-torch.inf, neginf=-torch.inf)


@torch.no_grad()
def beam_search(step: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]],
                reorder: Callable[[Any, torch.Tensor], Any], state: Any, batch: int, trie: Trie,
                offsets: list[int], beam: int, start_token: int = 0,
                normalize: str = "full") -> BeamOutput:
    """Top-`beam` items per user by constrained beam search over the trie's levels.

    `state` holds one row per user: the first step scores the root once per user, and the
    first `reorder` expands the rows to `beam` per user (rows b * beam .. b * beam + W - 1);
    `offsets[l]` is the vocabulary id of code 0 of level l.
    """
    device = trie.item_nodes.device
    scores = torch.zeros(batch, 1, device=device)            # one live beam at the root
    nodes = torch.zeros(batch, dtype=torch.long, device=device)
    tokens = torch.full((batch,), start_token, dtype=torch.long, device=device)
    for level, k in enumerate(trie.sizes):
        w = scores.shape[1]
        logits, state = step(tokens, state)
        allowed = trie.allowed(level, nodes)                                 # (B*w, K)
        cand = scores.reshape(-1, 1) + level_log_probs(logits, offsets[level], allowed, normalize)
        cand = cand.reshape(batch, w * k)
        if w * k < beam:                 # fewer candidates than beams: pad with dead ones
            cand = torch.nn.functional.pad(cand, (0, beam - w * k), value=-torch.inf)
        scores, flat = cand.topk(beam, dim=1)                                # (B, W)
        alive = scores > -torch.inf
        flat = torch.where(alive, flat, torch.zeros_like(flat))
        parent, code = flat // k, flat % k
        rows = ((torch.arange(batch, device=device) * w)[:, None] + parent).reshape(-1)
        nodes = trie.child(level, nodes[rows], code.reshape(-1))
        nodes = torch.where(alive.reshape(-1), nodes, torch.zeros_like(nodes))
        tokens = code.reshape(-1) + offsets[level]
        if level + 1 < len(trie.sizes):
            state = reorder(state, rows)
    items = torch.where(scores > -torch.inf, nodes.reshape(batch, beam), -1)
    return BeamOutput(items, scores)
