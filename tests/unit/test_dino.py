"""DINO loss, centre, EMA and momentum schedule against hand-computed values."""
import math

import pytest

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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rqdino_step_reduces_its_loss_on_a_fixed_batch(seed):
    import copy

    from pipeline.config import CheckpointChoice, Device, RQDINOParams
    from pipeline.models.rqdino import RQDINO, RQDINOConfig, RQDINOHead
    from pipeline.quantizers import rqdino_step

    torch.manual_seed(seed)                                          # module initialisation
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(6, 3, 8, 8, generator=g)                   # 6 tiny "images"
    crops = [images + 0.1 * torch.randn(images.shape, generator=g) for _ in range(4)]
    trunk = nn.Sequential(nn.Flatten(), nn.Linear(192, 24))
    head = RQDINOHead(RQDINOConfig(24, (32,), 8, levels=2, codebook_size=4, projector_dim=16,
                                   prototypes=16))
    student = RQDINO(trunk, head)
    head.init(trunk(images).detach(), g)
    teacher = copy.deepcopy(student).requires_grad_(False)
    p = RQDINOParams((32,), 8, 16, 16, 0.25, 0.01, 6, 1, False, 1, 2, 8, 0.4, 0.05, 0.4, 0.1,
                     0.04, 0.996, 0.9, CheckpointChoice.LAST, Device.CPU)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.05)
    losses = [rqdino_step(student, teacher, crops, torch.zeros(16), optimizer, p)[0]
              for _ in range(30)]
    assert losses[-1] < 0.9 * losses[0]
    assert not torch.equal(student.trunk[1].weight, teacher.trunk[1].weight)  # trunk trained
