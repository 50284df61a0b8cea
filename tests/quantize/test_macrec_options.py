"""MACRec's quantizer ablation keys (issue 19): each one changes what it says it changes."""
import copy

import numpy as np
import pytest
import torch

from pipeline.config import params_from_dict
from pipeline.models.rqvae import RQVAE, RQVAEConfig
from pipeline.quantize.macrec import macrec, residual_contrast


def _cfg(real_params: dict, epochs: int = 3, reseed_dead_codes: bool = False, **macrec_keys):
    raw = copy.deepcopy(real_params)
    raw["quantize"].update(levels=3, codebook_size=8)
    raw["quantize"]["rqvae"].update(hidden=[16], latent_dim=4, epochs=epochs, batch_size=32,
                                    device="cpu", reseed_dead_codes=reseed_dead_codes)
    raw["quantize"]["macrec"].update(clusters=4, contrast_from_level=2, **macrec_keys)
    return params_from_dict(raw).quantize


def _inputs():
    g = torch.Generator().manual_seed(0)
    ids = np.arange(40)
    return {"image": (torch.randn(40, 6, generator=g), ids),
            "text": (torch.randn(40, 5, generator=g), ids)}


def _batch():
    torch.manual_seed(0)
    models = {n: RQVAE(RQVAEConfig(d, (16,), 4, 3, 8)) for n, d in (("image", 6), ("text", 5))}
    xs = {n: x for n, (x, _) in _inputs().items()}
    for n, model in models.items():
        model.init_codebooks(xs[n], torch.Generator().manual_seed(0))
    labels = {n: torch.arange(40) % 4 for n in models}
    return models, {n: models[n](xs[n]) for n in models}, labels


def test_mean_reduction_is_the_sum_over_the_levels_and_directions_averaged(real_params):
    summed = _cfg(real_params, contrast_reduction="sum")
    _, outs, labels = _batch()
    total = residual_contrast(outs, labels, summed.macrec, 3, torch.Generator())
    mean = residual_contrast(outs, labels, _cfg(real_params, contrast_reduction="mean").macrec,
                             3, torch.Generator())
    assert total > 0 and torch.isclose(mean, total / 4)     # levels 2 and 3, two modalities


@pytest.mark.parametrize("grad, codebooks_move", [("encoder_and_codebooks", True),
                                                  ("encoder", False)])
def test_contrast_grad_decides_whether_the_codewords_get_the_contrast_gradient(
        real_params, grad, codebooks_move):
    cfg = _cfg(real_params, contrast_grad=grad)
    models, outs, labels = _batch()
    residual_contrast(outs, labels, cfg.macrec, 3, torch.Generator()).backward()
    for model in models.values():
        assert model.encoder[0].weight.grad.abs().sum() > 0
        moved = model.codebooks.grad is not None and bool(model.codebooks.grad.abs().sum() > 0)
        assert moved is codebooks_move


def test_warmup_scales_the_cross_modal_terms_in_its_first_epoch(real_params):
    """One epoch at half of a ramp over two epochs trains exactly as half the weights."""
    ramped = _cfg(real_params, 1, contrast_weight=0.2, align_weight=0.002, warmup_epochs=2)
    halved = _cfg(real_params, 1, contrast_weight=0.1, align_weight=0.001, warmup_epochs=0)
    plain = _cfg(real_params, 1, contrast_weight=0.2, align_weight=0.002, warmup_epochs=0)
    outs = {}
    for name, cfg in (("ramped", ramped), ("halved", halved), ("plain", plain)):
        torch.manual_seed(0)
        fitted = macrec(_inputs(), cfg, torch.Generator().manual_seed(0))
        outs[name] = fitted["text"][0].dists.values    # distances of the trained model
    assert len(outs["plain"]) > 0
    assert np.array_equal(outs["ramped"], outs["halved"])
    assert not np.array_equal(outs["ramped"], outs["plain"])


def test_dead_codes_take_item_residuals_and_are_used_afterwards(real_params):
    torch.manual_seed(0)
    model = RQVAE(RQVAEConfig(6, (16,), 4, 2, 8))
    x = torch.randn(40, 6)
    with torch.no_grad():
        model.codebooks[0, 4:] = 100.0               # four level-1 codewords nobody is near
    used_before = len(torch.unique(model(x).codes[:, 0]))
    reseeded = model.reseed_dead_codes(x, torch.Generator().manual_seed(0))
    used_after = len(torch.unique(model(x).codes[:, 0]))
    assert used_before <= 4 and reseeded >= 4 and used_after > used_before
    residuals = model(x).residuals[0]
    for row in model.codebooks[0, 4:]:                # each is some item's residual
        assert (residuals - row).norm(dim=1).min() < 1e-6


def test_every_option_runs_and_records_reseeding(real_params):
    cfg = _cfg(real_params, positives="one", contrast_grad="encoder", contrast_reduction="mean",
               reseed_dead_codes=True, warmup_epochs=2)
    torch.manual_seed(0)
    fitted = macrec(_inputs(), cfg, torch.Generator().manual_seed(0))
    for name in ("text", "image"):
        out, history = fitted[name]
        assert out.codes.shape == (40, 3) and len(history) == 3
        assert all("reseeded" in h for h in history) and history[0]["contrast_loss"] > 0
