"""`quantize.rqvae.reseed_dead_codes`: the RQ-VAE's unused codewords come back as item
residuals after each epoch (the codebook collapse fix measured in BENCHMARKS)."""
import copy

import torch

from pipeline.config import params_from_dict
from pipeline.quantize.rq import rqvae


def _fit(real_params: dict, reseed: bool):
    raw = copy.deepcopy(real_params)
    raw["quantize"].update(levels=2, codebook_size=16)
    # the codebooks start from k-means on one batch of 8 items: 16 codewords, at most 8
    # distinct, so codewords are dead from the start (level 2 stays at 5-6 used without help)
    raw["quantize"]["rqvae"].update(hidden=[16], latent_dim=4, epochs=3, batch_size=8,
                                    device="cpu", reseed_dead_codes=reseed)
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    return rqvae(x, params_from_dict(raw).quantize, torch.Generator().manual_seed(0), "text")


def test_reseeding_brings_dead_codewords_back(real_params):
    plain, plain_history = _fit(real_params, reseed=False)
    reseeded, history = _fit(real_params, reseed=True)
    assert all("reseeded" not in h for h in plain_history)
    assert history[0]["reseeded"] > 0
    assert plain_history[-1]["level_2/used"] <= 8
    assert history[-1]["level_2/used"] > plain_history[-1]["level_2/used"]
    assert history[-1]["collision_rate"] < plain_history[-1]["collision_rate"]
