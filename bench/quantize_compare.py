"""Issue 19: the quantizers and MACRec's ablations on the same features, with seeds, and the
downstream quality of each one's IDs.

    python bench/quantize_compare.py --runs RUN[,RUN...] [--seeds 1,2,3] [--downstream]
        [--set train.epochs=10 ...] [--out bench/results/quantize_compare.json]
    python bench/quantize_compare.py --table      # markdown rows of the finished runs

A RUN is a method (`rqkmeans`, `rqvae`, `macrec`, `rqdino`) or `method:key=value[:...]`:
a key of the method's own section sets `quantize.<method>.<key>`
(`macrec:contrast_reduction=mean`), any other `quantize.<key>` (`macrec:rqvae.epochs=600`,
`rqkmeans:kmeans_iters=50`). Each (run, seed) fits the method
through the same `QUANTIZERS` the `quantize` stage calls, on the features the pipeline wrote
under params.yaml's paths (run `make run` first), with params.yaml's `quantize:` section plus
the run's keys and `seed` set to the seed, and records per modality the raw collision rate,
codes used and perplexity per level, the kept epoch and the last epoch's collision rate.

With `--downstream` it then resolves the run's codes (params.yaml's `resolve:`) and trains and
evaluates `tiger` on each modality's IDs with params.yaml's `train:` recipe (the real stages,
in a folder of its own under --work), adding test HR@10 / NDCG@10 per modality (all test
users, history not masked, as the papers rank). Finished (run, seed) pairs are kept in --out
and skipped on the next call. `--set KEY=VALUE` (dotted params.yaml keys) applies to every
run, e.g. a different training recipe for the downstream models.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import QuantizeMethod, params_from_dict, read_yaml, with_overrides  # noqa: E402
from pipeline.core.resolve import code_stats  # noqa: E402
from pipeline.quantize import QUANTIZERS  # noqa: E402
from pipeline.runtime.seeding import seed_everything  # noqa: E402
from stage_runs import train_and_evaluate  # noqa: E402

OUT = ROOT / "bench" / "results" / "quantize_compare.json"
SECTION = {"rqvae": "rqvae", "macrec": "macrec", "rqdino": "rqdino"}
# Everything a downstream run writes goes under its own folder, never the pipeline's.
PER_RUN = ("codes", "model", "evaluate", "reports", "work", "metrics", "plots", "costs")


def run_params(raw: dict, run: str, seed: int) -> dict:
    """params.yaml with the run's method on text and image (image only for rqdino), its
    `quantize:` keys and the seed."""
    method, *overrides = run.split(":")
    names = ["image"] if method == "rqdino" else ["text", "image"]
    keys: dict[str, object] = {"seed": seed, "quantize.methods": {n: method for n in names}}
    for item in overrides:
        key, _, value = item.partition("=")
        if "." not in key and key in raw["quantize"].get(SECTION.get(method, ""), {}):
            key = f"{SECTION[method]}.{key}"
        keys[f"quantize.{key}"] = yaml.safe_load(value)
    return with_overrides(raw, keys)


def fit_codes(raw: dict) -> tuple[dict, float]:
    """Fit the run's quantizer on every modality it names; (modality -> Quantized, seconds)."""
    params = params_from_dict(raw)
    seed_everything(params.seed)
    methods = params.quantize.methods
    (method,) = set(methods.values())
    quantizer = QUANTIZERS[QuantizeMethod(method)]
    start = time.perf_counter()
    if quantizer.joint:
        fitted = quantizer.fit(list(methods), params)
    else:
        fitted = {n: out for n in methods for out in quantizer.fit([n], params).values()}
    return fitted, time.perf_counter() - start


def code_record(out, size: int) -> dict:
    """The quality of one modality's raw codes, and where its training stood: its own best
    epoch (fewest raw collisions: the kept one for a per-modality quantizer; `macrec` keeps the
    epoch best on average over its two modalities) and the last epoch's collision rate."""
    record = code_stats(out.codes, size)
    if out.history:
        best = min(out.history, key=lambda h: h["collision_rate"])
        record |= {"kept_epoch": best["epoch"], "epochs": len(out.history),
                   "last_collision_rate": out.history[-1]["collision_rate"],
                   "curve": [round(h["collision_rate"], 4) for h in out.history]}
    return record


def downstream(raw: dict, fitted: dict, work: Path) -> dict:
    """Resolve the run's codes and train + evaluate tiger on each modality's IDs."""
    from pipeline.io import tables
    from pipeline.stages import resolve

    paths = {k: str(work / k) for k in PER_RUN}
    raw = with_overrides(raw, {f"paths.{k}": v for k, v in paths.items()})
    for name, out in fitted.items():
        (work / "codes" / "raw").mkdir(parents=True, exist_ok=True)
        tables.write_codes(work / "codes" / "raw" / f"{name}.parquet", out.item_ids, out.codes)
        if out.dists is not None:
            tables.write_resolve_dists(work / "codes" / "raw", name,
                                       out.item_ids[out.dists.rows], out.dists.values)
    resolve.run(params_from_dict(raw))
    scores = {}
    for name in fitted:
        tiger = with_overrides(raw, {"train.method": "tiger", "train.tiger_modality": name,
                                     **{f"paths.{k}": f"{paths[k]}/{name}"
                                        for k in PER_RUN if k != "codes"}})
        result = train_and_evaluate(tiger)
        scores[name] = {"hr_10": result["test"]["test/hr_10"],
                        "ndcg_10": result["test"]["test/ndcg_10"],
                        "best_epoch": result["train"]["best_epoch"],
                        "epochs_run": result["train"]["epochs_run"],
                        "train_minutes": result["train_minutes"]}
    return scores


def summary(row: dict) -> dict:
    """Means and spreads over the seeds, per modality and metric."""
    seeds = list(row["per_seed"].values())
    out = {}
    for name in seeds[0]["codes"]:
        for key in ("collision_rate", *(f"level_{l}/used" for l in range(1, 5)),
                    *(f"level_{l}/perplexity" for l in range(1, 5))):
            values = [s["codes"][name][key] for s in seeds if key in s["codes"][name]]
            if values:
                out[f"{name}/{key}"] = float(np.mean(values))
        out[f"{name}/collision_rate_std"] = float(np.std([s["codes"][name]["collision_rate"]
                                                          for s in seeds]))
        scored = [s["downstream"][name] for s in seeds if name in s.get("downstream", {})]
        if len(scored) == len(seeds):
            for key in ("hr_10", "ndcg_10"):
                out[f"{name}/{key}"] = float(np.mean([s[key] for s in scored]))
            out[f"{name}/hr_10_std"] = float(np.std([s["hr_10"] for s in scored]))
    return out


def table(results: dict) -> str:
    lines = ["| run | seeds | text collisions | image collisions | text codes used L1-L4 | "
             "image codes used L1-L4 | best epoch text / image | text HR@10 | image HR@10 |",
             "|---" * 9 + "|"]
    for run, row in results["runs"].items():
        s, seeds = summary(row), ",".join(row["per_seed"])

        def cell(name: str, key: str, digits: int = 3) -> str:
            if f"{name}/{key}" not in s:
                return "–"
            spread = s.get(f"{name}/{key}_std")
            tail = f" ± {spread:.{digits}f}" if spread is not None and len(row["per_seed"]) > 1 else ""
            return f"{s[f'{name}/{key}']:.{digits}f}{tail}"

        def used(name: str) -> str:
            return " / ".join(f"{s[f'{name}/level_{l}/used']:.0f}" for l in range(1, 5)
                              if f"{name}/level_{l}/used" in s) or "–"

        kept = ", ".join(" / ".join(str(r["codes"][n].get("kept_epoch", "–"))
                                    for n in ("text", "image") if n in r["codes"])
                         for r in row["per_seed"].values())
        lines.append(f"| `{run}` | {seeds} | {cell('text', 'collision_rate')} | "
                     f"{cell('image', 'collision_rate')} | {used('text')} | {used('image')} | "
                     f"{kept} | {cell('text', 'hr_10', 4)} | {cell('image', 'hr_10', 4)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", default="")
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--downstream", action="store_true")
    parser.add_argument("--work", default="/tmp/mmgenrec-quantize")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    os.chdir(ROOT)
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.is_file() else {"runs": {}}
    if args.table:
        print(table(results))
        return 0
    raw = with_overrides(read_yaml("params.yaml"), {
        key: yaml.safe_load(value) for key, _, value in (s.partition("=") for s in args.set)})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    for run in filter(None, args.runs.split(",")):
        for seed in args.seeds.split(","):
            row = results["runs"].setdefault(run, {"per_seed": {}})
            done = row["per_seed"].get(seed, {})
            if done and (done.get("downstream") or not args.downstream):
                continue
            params = run_params(raw, run, int(seed))
            fitted, seconds = fit_codes(params)
            size = params["quantize"]["codebook_size"]
            record = {"codes": {n: code_record(o, size) for n, o in fitted.items()},
                      "seconds": round(seconds, 1), "commit": commit}
            if args.downstream:
                folder = Path(args.work) / f"{run.replace(':', '_').replace('=', '-')}_seed{seed}"
                record["downstream"] = downstream(params, fitted, folder)
            row["per_seed"][seed] = record
            row["summary"] = summary(row)
            print(run, seed, json.dumps({n: round(c["collision_rate"], 4)
                                         for n, c in record["codes"].items()}), flush=True)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
