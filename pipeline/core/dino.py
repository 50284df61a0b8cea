"""DINO self-distillation (Caron et al., ICCV 2021) pieces used by RQ-DINO (pure torch)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def dino_loss(student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor,
              tau_student: float, tau_teacher: float) -> torch.Tensor:
    """Cross-entropy between the centred, sharpened teacher distribution and the student's.

    student: (S, B, P) logits of S views; teacher: (T, B, P) logits of the first T of those
    views (the global crops); center: (P,). Every (teacher view i, student view j) pair with
    i != j contributes H(softmax((t_i - c) / tau_t), softmax(s_j / tau_s)); the mean over
    pairs and batch rows is returned. The teacher side carries no gradient.
    """
    targets = F.softmax((teacher - center) / tau_teacher, dim=-1).detach()
    log_probs = F.log_softmax(student / tau_student, dim=-1)
    total, pairs = student.new_zeros(()), 0
    for i in range(len(targets)):
        for j in range(len(log_probs)):
            if i != j:
                total = total - (targets[i] * log_probs[j]).sum(dim=-1).mean()
                pairs += 1
    return total / pairs


@torch.no_grad()
def update_center(center: torch.Tensor, teacher: torch.Tensor, momentum: float) -> torch.Tensor:
    """EMA of the mean teacher logit (teacher: (T, B, P)) — DINO's centering against collapse."""
    return center * momentum + teacher.mean(dim=(0, 1)) * (1.0 - momentum)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student, parameter by parameter."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)


def teacher_momentum(step: int, total: int, base: float) -> float:
    """DINO's cosine schedule from `base` at step 0 to 1.0 at the last step."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * step / max(total, 1)) + 1.0) / 2.0
