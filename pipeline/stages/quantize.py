"""DVC stage `quantize`: item vectors -> raw semantic IDs (L levels x K codes) per modality.

For each modality in `quantize.methods`: `rqkmeans` (residual k-means, no training), `rqvae`
(TIGER / MQL4GRec RQ-VAE, checkpoint chosen by `rqvae.checkpoint`) or `imported` (codes that
came with a `prepared` dataset). Items without a vector of that modality get no code.
Outputs in `<paths.codes>/raw/`: `<modality>.parquet` (item id + codes) and, for learned
codes, `<modality>_dists.npy` (N, L, K) distances used by the `resolve` stage. Plots in
`<paths.plots>/quantize/`: a codebook-usage PNG per modality and level, and for trained
quantizers `<modality>_epochs.json` (per epoch: losses, collision rate, usage, perplexity).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline import tables
from pipeline.config import CheckpointChoice, Params, QuantizeConfig, QuantizeMethod
from pipeline.core.kmeans import QuantizeOutput, residual_assign, residual_kmeans
from pipeline.core.resolve import code_stats
from pipeline.errors import UserInputError
from pipeline.features import read_embeddings, resolve_device
from pipeline.models.rqvae import RQVAE, RQVAEConfig
from pipeline.plots import codebook_usage_plots
from pipeline.runner import stage_main


def run(params: Params) -> dict:
    cfg = params.quantize
    out_dir = Path(params.paths.codes) / "raw"
    metrics: dict[str, float] = {}
    with tables.atomic_dir(out_dir) as tmp, tables.atomic_dir(
            Path(params.paths.plots) / "quantize") as plot_dir:
        for modality, method in sorted(cfg.methods.items(), key=lambda kv: kv[0].value):
            name = modality.value
            if method is QuantizeMethod.IMPORTED:
                codes, item_ids, dists = _imported(Path(params.paths.ingest), name)
            else:
                vectors, present = read_embeddings(Path(params.paths.features) / f"{name}.parquet")
                item_ids = np.flatnonzero(present)
                generator = torch.Generator().manual_seed(params.seed)
                x = torch.from_numpy(_standardize(vectors[present]) if cfg.standardize
                                     else vectors[present])
                fit = _rqkmeans if method is QuantizeMethod.RQKMEANS else _rqvae
                out, history = fit(x, cfg, generator, name)
                codes, dists = out.codes.numpy(), out.dists.numpy().astype(np.float32)
                np.save(tmp / f"{name}_dists.npy", dists)
                tables.write_json(history, plot_dir / f"{name}_epochs.json")
            tables.write_codes(tmp / f"{name}.parquet", item_ids, codes)
            codebook_usage_plots(codes, cfg.codebook_size, name, plot_dir)
            metrics |= {f"{name}/{k}": v for k, v in code_stats(codes, cfg.codebook_size).items()}
    return metrics


def _standardize(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


def _rqkmeans(x: torch.Tensor, cfg: QuantizeConfig, generator: torch.Generator,
              name: str) -> tuple[QuantizeOutput, list[dict]]:
    books = residual_kmeans(x, cfg.levels, cfg.codebook_size, generator, cfg.kmeans_iters)
    return residual_assign(x, books), []


def _rqvae(x: torch.Tensor, cfg: QuantizeConfig, generator: torch.Generator,
           name: str) -> tuple[QuantizeOutput, list[dict]]:
    """Train an RQ-VAE; keep the epoch with the fewest raw collisions, or the last one.
    Returns the codes and one record per epoch (losses, collision rate, code usage)."""
    p = cfg.rqvae
    device = resolve_device(p.device.value)
    model = RQVAE(RQVAEConfig(x.shape[1], p.hidden, p.latent_dim, cfg.levels,
                              cfg.codebook_size, p.beta)).to(device)
    x = x.to(device)
    first = torch.randperm(len(x), generator=generator)[:p.batch_size].to(device)
    model.init_codebooks(x[first], generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr)
    best, best_rate, history = None, float("inf"), []
    for epoch in tqdm(range(p.epochs), desc=f"quantize {name}", unit="epoch", disable=None):
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
    model.load_state_dict(best)
    model.eval()
    with torch.no_grad():
        out = model(x)
        return QuantizeOutput(out.codes.cpu(), out.quantized.cpu(), model.distances(x).cpu()), history


def _imported(ingest: Path, name: str) -> tuple[np.ndarray, np.ndarray, None]:
    path = ingest / "codes" / f"{name}.parquet"
    if not path.is_file():
        raise UserInputError(f"quantize.methods.{name} is 'imported' but {path} does not exist: "
                             "only a prepared dataset with an index file for it has one")
    item_ids, codes = tables.read_codes(path)
    return codes, item_ids, None


def main() -> int:
    return stage_main("quantize", run)


if __name__ == "__main__":
    sys.exit(main())
