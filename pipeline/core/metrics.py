"""Full-ranking top-K metrics with one target per user (HR@K equals Recall@K then), and the
users they are computed on."""
from __future__ import annotations

import numpy as np
import torch

KS_HR = (1, 5, 10)
KS_NDCG = (5, 10)


def evaluated_rows(n_users: int, sample: int, seed: int) -> np.ndarray:
    """Rows of the users an evaluation ranks, ascending: all `n_users` when `sample` is 0 or
    not smaller, else a sample of `sample` users drawn with `seed` (the same users on every
    call)."""
    if sample == 0 or sample >= n_users:
        return np.arange(n_users)
    return np.sort(np.random.default_rng(seed).permutation(n_users)[:sample])


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among all items.

    scores: (B, N) float, higher is better; targets: (B,) int64 item indices.
    Ties count against the target (a target tied with others ranks after them), so a model
    that scores everything equally gets no credit.
    """
    target_scores = scores.gather(1, targets[:, None])
    return (scores >= target_scores).sum(dim=1) - 1


def ranking_metrics(ranks: np.ndarray, prefix: str) -> dict[str, float]:
    """HR@{1,5,10} and NDCG@{5,10} from 0-based target ranks; keys like `test/hr_10`.

    NDCG with one relevant item is 1 / log2(rank + 2) inside the cut-off, else 0.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        raise ValueError("no ranks to evaluate")
    out = {f"{prefix}/hr_{k}": float(np.mean(ranks < k)) for k in KS_HR}
    gains = 1.0 / np.log2(ranks + 2.0)
    out |= {f"{prefix}/ndcg_{k}": float(np.mean(np.where(ranks < k, gains, 0.0))) for k in KS_NDCG}
    return out


def padded_histories(histories: list[list[int]]) -> torch.Tensor:
    """(U, H) int64 item indices, right-padded with -1 to the longest history."""
    width = max((len(h) for h in histories), default=0)
    out = torch.full((len(histories), max(width, 1)), -1, dtype=torch.long)
    for row, history in enumerate(histories):
        out[row, :len(history)] = torch.as_tensor(history, dtype=torch.long)
    return out


def mask_seen_scores(scores: torch.Tensor, history: torch.Tensor,
                     targets: torch.Tensor) -> torch.Tensor:
    """Scores (B, N) with each user's history items (B, H; -1 = padding) set to -inf, the
    target's own score kept: the history-masked protocol for score-based rankers."""
    seen = torch.zeros_like(scores)
    seen.scatter_add_(1, history.clamp(min=0), (history >= 0).to(scores.dtype))
    kept = scores.gather(1, targets[:, None])
    return scores.masked_fill(seen > 0, -torch.inf).scatter(1, targets[:, None], kept)


def drop_seen(top: torch.Tensor, history: torch.Tensor, targets: torch.Tensor,
              k: int) -> torch.Tensor:
    """The ranked lists top (U, W) without each user's history items (U, H; -1 = padding),
    the target always kept, order kept, cut to k and right-padded with -1: the
    history-masked protocol for models that return lists (beam search). A row keeps fewer
    than k items when its candidates were mostly history items."""
    seen = (top[:, :, None] == history[:, None, :]).any(dim=2)
    seen &= top != targets[:, None]
    seen |= top < 0
    width = top.shape[1]
    order = torch.argsort(seen.long() * width + torch.arange(width), dim=1)
    kept = torch.where(seen.gather(1, order), -1, top.gather(1, order))
    return torch.nn.functional.pad(kept, (0, max(0, k - width)), value=-1)[:, :k]
