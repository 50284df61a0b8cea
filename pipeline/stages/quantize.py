"""DVC stage `quantize`: item vectors -> raw semantic IDs (L levels x K codes) per modality.

For each modality in `quantize.methods`: `rqkmeans` (residual k-means, no training), `rqvae`
(TIGER / MQL4GRec RQ-VAE, checkpoint chosen by `rqvae.checkpoint`), `macrec` (text and image
RQ-VAEs trained jointly with MACRec's cross-modal losses), `rqdino` (images: MSCGRec's DINO
student/teacher with residual quantization inside, over the `image_features` encoder) or
`imported` (codes that came with a `prepared` dataset). Items without a vector of that
modality get no code.
Outputs in `<paths.codes>/raw/`: `<modality>.parquet` (item id + codes) and, for learned
codes, `<modality>_dists.npy` (N, L, K) distances used by the `resolve` stage. Plots in
`<paths.plots>/quantize/`: a codebook-usage PNG per modality and level, and for trained
quantizers `<modality>_epochs.json` (per epoch: losses, collision rate, usage, perplexity).
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from pipeline import tables
from pipeline import quantizers
from pipeline.config import Params, QuantizeMethod
from pipeline.core.kmeans import QuantizeOutput
from pipeline.core.resolve import code_stats
from pipeline.encoders import image as image_encoders
from pipeline.errors import UserInputError
from pipeline.features import fingerprint, read_embeddings, resolve_device, resolve_dtype
from pipeline.images import image_path
from pipeline.plots import codebook_usage_plots
from pipeline.runner import stage_main


def run(params: Params) -> dict:
    cfg = params.quantize
    out_dir = Path(params.paths.codes) / "raw"
    metrics: dict[str, float] = {}
    learned: dict[str, tuple[torch.Tensor, np.ndarray]] = {}
    with tables.atomic_dir(out_dir) as tmp, tables.atomic_dir(
            Path(params.paths.plots) / "quantize") as plot_dir:
        results = {}
        for modality, method in cfg.methods.items():
            name = modality.value
            if method is QuantizeMethod.IMPORTED:
                codes, item_ids, _ = _imported(Path(params.paths.ingest), name)
                results[name] = (item_ids, codes, None, [])
                continue
            vectors, present = read_embeddings(Path(params.paths.features) / f"{name}.parquet")
            if method is QuantizeMethod.RQDINO:   # trains on the images, not on these vectors
                out, history = rqdino_codes(params, vectors[present], np.flatnonzero(present))
                results[name] = (np.flatnonzero(present), *_numpy(out), history)
                continue
            x = standardize(vectors[present]) if cfg.standardize else vectors[present]
            learned[name] = (torch.from_numpy(x), np.flatnonzero(present))
            if method is not QuantizeMethod.MACREC:
                generator = torch.Generator().manual_seed(params.seed)
                fit = quantizers.rqkmeans if method is QuantizeMethod.RQKMEANS else quantizers.rqvae
                out, history = fit(learned[name][0], cfg, generator, name)
                results[name] = (learned[name][1], *_numpy(out), history)
        joint = sorted(m.value for m, method in cfg.methods.items()
                       if method is QuantizeMethod.MACREC)
        if joint:
            generator = torch.Generator().manual_seed(params.seed)
            fitted = quantizers.macrec({n: learned[n] for n in joint}, cfg, generator)
            for name, (out, history) in fitted.items():
                results[name] = (learned[name][1], *_numpy(out), history)
        for name, (item_ids, codes, dists, history) in sorted(results.items()):
            tables.write_codes(tmp / f"{name}.parquet", item_ids, codes)
            if dists is not None:
                np.save(tmp / f"{name}_dists.npy", dists)
            if history:
                tables.write_json(history, plot_dir / f"{name}_epochs.json")
            codebook_usage_plots(codes, cfg.codebook_size, name, plot_dir)
            metrics |= {f"{name}/{k}": v for k, v in code_stats(codes, cfg.codebook_size).items()}
    return metrics


def _numpy(out: QuantizeOutput) -> tuple[np.ndarray, np.ndarray]:
    return out.codes.numpy(), out.dists.numpy().astype(np.float32)


def standardize(x: np.ndarray) -> np.ndarray:
    """Per-dimension zero mean and unit variance of (N, D) vectors (constant dims kept at 0)."""
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


def rqdino_codes(params: Params, plain: np.ndarray, rows: np.ndarray):
    """RQ-DINO over the images of the items that have an image vector (rows of items.parquet),
    with the trunk of the `image_features` encoder."""
    feat = params.image_features
    if feat.precomputed is not None:
        raise UserInputError("quantize.methods.image is rqdino, which trains on the images "
                             "through the image encoder, but image_features.precomputed is set: "
                             "use rqvae or rqkmeans on precomputed vectors")
    items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS)
    refs, status = items.column("image_ref").to_pylist(), items.column("image_status").to_pylist()
    cache = Path(params.paths.image_cache)
    paths = [str(image_path(refs[row], status[row], cache)[0]) for row in rows]
    device = resolve_device(params.quantize.rqdino.device.value)
    encoder = image_encoders.build(feat.encoder.value, feat.model, feat.pretrained, feat.revision,
                                   device, resolve_dtype(feat.dtype.value, device))
    work = Path(params.paths.work) / "quantize" / fingerprint(
        dataclasses.asdict(params.quantize.rqdino), dataclasses.asdict(feat), params.seed, paths)
    return quantizers.rqdino(paths, torch.from_numpy(plain), encoder, params.quantize,
                             params.seed, work)


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
