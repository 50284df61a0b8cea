"""RQ-DINO's training step (MSCGRec §3.2): student and teacher on a fixed batch."""
import copy

import pytest
import torch
from torch import nn

from pipeline.config import CheckpointChoice, Device, RQDINOParams
from pipeline.models.rqdino import RQDINO, RQDINOConfig, RQDINOHead
from pipeline.quantize.rqdino import rqdino_step


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rqdino_step_reduces_its_loss_on_a_fixed_batch(seed):
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
