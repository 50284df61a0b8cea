import math

import numpy as np
import pytest
import torch

from pipeline.core.metrics import ranking_metrics, target_ranks


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
