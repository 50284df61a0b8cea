"""`macrec`: MACRec (AAAI 2026) §3.2, the text and image RQ-VAEs trained jointly with
cross-modal contrastive losses."""
from __future__ import annotations

import numpy as np
import torch

from pipeline.config import (
    CheckpointChoice, ContrastGrad, ContrastReduction, MACRecQuantParams, Params, Positives,
    QuantizeParams,
)
from pipeline.core.contrastive import info_nce, one_positive_nce, pseudo_label_nce
from pipeline.core.kmeans import kmeans
from pipeline.core.resolve import code_stats
from pipeline.models.rqvae import RQVAE, RQVAEConfig
from pipeline.quantize.base import (
    Coded, Quantized, distances_of, quantized, training_input, with_dists,
)
from pipeline.runtime.devices import resolve_device
from pipeline.runtime.errors import UserInputError
from pipeline.runtime.progress import bar


def macrec(inputs: dict[str, tuple[torch.Tensor, np.ndarray]], cfg: QuantizeParams,
           generator: torch.Generator) -> dict[str, tuple[Coded, list[dict]]]:
    """MACRec (AAAI 2026) §3.2: two RQ-VAEs (text, image) trained jointly.

    inputs: modality -> ((N_m, D_m) standardised vectors, (N_m,) item ids). Besides each
    RQ-VAE's own loss, items present in both modalities add (a) from level
    `contrast_from_level` on, an InfoNCE on each modality's L2-normalised residuals whose
    positives are the in-batch items in the same k-means cluster of the *other* modality, both
    directions, weight `contrast_weight`; (b) a symmetric InfoNCE aligning the two quantized
    latents of the same item, weight `align_weight`. The checkpoint is chosen on the mean raw
    collision rate of the two modalities. `cfg.macrec`'s ablation keys (contrast_reduction,
    positives, contrast_grad, warmup_epochs) change (a) and the schedule; their params.yaml
    values are the paper's method. `cfg.rqvae.reseed_dead_codes` re-seeds unused codewords
    after each epoch, as in `rqvae`.
    """
    if len(inputs) != 2:
        raise UserInputError("quantize.methods: macrec quantizes two modalities jointly (text and "
                             f"image); it is set for {sorted(inputs)}")
    m, p = cfg.macrec, cfg.rqvae
    device = resolve_device(p.device)
    names = sorted(inputs)
    xs = {n: inputs[n][0].to(device) for n in names}
    both = np.intersect1d(inputs[names[0]][1], inputs[names[1]][1])
    rows = {n: torch.from_numpy(np.searchsorted(inputs[n][1], both)).to(device) for n in names}
    if len(both) < 2:
        raise UserInputError("macrec needs items that have both modalities; fewer than 2 do")
    labels = {}
    for n in names:  # pseudo-labels: k-means on each modality's input vectors
        centroids = kmeans(xs[n], min(m.clusters, len(xs[n])), generator, cfg.kmeans_iters)
        labels[n] = torch.cdist(xs[n], centroids).argmin(dim=1)
    models = {n: RQVAE(RQVAEConfig(xs[n].shape[1], p.hidden, p.latent_dim, cfg.levels,
                                   cfg.codebook_size, p.beta)).to(device) for n in names}
    for n in names:
        models[n].init_codebooks(xs[n][torch.randperm(len(xs[n]), generator=generator)[:p.batch_size]
                                       .to(device)], generator)
    params = [w for model in models.values() for w in model.parameters()]
    optimizer = torch.optim.AdamW(params, lr=p.lr)
    a, b = names
    best, best_rate, history = None, float("inf"), {n: [] for n in names}
    for epoch in bar(range(p.epochs), desc="quantize macrec", unit="epoch"):
        for model in models.values():
            model.train()
        sums = {"recon": 0.0, "contrast": 0.0, "align": 0.0}
        ramp = min(1.0, (epoch + 1) / m.warmup_epochs) if m.warmup_epochs else 1.0
        for batch in torch.randperm(len(both), generator=generator).split(p.batch_size):
            batch = batch.to(device)
            outs = {n: models[n](xs[n][rows[n][batch]]) for n in names}
            recon = sum((outs[n].recon - xs[n][rows[n][batch]]).pow(2).mean() + outs[n].quant_loss
                        for n in names)
            contrast = residual_contrast(
                outs, {n: labels[other][rows[other][batch]] for n, other in ((a, b), (b, a))},
                m, cfg.levels, generator)
            align = info_nce(outs[a].quantized, outs[b].quantized, m.tau)
            loss = recon + ramp * (m.contrast_weight * contrast + m.align_weight * align)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for key, value in (("recon", recon), ("contrast", contrast), ("align", align)):
                sums[key] += float(value.detach()) * len(batch)
        rates = []
        for n in names:
            models[n].eval()
            with torch.no_grad():
                stats = code_stats(models[n](xs[n]).codes.cpu().numpy(), cfg.codebook_size)
            rates.append(stats["collision_rate"])
            history[n].append({"epoch": epoch + 1, **{f"{k}_loss": v / len(both)
                                                      for k, v in sums.items()}, **stats})
        if np.mean(rates) < best_rate or p.checkpoint is CheckpointChoice.LAST:
            best_rate = float(np.mean(rates))
            best = {n: {k: v.detach().clone() for k, v in models[n].state_dict().items()}
                    for n in names}
        if p.reseed_dead_codes:
            for n in names:
                history[n][-1]["reseeded"] = models[n].reseed_dead_codes(xs[n], generator)
    out = {}
    for n in names:
        models[n].load_state_dict(best[n])
        models[n].eval()
        with torch.no_grad():
            res = models[n](xs[n])
        out[n] = with_dists(res.codes, distances_of(models[n], xs[n], res.codes)), history[n]
    return out


def residual_contrast(outs: dict, labels: dict[str, torch.Tensor], m: MACRecQuantParams,
                      levels: int, generator: torch.Generator) -> torch.Tensor:
    """MACRec §3.2's residual InfoNCE of one batch: for each modality n (its RQVAEOutput in
    `outs`) and each level from `m.contrast_from_level` on, n's residuals with positives by
    `labels[n]` (B,), the other modality's pseudo-labels; summed or averaged over the terms."""
    terms = []
    for level in range(m.contrast_from_level - 1, levels):
        for n, out in outs.items():
            residual = out.residuals[level]
            if m.contrast_grad is ContrastGrad.ENCODER:   # same value; no path to codewords
                residual = residual.detach() + out.latent - out.latent.detach()
            terms.append(pseudo_label_nce(residual, labels[n], m.tau)
                         if m.positives is Positives.ALL
                         else one_positive_nce(residual, labels[n], m.tau, generator))
    total = sum(terms)
    return total / len(terms) if m.contrast_reduction is ContrastReduction.MEAN else total


def fit(names: list[str], params: Params) -> dict[str, Quantized]:
    """Both modalities' codes from one joint training (one generator for the pair)."""
    inputs = {name: training_input(params, name) for name in sorted(names)}
    generator = torch.Generator().manual_seed(params.seed)
    fitted = macrec(inputs, params.quantize, generator)
    return {name: quantized(inputs[name][1], out, history)
            for name, (out, history) in fitted.items()}
