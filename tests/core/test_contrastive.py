import math

import torch

from pipeline.core.contrastive import info_nce, pseudo_label_nce


def test_info_nce_pairs_rows_by_index():
    a = torch.eye(4)
    assert info_nce(a, a, tau=0.1) < info_nce(a, a[[1, 2, 3, 0]], tau=0.1)


def test_info_nce_hand_computed():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # logits = [[2, 0], [0, 2]] -> each CE = log(1 + e^-2)
    assert torch.isclose(info_nce(a, a, tau=0.5), torch.tensor(math.log1p(math.exp(-2))))


def test_pseudo_label_nce_hand_computed():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])          # item 2 has no positive: not an anchor
    expected = math.log(math.exp(1) + math.exp(0)) - 1.0    # tau = 1
    assert torch.isclose(pseudo_label_nce(x, labels, tau=1.0), torch.tensor(expected))


def test_pseudo_label_nce_without_positives_is_zero_with_gradient():
    x = torch.randn(3, 2, requires_grad=True)
    loss = pseudo_label_nce(x, torch.tensor([0, 1, 2]), tau=0.1)
    loss.backward()
    assert loss.item() == 0.0 and x.grad is not None
