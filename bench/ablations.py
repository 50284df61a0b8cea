"""Every method and ablation on the default dataset, each through the real stages, in one table.

    python bench/ablations.py [--rows ID,ID] [--epochs N] [--work DIR]
                              [--out bench/results/ablations.json]

Each row is params.yaml with a few dotted keys changed (the ROWS table below; `--list` prints
it). The ingest, feature and SASRec outputs are the pipeline's own (run `make run` first);
`quantize` and `resolve` run once per distinct set of quantize/resolve changes (the plain
params.yaml codes included, so every row's IDs come from this bench), then every row trains
the real `train` stage and evaluates all test users with the real `evaluate` stage (SASRec
and popularity on the same users). Rows and code sets already finished are kept in --work and
--out, so rerunning the command continues where it stopped. The `mscgrec-seed*` rows repeat
the `mscgrec` row under other seeds on the same codes; `--table` ends with their mean ± std.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import params_from_dict, with_overrides  # noqa: E402
from pipeline.runtime.seeding import seed_everything  # noqa: E402
from pipeline.stages import quantize, resolve  # noqa: E402
from stage_runs import train_and_evaluate  # noqa: E402

TEXT_IMAGE = ["seqrec", "seqimage"]
ROWS = (  # id, what the row shows, dotted params.yaml keys changed
    ("mscgrec", "mscgrec (params.yaml as is)", {}),
    ("unconstrained", "mscgrec, constrained learning off", {"train.constrained": False}),
    ("no-text", "mscgrec, text dropped", {"train.modalities": ["image", "collab"]}),
    ("no-image", "mscgrec, image dropped", {"train.modalities": ["text", "collab"]}),
    ("collab-only", "mscgrec, collaborative codes only", {"train.modalities": ["collab"]}),
    ("no-dropout", "mscgrec, no modality dropout", {"train.modality_dropout": 0.0}),
    ("no-dual-positions", "mscgrec, no item-recency/slot embeddings",
     {"train.dual_positions": False}),
    ("append", "mscgrec, conflicts by an extra level (TIGER)", {"resolve.strategy": "append"}),
    ("sinkhorn", "mscgrec, conflicts by balanced Sinkhorn", {"resolve.strategy": "sinkhorn"}),
    ("rqdino", "mscgrec, image IDs from rqdino (MSCGRec)", {"quantize.methods.image": "rqdino"}),
    ("tiger-text", "tiger, text IDs", {"train.method": "tiger", "train.tiger_modality": "text"}),
    ("tiger-image", "tiger, image IDs", {"train.method": "tiger", "train.tiger_modality": "image"}),
    ("mql4grec", "mql4grec, rqvae IDs, six tasks", {"train.method": "mql4grec"}),
    ("macrec", "macrec: macrec IDs, six tasks + implicit alignment",
     {"train.method": "macrec", "quantize.methods.text": "macrec",
      "quantize.methods.image": "macrec"}),
    ("macrec-no-contrast", "macrec, residual contrast off in the quantizer",
     {"train.method": "macrec", "quantize.methods.text": "macrec",
      "quantize.methods.image": "macrec", "quantize.macrec.contrast_weight": 0.0}),
    ("macrec-no-align", "macrec, reconstruction alignment off in the quantizer",
     {"train.method": "macrec", "quantize.methods.text": "macrec",
      "quantize.methods.image": "macrec", "quantize.macrec.align_weight": 0.0}),
    ("macrec-no-implicit", "macrec, implicit alignment off",
     {"train.method": "macrec", "quantize.methods.text": "macrec",
      "quantize.methods.image": "macrec", "train.implicit_weight": 0.0}),
    ("macrec-no-explicit", "macrec, explicit alignment tasks off",
     {"train.method": "macrec", "quantize.methods.text": "macrec",
      "quantize.methods.image": "macrec", "train.tasks": TEXT_IMAGE}),
)
SEEDS = (1, 2, 3)          # the `mscgrec` row again under other seeds, on the same codes
ROWS += tuple((f"mscgrec-seed{seed}", f"mscgrec, seed {seed}", {"seed": seed}) for seed in SEEDS)
NEEDED = ("ingest/sequences.parquet", "features/text.parquet", "features/image.parquet",
          "features/collab.parquet", "sasrec/model.safetensors")


def _section(overrides: dict, section: str) -> dict:
    return {k: v for k, v in overrides.items() if k.split(".")[0] == section}


def _tag(keys: dict) -> str:
    return hashlib.sha1(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:10]


def _stage_once(stage, raw: dict, keys: dict, folder: Path) -> dict:
    """Run `stage` with paths.codes = folder and the given keys, unless its summary exists."""
    summary = folder / f"{stage.__name__.rsplit('.', 1)[1]}.json"
    if summary.is_file():
        return json.loads(summary.read_text())
    params = params_from_dict(with_overrides(raw, keys) | {"paths": {
        **raw["paths"], "codes": str(folder), "work": str(folder / "work"),
        "metrics": str(folder / "metrics"), "plots": str(folder / "plots")}})
    seed_everything(params.seed)
    start = time.perf_counter()
    result = {"overrides": keys, "metrics": stage.run(params),
              "seconds": round(time.perf_counter() - start, 1)}
    print(f"{folder.name}: {summary.stem} {result['seconds']} s", flush=True)
    summary.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def codes_for(raw: dict, overrides: dict, work: Path) -> tuple[Path, dict]:
    """The row's resolved IDs: quantize once per distinct set of quantize keys, resolve once
    per distinct set of quantize + resolve keys (its raw/ links to the quantize output)."""
    quantize_keys = _section(overrides, "quantize")
    keys = quantize_keys | _section(overrides, "resolve")
    quantized = work / "quantized" / _tag(quantize_keys)
    quantized.mkdir(parents=True, exist_ok=True)
    summary = {"quantize": _stage_once(quantize, raw, quantize_keys, quantized)}
    folder = work / "codes" / _tag(keys)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "raw").exists():
        (folder / "raw").symlink_to(quantized / "raw", target_is_directory=True)
    summary["resolve"] = _stage_once(resolve, raw, keys, folder)
    return folder, summary


def run_row(raw: dict, row_id: str, overrides: dict, work: Path) -> dict:
    codes, code_summary = codes_for(raw, overrides, work)
    folder = work / "rows" / row_id
    row = with_overrides(raw, overrides)
    row["paths"].update(codes=str(codes), **{k: str(folder / k) for k in (
        "model", "evaluate", "reports", "work", "metrics", "plots")})
    return {"overrides": overrides, "codes": code_summary, **train_and_evaluate(row)}


def markdown(results: dict) -> str:
    """The finished rows of a results file as one Markdown table, in ROWS order."""
    keys = ("hr_1", "hr_5", "hr_10", "ndcg_5", "ndcg_10")
    lines = ["| row | epochs | " + " | ".join(k.upper().replace("_", "@") for k in keys)
             + " | coverage | raw collisions text / image | train min |",
             "|---" * (len(keys) + 5) + "|"]
    order = {row_id: i for i, (row_id, _, _) in enumerate(ROWS)}
    for key in sorted(results["rows"], key=lambda k: (order[k.split("@")[0]], k)):
        row = results["rows"][key]
        test, raw = row["test"], row["codes"]["quantize"]["metrics"]
        lines.append(f"| {row['label']} | {key.split('@')[1]} | "
                     + " | ".join(f"{test[f'test/{k}']:.4f}" for k in keys)
                     + f" | {test['test/coverage_10']:.1%} | {raw['text/collision_rate']:.3f} / "
                     f"{raw['image/collision_rate']:.3f} | {row['train_minutes']} |")
    return "\n".join(lines + seed_spread(results))


def seed_spread(results: dict) -> list[str]:
    """Mean ± sample std of the seed rows' test metrics, per epoch budget."""
    lines = []
    for epochs in sorted({k.split("@")[1] for k in results["rows"]}):
        tests = [results["rows"][k]["test"] for k in results["rows"]
                 if k.startswith("mscgrec-seed") and k.endswith(f"@{epochs}")]
        if len(tests) < 2:
            continue
        cells = []
        for name in ("hr_10", "ndcg_10"):
            values = torch.tensor([t[f"test/{name}"] for t in tests], dtype=torch.float64)
            cells.append(f"{name.upper().replace('_', '@')} {values.mean():.4f} ± {values.std():.4f}")
        lines.append(f"\nmscgrec over seeds {', '.join(str(s) for s in SEEDS)} "
                     f"({len(tests)} runs, train.epochs {epochs}): " + ", ".join(cells))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=",".join(r[0] for r in ROWS),
                        help="comma-separated row ids (default: all, in table order)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="train.epochs for every row (default: params.yaml's)")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"),
                        help="the params file every row starts from (its folder is the cwd)")
    parser.add_argument("--work", default="/tmp/mmgenrec-ablations",
                        help="codes, models and metrics of every row, kept to resume")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ablations.json"))
    parser.add_argument("--list", action="store_true", help="print the rows and exit")
    parser.add_argument("--table", action="store_true",
                        help="print --out as a Markdown table and exit")
    args = parser.parse_args()
    if args.table:
        print(markdown(json.loads(Path(args.out).read_text())))
        return 0
    table = {row_id: (label, overrides) for row_id, label, overrides in ROWS}
    if args.list:
        for row_id, (label, overrides) in table.items():
            print(f"{row_id:20s} {label}  {overrides}")
        return 0
    wanted = args.rows.split(",")
    unknown = [r for r in wanted if r not in table]
    if unknown:
        parser.error(f"unknown rows {unknown}; --list shows the ids")
    work, out = Path(args.work).resolve(), Path(args.out).resolve()
    params_path = Path(args.params).resolve()
    if not params_path.is_file():
        parser.error(f"--params {params_path} does not exist")
    os.chdir(params_path.parent)   # the pipeline's relative paths (and image paths) hold from here
    raw = yaml.safe_load(params_path.read_text())
    missing = [n for n in NEEDED
               if not (Path(raw["paths"][n.split("/")[0]]) / n.split("/", 1)[1]).is_file()]
    if missing:
        print(f"missing pipeline outputs {missing}: run `make run` first", file=sys.stderr)
        return 2
    for row_id in wanted:   # a misspelt key or bad value stops here, before hours of training
        params_from_dict(with_overrides(raw, table[row_id][1]))
    if args.epochs is not None:
        raw["train"]["epochs"] = args.epochs
    results = json.loads(out.read_text()) if out.is_file() else {"rows": {}}
    for row_id in wanted:
        key = f"{row_id}@{raw['train']['epochs']}"
        if key in results["rows"]:
            print(f"{key}: kept from {out}")
            continue
        label, overrides = table[row_id]
        results["rows"][key] = {"label": label, **run_row(raw, row_id, overrides, work)}
        test = results["rows"][key]["test"]
        print(f"{key}: test hr@10 {test['test/hr_10']:.4f} ndcg@10 {test['test/ndcg_10']:.4f}",
              flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
