"""SASRec (CE) baseline on the MACRec / MQL4GRec Instruments split.

    python bench/sasrec_instruments.py [--out bench/results/sasrec_instruments.json] [--set sasrec.key=value ...]

Ingests ../shared/datasets/amazon18-instruments with the `prepared` source into a temporary
folder, runs the real `sasrec` stage with params.yaml's settings (plus any --set overrides),
and prints the test metrics next to the paper's SASRec row. Exits 0 with a message when the
dataset is absent.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import params_from_dict  # noqa: E402
from pipeline.runtime.seeding import seed_everything  # noqa: E402
from pipeline.stages import ingest, sasrec  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "amazon18-instruments"
PAPER = {"test/hr_1": 0.0318, "test/hr_5": 0.0946, "test/hr_10": 0.1233,
         "test/ndcg_5": 0.0654, "test/ndcg_10": 0.0746}


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sasrec_instruments.json"))
    parser.add_argument("--set", action="append", default=[], help="sasrec.key=value")
    args = parser.parse_args()
    if not DATASET.is_dir():
        print(f"skipped: {DATASET} is absent")
        return 0
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["dataset"].update(source="prepared", name="Instruments", path=str(DATASET))
    for item in args.set:
        key, value = item.split("=", 1)
        section, name = key.split(".")
        raw[section][name] = yaml.safe_load(value)
    with tempfile.TemporaryDirectory() as tmp:
        raw["paths"] = {k: str(Path(tmp) / k) for k in raw["paths"]}
        params = params_from_dict(raw)
        seed_everything(params.seed)
        ingest.run(params)
        start = time.perf_counter()
        metrics = sasrec.run(params)
        seconds = time.perf_counter() - start
    result = {"metrics": metrics, "paper_sasrec": PAPER, "seconds": round(seconds, 1),
              "sasrec_params": raw["sasrec"], "seed": raw["seed"],
              "machine": f"{_cpu_name()}, {torch.get_num_threads()} threads, "
                         f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for key, paper in PAPER.items():
        print(f"{key:14s} ours {metrics[key]:.4f}   paper SASRec {paper:.4f}")
    print(f"epochs {metrics['epochs_run']} (best {metrics['best_epoch']}), {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
