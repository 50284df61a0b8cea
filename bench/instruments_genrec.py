"""Generative methods on the MACRec / MQL4GRec Instruments split, beside the papers' rows.

    python bench/instruments_genrec.py [--runs tiger,mscgrec] [--epochs N] [--work DIR]
                                       [--out bench/results/instruments_genrec.json]

Ingests ../shared/datasets/amazon18-instruments with the `prepared` source and its published
text (`lemb`) and image (`vitemb`) semantic IDs, trains the real `sasrec` stage (the baseline,
and the item table that becomes the collaborative modality), runs `quantize` (published codes
imported for text and image, `rqkmeans` on the SASRec table for the collaborative modality)
and `resolve`, then for each run trains the real `train` stage — params.yaml's `train:`
section with only `method`, `epochs` and the run's overrides changed — and evaluates every
test user with the real `evaluate` stage (full ranking over the 6,250 items, SASRec and
popularity on the same users).

Runs are named `method` or `method:key=value[:key=value]` with `train:` keys, e.g.
`tiger:tiger_modality=image` or `mscgrec:constrained=false`. Every step is skipped when its
output is already in --work, an interrupted `train` resumes from its last finished epoch
(`train.resume: auto`), and finished runs are kept in --out, so rerunning the command
continues where it stopped. Exits 0 with a message when the dataset is absent.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import params_from_dict, with_overrides  # noqa: E402
from pipeline.runtime.seeding import seed_everything  # noqa: E402
from stage_runs import train_and_evaluate  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "amazon18-instruments"
PAPER = {  # MACRec paper, Table 2, Instruments (as quoted in the dataset's README)
    "SASRec": (0.0318, 0.0946, 0.1233, 0.0654, 0.0746),
    "TIGER": (0.0754, 0.1007, 0.1221, 0.0882, 0.0950),
    "MQL4GRec (no pre-training)": (0.0763, 0.1058, 0.1291, 0.0902, 0.0997),
    "MACRec": (0.0819, 0.1110, 0.1363, 0.0965, 0.1046),
}
KEYS = ("hr_1", "hr_5", "hr_10", "ndcg_5", "ndcg_10")
PER_RUN = ("model", "evaluate", "reports", "work", "metrics", "plots")


def base_params(work: Path) -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["dataset"].update(source="prepared", name="Instruments", path=str(DATASET),
                          prepared_codes={"text": "lemb", "image": "vitemb"})
    raw["quantize"]["methods"] = {"text": "imported", "image": "imported", "collab": "rqkmeans"}
    raw["paths"] = {k: str(work / "common" / k) for k in raw["paths"]}
    return raw


def prepare(raw: dict, work: Path) -> dict:
    """ingest → sasrec → quantize → resolve, each skipped when its output exists."""
    # imported here: bench/gpu_check.py uses base_params on a machine without polars
    from pipeline.stages import ingest, quantize, resolve, sasrec
    params = params_from_dict(raw)
    seed_everything(params.seed)
    paths, seconds = params.paths, {}
    steps = (("ingest", ingest, Path(paths.ingest) / "sequences.parquet"),
             ("sasrec", sasrec, Path(paths.sasrec) / "model.safetensors"),
             ("quantize", quantize, Path(paths.codes) / "raw" / "collab.parquet"),
             ("resolve", resolve, Path(paths.codes) / "final" / "collab.parquet"))
    for name, stage, done in steps:
        if done.is_file():
            continue
        start = time.perf_counter()
        metrics = stage.run(params)
        seconds[name] = round(time.perf_counter() - start, 1)
        (work / "common" / f"{name}.json").write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"{name}: {seconds[name]} s")
    return seconds


def run_one(raw: dict, name: str, epochs: int, work: Path) -> dict:
    method, *overrides = name.split(":")
    folder = work / "runs" / name.replace(":", "_").replace("=", "-")
    keys = {"train.method": method, "train.epochs": epochs,
            **{f"paths.{k}": str(folder / k) for k in PER_RUN}}
    for item in overrides:
        key, _, value = item.partition("=")
        keys[f"train.{key}"] = yaml.safe_load(value)
    raw = with_overrides(raw, keys)
    return {**train_and_evaluate(raw), "train_params": raw["train"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="tiger,mscgrec",
                        help="comma-separated runs, e.g. tiger,tiger:tiger_modality=image,mscgrec")
    parser.add_argument("--epochs", type=int, default=None,
                        help="train.epochs for every run (default: params.yaml's)")
    parser.add_argument("--work", default="/tmp/mmgenrec-instruments",
                        help="stage outputs, kept between invocations to resume")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "instruments_genrec.json"))
    args = parser.parse_args()
    if not DATASET.is_dir():
        print(f"skipped: {DATASET} is absent")
        return 0
    work = Path(args.work)
    (work / "common").mkdir(parents=True, exist_ok=True)
    raw = base_params(work)
    epochs = args.epochs or raw["train"]["epochs"]
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {"runs": {}}
    results["prepare_seconds"] = {**results.get("prepare_seconds", {}), **prepare(raw, work)}
    results["machine"] = (f"{torch.get_num_threads()} threads, "
                          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}")
    results["paper"] = {k: dict(zip(KEYS, v)) for k, v in PAPER.items()}
    for name in args.runs.split(","):
        key = f"{name}@{epochs}"
        if key in results["runs"]:
            print(f"{key}: kept from {out}")
            continue
        results["runs"][key] = run_one(raw, name, epochs, work)
        test = results["runs"][key]["test"]
        print(f"{key}: test hr@10 {test['test/hr_10']:.4f} ndcg@10 {test['test/ndcg_10']:.4f} "
              f"(sasrec {test['sasrec/hr_10']:.4f}, popularity {test['popularity/hr_10']:.4f})")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    for paper_name, row in PAPER.items():
        print(f"{paper_name:28s} " + " ".join(f"{v:.4f}" for v in row) + "  (paper)")
    for key, result in results["runs"].items():
        print(f"{key:28s} " + " ".join(f"{result['test'][f'test/{k}']:.4f}" for k in KEYS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
