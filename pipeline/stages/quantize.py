"""DVC stage `quantize`: item vectors -> raw semantic IDs (L levels x K codes) per modality.

For each modality in `quantize.methods`: `rqkmeans` (residual k-means, no training), `rqvae`
(TIGER / MQL4GRec RQ-VAE, checkpoint chosen by `rqvae.checkpoint`), `macrec` (text and image
RQ-VAEs trained jointly with MACRec's cross-modal losses), `rqdino` (images: MSCGRec's DINO
student/teacher with residual quantization inside, over the `image_features` encoder) or
`imported` (codes that came with a `prepared` dataset). Items without a vector of that
modality get no code; a modality no item has a vector of (MovieLens has no pictures) is left
out, with a line in the log and `skipped/<modality>` in the metrics, and listed in
`raw/skipped.json` for the later stages.
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
from pipeline.io.embeddings import count_present
from pipeline.io.plots import codebook_usage_plots
from pipeline.quantize import QUANTIZERS, Quantized
from pipeline.runtime.stage import stage_main

ARTICLE = {"text": "a", "image": "an", "collab": "a"}


def run(params: Params) -> dict:
    cfg = params.quantize
    metrics, skipped = coverage(params)
    methods = {m: method for m, method in cfg.methods.items() if m not in skipped}
    results: dict[str, Quantized] = {}
    for modality, method in methods.items():
        if not QUANTIZERS[method].joint:
            results |= QUANTIZERS[method].fit([modality], params)
    for method in dict.fromkeys(m for m in methods.values() if QUANTIZERS[m].joint):
        names = [modality for modality, m in methods.items() if m is method]
        fit = QUANTIZERS[method].fit
        if len(names) < 2 and QUANTIZERS[method].alone is not None:
            print(f"quantize: {method} needs two modalities with items; {names[0]} alone "
                  f"gets its single-modality quantizer")
            fit = QUANTIZERS[method].alone
        results |= fit(names, params)
    with tables.atomic_dir(Path(params.paths.codes) / "raw") as tmp, tables.atomic_dir(
            Path(params.paths.plots) / "quantize") as plot_dir:
        tables.write_json(skipped, tmp / tables.SKIPPED)
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


def coverage(params: Params) -> tuple[dict, dict[str, str]]:
    """Each vector modality's share of items that have a vector, and the modalities that
    have none ({modality: why}), which are left out with a line in the log; under half the
    items is reported, not fatal."""
    metrics, skipped = {}, {}
    for modality, method in params.quantize.methods.items():
        if not QUANTIZERS[method].vectors:
            continue
        present, n = count_present(Path(params.paths.features) / f"{modality}.parquet")
        metrics[f"{modality}/coverage"] = round(present / max(n, 1), 4)
        if present == 0:
            skipped[modality] = (f"no item has {ARTICLE[modality]} {modality} vector; "
                                 f"modality skipped")
            print(f"quantize: {modality}: {skipped[modality]}")
        elif present < n / 2:
            print(f"quantize: {modality}: only {present} of {n} items have a vector")
    return metrics | {f"skipped/{m}": why for m, why in skipped.items()}, skipped


def main() -> int:
    return stage_main("quantize", run)


if __name__ == "__main__":
    sys.exit(main())
