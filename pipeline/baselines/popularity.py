"""The popularity baseline: every user gets the items most frequent in the test histories."""
from __future__ import annotations

import numpy as np
import torch

from pipeline.core.metrics import mask_seen_scores, padded_histories, ranking_metrics, target_ranks


def popularity_metrics(all_histories: list[list[int]], histories: list[list[int]],
                       targets: np.ndarray, n_items: int, chunk: int = 1024) -> dict[str, float]:
    """Every user gets the items most frequent in the test histories (what is known at test
    time); ties rank against the target. Both protocols: `popularity/...` ranks every item,
    `popularity_masked/...` leaves each user's own history items out of their ranking."""
    counts = torch.from_numpy(np.bincount(
        np.concatenate([np.asarray(h, dtype=np.int64) for h in all_histories]),
        minlength=n_items).astype(np.float32))
    target_t = torch.from_numpy(np.asarray(targets, dtype=np.int64))
    ranks, masked = [], []
    for start in range(0, len(histories), chunk):
        tgt = target_t[start:start + chunk]
        scores = counts[None].expand(len(tgt), -1)
        ranks.append(target_ranks(scores, tgt).numpy())
        seen = padded_histories(histories[start:start + chunk])
        masked.append(target_ranks(mask_seen_scores(scores, seen, tgt), tgt).numpy())
    return (ranking_metrics(np.concatenate(ranks), "popularity")
            | ranking_metrics(np.concatenate(masked), "popularity_masked"))
