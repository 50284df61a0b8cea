"""Residual quantization of item vectors, one modality at a time: `rqkmeans` (residual
k-means, no training) and `rqvae` (the TIGER / MQL4GRec RQ-VAE)."""
from __future__ import annotations

import torch

from pipeline.config import CheckpointChoice, Params, QuantizeParams
from pipeline.core.kmeans import residual_assign, residual_distances, residual_kmeans
from pipeline.core.resolve import code_stats
from pipeline.models.rqvae import RQVAE, RQVAEConfig
from pipeline.quantize.base import (
    Coded, Quantized, distances_of, quantized, training_input, with_dists,
)
from pipeline.runtime.devices import resolve_device
from pipeline.runtime.progress import bar


def fit_rqkmeans(names: list[str], params: Params) -> dict[str, Quantized]:
    (name,) = names
    x, item_ids = training_input(params, name)
    generator = torch.Generator().manual_seed(params.seed)
    return {name: quantized(item_ids, *rqkmeans(x, params.quantize, generator, name))}


def fit_rqvae(names: list[str], params: Params) -> dict[str, Quantized]:
    (name,) = names
    x, item_ids = training_input(params, name)
    generator = torch.Generator().manual_seed(params.seed)
    return {name: quantized(item_ids, *rqvae(x, params.quantize, generator, name))}


def rqkmeans(x: torch.Tensor, cfg: QuantizeParams, generator: torch.Generator,
              name: str) -> tuple[Coded, list[dict]]:
    books = residual_kmeans(x, cfg.levels, cfg.codebook_size, generator, cfg.kmeans_iters)
    codes = residual_assign(x, books)
    return with_dists(codes, lambda rows: residual_distances(x[rows], books, codes[rows])), []


def rqvae(x: torch.Tensor, cfg: QuantizeParams, generator: torch.Generator,
           name: str) -> tuple[Coded, list[dict]]:
    """Train an RQ-VAE; keep the epoch with the fewest raw collisions, or the last one; with
    `reseed_dead_codes`, unused codewords take item residuals after each epoch. Returns the
    codes and one record per epoch (losses, collision rate, code usage, codewords reseeded)."""
    p = cfg.rqvae
    device = resolve_device(p.device)
    model = RQVAE(RQVAEConfig(x.shape[1], p.hidden, p.latent_dim, cfg.levels,
                              cfg.codebook_size, p.beta)).to(device)
    x = x.to(device)
    first = torch.randperm(len(x), generator=generator)[:p.batch_size].to(device)
    model.init_codebooks(x[first], generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr)
    best, best_rate, history = None, float("inf"), []
    for epoch in bar(range(p.epochs), desc=f"quantize {name}", unit="epoch"):
        model.train()
        recon_sum = quant_sum = 0.0
        for batch in torch.randperm(len(x), generator=generator).split(p.batch_size):
            out = model(x[batch.to(device)])
            recon = (out.recon - x[batch.to(device)]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            (recon + out.quant_loss).backward()
            optimizer.step()
            recon_sum += recon.item() * len(batch)
            quant_sum += out.quant_loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            stats = code_stats(model(x).codes.cpu().numpy(), cfg.codebook_size)
        rate = stats["collision_rate"]
        history.append({"epoch": epoch + 1, "recon_loss": recon_sum / len(x),
                        "quant_loss": quant_sum / len(x), **stats})
        if rate < best_rate or p.checkpoint is CheckpointChoice.LAST:
            best_rate = rate
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if p.reseed_dead_codes:
            history[-1]["reseeded"] = model.reseed_dead_codes(x, generator)
    model.load_state_dict(best)
    model.eval()
    with torch.no_grad():
        out = model(x)
    return with_dists(out.codes, distances_of(model, x, out.codes)), history
