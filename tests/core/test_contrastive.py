import math

import torch

from pipeline.core.contrastive import info_nce, one_positive_nce, pseudo_label_nce


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


def test_one_positive_nce_hand_computed_and_draws_among_positives_only():
    # One label. Anchors 0 and 1 (equal rows) have positives with s = 1 (each other) and
    # s = 0 (row 2): term log(e + 1) - s. Anchor 2 sees s = 0 twice: term log 2.
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 0])
    allowed = {round((2 * math.log(math.e + 1) + math.log(2) - drawn) / 3, 5)
               for drawn in (0, 1, 2)}             # drawn: sum of the s of the two draws
    seen = {round(one_positive_nce(x, labels, 1.0, torch.Generator().manual_seed(seed)).item(), 5)
            for seed in range(20)}
    assert seen <= allowed and len(seen) > 1


def test_one_positive_nce_with_a_single_positive_equals_pseudo_label_nce():
    x = torch.randn(6, 4)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])    # exactly one positive each
    assert torch.isclose(one_positive_nce(x, labels, 0.3, torch.Generator().manual_seed(1)),
                         pseudo_label_nce(x, labels, 0.3))
