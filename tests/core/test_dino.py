"""DINO loss, centre, EMA and momentum schedule against hand-computed values."""
import math


import torch
from torch import nn

from pipeline.core.dino import dino_loss, ema_update, teacher_momentum, update_center


def test_dino_loss_matches_hand_computation():
    student = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[0.5, 0.5]]])   # 3 views, B=1, P=2
    teacher = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]])                  # 2 global views
    center = torch.tensor([1.0, 0.0])
    loss = dino_loss(student, teacher, center, tau_student=1.0, tau_teacher=1.0)
    t = torch.softmax(teacher[:, 0] - center, dim=-1)
    s = torch.log_softmax(student[:, 0], dim=-1)
    pairs = [(0, 1), (0, 2), (1, 0), (1, 2)]           # the same view is never its own target
    expected = sum(-(t[i] * s[j]).sum() for i, j in pairs) / len(pairs)
    assert torch.isclose(loss, expected)


def test_dino_loss_gradient_flows_to_student_only():
    student = torch.randn(4, 3, 5, requires_grad=True)
    teacher = torch.randn(2, 3, 5, requires_grad=True)
    dino_loss(student, teacher, torch.zeros(5), 0.1, 0.04).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_identical_sharp_views_give_lower_loss_than_disagreeing_ones():
    agree = torch.tensor([[[5.0, 0.0]], [[5.0, 0.0]]])
    disagree = torch.tensor([[[5.0, 0.0]], [[0.0, 5.0]]])
    c = torch.zeros(2)
    assert dino_loss(agree, agree, c, 0.1, 0.04) < dino_loss(disagree, disagree, c, 0.1, 0.04)


def test_center_and_ema():
    teacher = torch.tensor([[[1.0, 3.0], [3.0, 5.0]]])
    center = update_center(torch.zeros(2), teacher, momentum=0.9)
    assert torch.allclose(center, torch.tensor([0.2, 0.4]))
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    before = a.weight.detach().clone()
    ema_update(a, b, momentum=0.75)
    assert torch.allclose(a.weight, 0.75 * before + 0.25 * b.weight)


def test_momentum_schedule_runs_from_base_to_one():
    assert math.isclose(teacher_momentum(0, 100, 0.996), 0.996)
    assert math.isclose(teacher_momentum(100, 100, 0.996), 1.0)
    assert 0.996 < teacher_momentum(50, 100, 0.996) < 1.0
