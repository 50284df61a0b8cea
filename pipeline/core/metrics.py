"""Full-ranking top-K metrics with one target per user (HR@K equals Recall@K then)."""
from __future__ import annotations

import numpy as np
import torch

KS_HR = (1, 5, 10)
KS_NDCG = (5, 10)


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
