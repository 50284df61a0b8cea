"""Fusion of several decoded modalities' lists, and target ranks in a top-k list."""
import torch

from pipeline.genrec.decoding import fuse, topk_ranks


def test_fusion_rules_and_ranks():
    text = (torch.tensor([[3, 1, -1]]), torch.tensor([[-0.5, -1.0, -torch.inf]]))
    image = (torch.tensor([[1, 4, 0]]), torch.tensor([[-0.2, -2.0, -3.0]]))
    items, scores = fuse([text, image], 5, "mean", 5)
    assert items.tolist() == [[3, 1, 4, 0, -1]]          # item 1: mean(-1.0, -0.2) = -0.6
    assert torch.allclose(scores[0, :4], torch.tensor([-0.5, -0.6, -2.0, -3.0]))
    items, _ = fuse([text, image], 5, "mean_bonus", 3)
    assert items.tolist() == [[1, 3, 4]]                 # found by both: + 1
    items, scores = fuse([text, image], 5, "max", 2)
    assert items.tolist() == [[1, 3]] and torch.allclose(scores, torch.tensor([[-0.2, -0.5]]))
    assert topk_ranks(torch.tensor([[3, 1, 4], [0, 2, 1]]), torch.tensor([1, 4])).tolist() == [1, 3]


def test_fusion_breaks_ties_by_item_id_and_never_builds_a_catalogue_wide_table():
    text = (torch.tensor([[7, 2, 5]]), torch.tensor([[-1.0, -1.0, -2.0]]))
    image = (torch.tensor([[5, 9, -1]]), torch.tensor([[0.0, -1.0, -torch.inf]]))
    items, scores = fuse([text, image], 10, "mean", 4)
    assert items.tolist() == [[2, 5, 7, 9]]               # all at -1 (5: mean(-2, 0)): by id
    assert scores.tolist() == [[-1.0, -1.0, -1.0, -1.0]]
    # A trillion-item catalogue: a (B, n_items) score table could not be allocated.
    items, scores = fuse([text, image], 10 ** 12, "max", 12)
    assert items.tolist() == [[5, 2, 7, 9, -1, -1, -1, -1, -1, -1, -1, -1]]
    assert scores[0, :4].tolist() == [0.0, -1.0, -1.0, -1.0] and scores[0, 4:].isinf().all()
