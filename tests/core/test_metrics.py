import math

import numpy as np
import pytest
import torch

from pipeline.core.metrics import (
    drop_seen, evaluated_rows, mask_seen_scores, padded_histories, ranking_metrics,
    target_ranks,
)


def test_target_ranks_counts_ties_against_the_target():
    scores = torch.tensor([[0.1, 0.9, 0.5], [1.0, 1.0, 1.0]])
    assert target_ranks(scores, torch.tensor([2, 0])).tolist() == [1, 2]


def test_ranking_metrics_hand_computed():
    metrics = ranking_metrics(np.array([0, 3, 12]), "test")
    assert metrics["test/hr_1"] == pytest.approx(1 / 3)
    assert metrics["test/hr_5"] == pytest.approx(2 / 3)
    assert metrics["test/hr_10"] == pytest.approx(2 / 3)
    assert metrics["test/ndcg_5"] == pytest.approx((1.0 + 1 / math.log2(5)) / 3)
    assert metrics["test/ndcg_10"] == metrics["test/ndcg_5"]


def test_ranking_metrics_rejects_empty():
    with pytest.raises(ValueError):
        ranking_metrics(np.array([]), "x")


def test_drop_seen_removes_history_keeps_order_and_the_target():
    top = torch.tensor([[5, 1, 7, 2, 9], [3, 4, -1, -1, -1]])
    history = padded_histories([[1, 2], [4, 3, 8]])
    targets = torch.tensor([9, 3])                  # 3 is in row 1's history: still kept
    kept = drop_seen(top, history, targets, 4)
    assert kept.tolist() == [[5, 7, 9, -1], [3, -1, -1, -1]]


def test_mask_seen_scores_hides_history_but_not_the_target():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7]])
    masked = mask_seen_scores(scores, torch.tensor([[1, 3, -1]]), torch.tensor([3]))
    assert torch.equal(masked, torch.tensor([[0.1, -float("inf"), 0.5, 0.7]]))
    assert target_ranks(masked, torch.tensor([3])).tolist() == [0]
    assert target_ranks(scores, torch.tensor([3])).tolist() == [1]


def test_evaluated_rows_are_everyone_or_the_same_seeded_sample():
    assert evaluated_rows(7, 0, seed=1).tolist() == list(range(7))
    assert evaluated_rows(7, 7, seed=1).tolist() == list(range(7))
    rows = evaluated_rows(1000, 50, seed=1)
    assert len(set(rows.tolist())) == 50 and rows.tolist() == sorted(rows.tolist())
    assert rows.min() >= 0 and rows.max() < 1000
    assert np.array_equal(rows, evaluated_rows(1000, 50, seed=1))
    assert not np.array_equal(rows, evaluated_rows(1000, 50, seed=2))
