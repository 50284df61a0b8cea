"""DVC stage `quantize`: item vectors -> raw semantic IDs (L levels x K codes) per modality.

For each modality in `quantize.methods`: `rqkmeans` (residual k-means, no training), `rqvae`
(TIGER / MQL4GRec RQ-VAE, checkpoint chosen by `rqvae.checkpoint`), `macrec` (text and image
RQ-VAEs trained jointly with MACRec's cross-modal losses), `rqdino` (images: MSCGRec's DINO
student/teacher with residual quantization inside, over the `image_features` encoder) or
`imported` (codes that came with a `prepared` dataset). Items without a vector of that
modality get no code.
Outputs in `<paths.codes>/raw/`: `<modality>.parquet` (item id + codes) and, for learned
codes, what the `resolve` stage needs: for the items that share a code only, their distances
to every codeword of the last two levels (`<modality>_dists.npy`, (M, 2, K)) and their ids
(`<modality>_dist_items.npy`), so the files grow with the collisions, not with N x K. Plots in
`<paths.plots>/quantize/`: a codebook-usage PNG per modality and level, and for trained
quantizers `<modality>_epochs.json` (per epoch: losses, collision rate, usage, perplexity).
"""
from __future__ import annotations

import sys
from pathlib import Path

from pipeline.config import Params
from pipeline.core.resolve import code_stats
from pipeline.io import tables
from pipeline.io.plots import codebook_usage_plots
from pipeline.quantize import QUANTIZERS, Quantized
from pipeline.runtime.stage import stage_main


def run(params: Params) -> dict:
    cfg = params.quantize
    results: dict[str, Quantized] = {}
    for modality, method in cfg.methods.items():
        if not QUANTIZERS[method].joint:
            results |= QUANTIZERS[method].fit([modality], params)
    for method in dict.fromkeys(m for m in cfg.methods.values() if QUANTIZERS[m].joint):
        results |= QUANTIZERS[method].fit(
            [modality for modality, m in cfg.methods.items() if m is method], params)
    metrics: dict[str, float] = {}
    with tables.atomic_dir(Path(params.paths.codes) / "raw") as tmp, tables.atomic_dir(
            Path(params.paths.plots) / "quantize") as plot_dir:
        for name, out in sorted(results.items()):
            tables.write_codes(tmp / f"{name}.parquet", out.item_ids, out.codes)
            if out.dists is not None:
                tables.write_resolve_dists(tmp, name, out.item_ids[out.dists.rows],
                                           out.dists.values)
            if out.history:
                tables.write_json(out.history, plot_dir / f"{name}_epochs.json")
            codebook_usage_plots(out.codes, cfg.codebook_size, name, plot_dir)
            metrics |= {f"{name}/{k}": v
                        for k, v in code_stats(out.codes, cfg.codebook_size).items()}
    return metrics


def main() -> int:
    return stage_main("quantize", run)


if __name__ == "__main__":
    sys.exit(main())
