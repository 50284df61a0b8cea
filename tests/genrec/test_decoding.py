"""Fusion of several decoded modalities' lists, and target ranks in a top-k list."""
import pytest
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


def _dense_fuse(results, n_items, rule, k):
    """The catalogue-wide reference: every item's fused score in one (B, n_items) table."""
    items, scores = torch.cat([r[0] for r in results], 1), torch.cat([r[1] for r in results], 1)
    valid = items >= 0
    col = torch.where(valid, items, n_items)
    score = torch.where(valid, scores, 0.0)
    total = torch.zeros(len(items), n_items + 1).scatter_add_(1, col, score)
    count = torch.zeros(len(items), n_items + 1).scatter_add_(1, col, valid.float())
    if rule == "max":
        fused = torch.full((len(items), n_items + 1), -torch.inf).scatter_reduce(
            1, col, torch.where(valid, scores, -torch.inf), "amax")
    else:
        fused = total / count.clamp(min=1) + (rule == "mean_bonus") * (count > 1).float()
    fused = torch.where(count > 0, fused, -torch.inf)[:, :n_items]
    top_scores, top_items = fused.topk(min(k, n_items), dim=1)
    return torch.where(top_scores > -torch.inf, top_items, -1), top_scores


@pytest.mark.parametrize("rule", ["mean", "mean_bonus", "max"])
def test_fusion_equals_the_catalogue_wide_table_on_random_lists(rule):
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        n_items, users, width, k = 30, 3, 8, int(torch.randint(1, 12, (1,), generator=g))
        results = []
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            items = torch.stack([torch.randperm(n_items, generator=g)[:width]
                                 for _ in range(users)])
            items[torch.rand(users, width, generator=g) < 0.2] = -1          # lists that end early
            scores = torch.randn(users, width, generator=g).masked_fill(items < 0, -torch.inf)
            results.append((items, scores))
        items, scores = fuse(results, n_items, rule, k)
        want_items, want_scores = _dense_fuse(results, n_items, rule, k)
        assert torch.equal(items, want_items) and torch.equal(scores, want_scores)
