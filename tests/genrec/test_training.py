"""The generative recommender's learning-rate schedules and optimizer parameter groups."""
import math

import pytest
import torch

from pipeline.config import Schedule
from pipeline.genrec.training import lr_lambda, optimizer_groups


@pytest.mark.parametrize("schedule", list(Schedule))
def test_warm_up_is_linear_then_the_schedule_starts_at_one(schedule):
    factor = lr_lambda(1000, 0.1, schedule)
    assert [factor(s) for s in (0, 49, 99)] == pytest.approx([0.01, 0.5, 1.0])
    assert factor(100) == pytest.approx(1.0)


def test_cosine_reaches_zero_at_the_horizon_inverse_sqrt_and_constant_do_not():
    assert lr_lambda(1000, 0.1, Schedule.COSINE)(550) == pytest.approx(0.5)
    assert lr_lambda(1000, 0.1, Schedule.COSINE)(1000) == pytest.approx(0.0)
    assert lr_lambda(1000, 0.1, Schedule.INVERSE_SQRT)(400) == pytest.approx(0.5)
    assert lr_lambda(1000, 0.1, Schedule.INVERSE_SQRT)(4000) == pytest.approx(math.sqrt(100 / 4000))
    assert lr_lambda(1000, 0.1, Schedule.CONSTANT)(5000) == 1.0


def test_weight_decay_skips_vectors():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    decayed, plain = optimizer_groups(model, 0.1)
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert [p.shape for p in decayed["params"]] == [torch.Size([3, 4])]
    assert len(plain["params"]) == 3                   # linear bias, norm weight and bias
    optimizer = torch.optim.AdamW([decayed, plain], lr=1.0)
    norm = model[1].weight
    before = norm.detach().clone()
    optimizer.step()                                   # no gradients: only decay could move it
    assert torch.equal(norm, before)
