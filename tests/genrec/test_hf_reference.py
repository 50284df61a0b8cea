"""The fast constrained beam search returns what HF `generate` with a trie
`prefix_allowed_tokens_fn` returns, on the same model and beam width."""
import numpy as np
import pytest
import torch

from pipeline.config import params_from_dict
from pipeline.genrec.tasks import sequential_samples
from pipeline.genrec.hf_reference import hf_decode
from pipeline.models.genrec import GenRec
from pipeline.genrec.catalog import build_catalog
from pipeline.genrec.decoding import decode
from pipeline.genrec.fit import model_config


def _unique_codes(rng, n, levels, k):
    combos = np.stack(np.meshgrid(*[np.arange(k)] * levels, indexing="ij"), -1).reshape(-1, levels)
    return combos[rng.permutation(len(combos))[:n]]


@pytest.mark.parametrize("method", ["mscgrec", "tiger"])
def test_fast_beam_equals_hf_generate_with_prefix_allowed_tokens(real_params, tiny_t5, method):
    two_layers = {**tiny_t5, "layers": 2, "decoder_layers": 2}
    raw = {**real_params, "train": {**real_params["train"], "method": method, "model": two_layers}}
    cfg = params_from_dict(raw).train
    rng = np.random.default_rng(0)
    items = np.arange(60)
    codes = {m: (items, _unique_codes(rng, 60, 3, 5)) for m in ("text", "image", "collab")}
    catalog = build_catalog(codes, 60, cfg)
    torch.manual_seed(0)
    model = GenRec(model_config(cfg, catalog)).eval()
    histories = sequential_samples([rng.integers(0, 60, 8).tolist() for _ in range(4)], 20, 60)
    history = histories.history[::2]
    t = catalog.decode_tasks[0]
    fast, fast_scores = decode(model, catalog, history, t, 10, "full")
    slow, slow_scores = hf_decode(model, catalog, history, t, 10, torch.device("cpu"))
    assert torch.equal(fast, slow)
    torch.testing.assert_close(fast_scores, slow_scores, atol=1e-4, rtol=1e-5)
