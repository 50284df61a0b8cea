"""Semantic-ID trie, constrained beam search and score fusion on toy tensors."""
import itertools

import numpy as np
import pytest
import torch

from pipeline.core.beam import beam_search, level_log_probs
from pipeline.core.trie import build_trie

CODES = np.array([[0, 1, 2], [0, 1, 0], [0, 2, 1], [1, 0, 0], [2, 2, 2], [2, 0, 1]])


def test_trie_accepts_exactly_the_catalogue_prefixes():
    trie = build_trie(CODES, (3, 3, 3))
    prefixes = {tuple(c[:l]) for c in CODES.tolist() for l in range(4)}
    for length in range(3):
        for prefix in itertools.product(range(3), repeat=length):
            node, ok = 0, True
            for level, code in enumerate(prefix):
                if not ok or not trie.allowed(level, torch.tensor([node]))[0, code]:
                    ok = False
                    break
                node = int(trie.child(level, torch.tensor([node]), torch.tensor([code]))[0])
            assert ok == (tuple(prefix) in prefixes)
    leaves = {tuple(CODES[r]) for r in range(len(CODES))}
    for row, code in enumerate(CODES):        # the last level leads to the item's row
        assert trie.child(2, trie.item_nodes[row, 2:], torch.tensor(code[2:])) == row
    assert len(leaves) == len(CODES)


def test_trie_masks_and_children_match_a_dense_table_on_random_codes():
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, 6, size=(300, 4)), axis=0)
    trie = build_trie(codes, (6, 6, 6, 6))
    for level in range(4):
        prefixes = {tuple(c[:level]) for c in codes.tolist()}
        # the dense reference: which codes continue each node's prefix, and where they lead
        node_of = {tuple(codes[r, :level]): int(trie.item_nodes[r, level]) for r in range(len(codes))}
        assert sorted(node_of.values()) == list(range(len(prefixes)))
        nodes = torch.tensor(sorted(node_of.values()))
        mask = trie.allowed(level, nodes)
        for prefix, node in node_of.items():
            expected = {c[level] for c in codes.tolist() if tuple(c[:level]) == prefix}
            assert set(torch.nonzero(mask[node]).flatten().tolist()) == expected
        all_nodes = nodes.repeat_interleave(6)
        all_codes = torch.arange(6).repeat(len(nodes))
        found = trie.child(level, all_nodes, all_codes)
        assert torch.equal(found >= 0, mask.flatten())
    rows = trie.child(3, trie.item_nodes[:, 3], torch.from_numpy(codes[:, 3]))
    assert rows.tolist() == list(range(len(codes)))     # the last level leads to each item's row


def test_trie_refuses_duplicates_and_out_of_range_codes():
    with pytest.raises(ValueError, match="unique"):
        build_trie(np.array([[0, 1], [0, 1]]))
    with pytest.raises(ValueError, match="out of range"):
        build_trie(np.array([[0, 3]]), (2, 2))


class ToyModel:
    """Logits depend on (user, step, previous token): a stand-in decoder with a 'cache'."""

    def __init__(self, users: int, vocab: int, levels: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(users, levels, vocab, vocab, generator=g) * 2

    def step(self, tokens, state):
        user, level = state
        logits = self.table[user, level, tokens]
        return logits, (user, level + 1)

    @staticmethod
    def reorder(state, rows):
        user, level = state
        return user[rows], level


def _exact(model, user, codes, offsets, normalize):
    """Exact sequence log-likelihood of every item, by teacher forcing."""
    trie = build_trie(codes, (3, 3, 3))
    out = []
    for row in range(len(codes)):
        total, token, node = 0.0, 0, 0
        for level in range(codes.shape[1]):
            logits = model.table[user, level, token][None]
            lp = level_log_probs(logits, offsets[level], trie.allowed(level, torch.tensor([node])), normalize)
            total += float(lp[0, codes[row, level]])
            node = int(trie.child(level, torch.tensor([node]), torch.tensor([codes[row, level]]))[0])
            token = codes[row, level] + offsets[level]
        out.append(total)
    return np.array(out)


@pytest.mark.parametrize("normalize", ["full", "trie"])
def test_beam_at_catalogue_size_equals_exact_ranking(normalize):
    offsets, vocab, users, beam = [2, 5, 8], 11, 4, len(CODES)
    model = ToyModel(users, vocab, 3)
    trie = build_trie(CODES, (3, 3, 3))
    state = (torch.arange(users), 0)
    out = beam_search(model.step, model.reorder, state, users, trie, offsets, beam,
                      normalize=normalize)
    for user in range(users):
        exact = _exact(model, user, CODES, offsets, normalize)
        order = np.argsort(-exact, kind="stable")
        assert out.items[user].tolist() == order.tolist()
        np.testing.assert_allclose(out.scores[user].numpy(), exact[order], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("normalize", ["full", "trie"])
def test_small_beams_return_only_real_items_and_pad_past_the_end(normalize):
    model = ToyModel(2, 11, 3, seed=3)
    trie = build_trie(CODES[:2], (3, 3, 3))            # two items only
    out = beam_search(model.step, model.reorder, (torch.arange(2), 0), 2,
                      trie, [2, 5, 8], 4, normalize=normalize)
    assert set(out.items[:, :2].flatten().tolist()) == {0, 1}
    assert (out.items[:, 2:] == -1).all() and torch.isinf(out.scores[:, 2:]).all()
