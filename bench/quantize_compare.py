"""Raw collisions and code usage of `rqvae` vs `macrec` vs `rqkmeans` (text, image) and
`rqdino` (image) on the same features.

    python bench/quantize_compare.py [--methods rqkmeans,rqvae,macrec,rqdino]
        [--out bench/results/quantize_compare.json]

Reads the embedding tables, items and images the pipeline wrote under params.yaml's paths
(run `make run` first) and fits each quantizer with params.yaml's `quantize:` settings and
seed, in one process, through the same `QUANTIZERS` the `quantize` stage calls. Results of methods not run are kept from an existing output file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import QuantizeMethod, load_params  # noqa: E402
from pipeline.core.resolve import code_stats  # noqa: E402
from pipeline.quantize import QUANTIZERS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="rqkmeans,rqvae,macrec,rqdino")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "quantize_compare.json"))
    args = parser.parse_args()
    os.chdir(ROOT)
    params = load_params("params.yaml")
    cfg = params.quantize
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    for method in args.methods.split(","):
        quantizer = QUANTIZERS[QuantizeMethod(method)]
        names = ["image"] if method == "rqdino" else ["text", "image"]
        start = time.perf_counter()
        fitted = quantizer.fit(names, params) if quantizer.joint else {
            name: out for name in names for out in quantizer.fit([name], params).values()}
        seconds = time.perf_counter() - start
        for name, out in fitted.items():
            stats = code_stats(out.codes, cfg.codebook_size)
            results[f"{method}/{name}"] = {**stats, "seconds": round(seconds, 1)}
            used = " / ".join(str(stats[f"level_{l + 1}/used"]) for l in range(cfg.levels))
            print(f"{method:9s} {name:6s} collisions {stats['collision_rate']:.3f}  used {used}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
