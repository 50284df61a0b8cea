"""Raw collisions and code usage of `rqvae` vs `macrec` (vs `rqkmeans`) on the same features.

    python bench/quantize_compare.py [--features data/features] [--out bench/results/quantize_compare.json]

Reads the text and image embedding tables the pipeline wrote (run `make run` first), and fits
each quantizer with params.yaml's `quantize:` settings and seed, in one process.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import quantizers  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.core.resolve import code_stats  # noqa: E402
from pipeline.features import read_embeddings  # noqa: E402
from pipeline.stages.quantize import standardize  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", default=str(ROOT / "data" / "features"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "quantize_compare.json"))
    args = parser.parse_args()
    params = load_params(ROOT / "params.yaml")
    cfg = params.quantize
    inputs = {}
    for name in ("text", "image"):
        vectors, present = read_embeddings(Path(args.features) / f"{name}.parquet")
        inputs[name] = (torch.from_numpy(standardize(vectors[present])), np.flatnonzero(present))
    results = {}
    for method in ("rqkmeans", "rqvae", "macrec"):
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(params.seed)
        if method == "macrec":
            fitted = {n: out for n, (out, _) in quantizers.macrec(inputs, cfg, generator).items()}
        else:
            fit = getattr(quantizers, method)
            fitted = {n: fit(inputs[n][0], cfg, torch.Generator().manual_seed(params.seed), n)[0]
                      for n in inputs}
        seconds = time.perf_counter() - start
        for name, out in fitted.items():
            stats = code_stats(out.codes.numpy(), cfg.codebook_size)
            results[f"{method}/{name}"] = {**stats, "seconds": round(seconds, 1)}
            used = " / ".join(str(stats[f"level_{l + 1}/used"]) for l in range(cfg.levels))
            print(f"{method:9s} {name:6s} collisions {stats['collision_rate']:.3f}  used {used}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
