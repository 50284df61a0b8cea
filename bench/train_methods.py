"""Validation HR@10 of every training method on the default dataset, each trained by the real
`train` stage with params.yaml's `train:` section and only `method` (and the listed
overrides) changed.

    python bench/train_methods.py [--runs tiger,macrec,mscgrec] [--out bench/results/train_methods.json]

Runs are named `method` or `method:key=value` (e.g. `mscgrec:constrained=false`, a
`train:` key with a YAML value). Reads the semantic IDs and sequences under params.yaml's
paths (run `make run` first); writes each run's model, metrics and curves under a temporary
folder, never over the pipeline's own outputs. Results of runs not repeated are kept from an
existing output file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import params_from_dict  # noqa: E402
from pipeline.stages import train  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", default="tiger,macrec,mscgrec")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_methods.json"))
    args = parser.parse_args()
    os.chdir(ROOT)
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    for name in args.runs.split(","):
        method, _, override = name.partition(":")
        raw = yaml.safe_load(Path("params.yaml").read_text())
        raw["train"]["method"] = method
        if override:
            key, _, value = override.partition("=")
            raw["train"][key] = yaml.safe_load(value)
        with tempfile.TemporaryDirectory() as tmp:
            for key in ("model", "metrics", "plots", "work"):
                raw["paths"][key] = str(Path(tmp) / key)
            start = time.perf_counter()
            metrics = train.run(params_from_dict(raw))
            curves = json.loads((Path(tmp) / "plots" / "train" / "epochs.json").read_text())
        results[name] = {**metrics, "minutes": round((time.perf_counter() - start) / 60, 1),
                         "epochs": [{k: round(v, 4) if isinstance(v, float) else v
                                     for k, v in e.items()} for e in curves]}
        print(f"{name}: valid hr@10 {metrics['valid/hr_10']:.4f} "
              f"ndcg@10 {metrics['valid/ndcg_10']:.4f} in {results[name]['minutes']} min")
        out_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
