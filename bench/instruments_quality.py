"""Issue 17's quality study: generative methods on Instruments trained until early stopping.

    python bench/instruments_quality.py --runs RUN[,RUN...] [--seeds 1,2,3] [--work DIR]
    python bench/instruments_quality.py --table        # markdown rows of the finished runs
    python bench/instruments_quality.py --plot PNG     # validation curves + test points
    python bench/instruments_quality.py --dataset default --runs ...   # the default shop
    python bench/instruments_quality.py --runs RUN --beam 50   # re-decode a finished run

A RUN is `method` or `method:key=value[:key=value]` with dotted `train:` keys, e.g.
`tiger:tiger_modality=image:batch_size=64:lr=0.002:epochs=15` or
`mscgrec:model.tie_head=true`. Each run trains the real `train` stage on the Instruments
split prepared as `bench/instruments_genrec.py` prepares it (published text and image IDs,
collaborative IDs from our SASRec, whose `sasrec.max_len` equals `train.max_history`), with
params.yaml's `train:` section plus the run's keys and `seed` set to each seed, then the real
`evaluate` stage on all 17,112 test users (full ranking; our SASRec and popularity on the
same users, history masked and not). The headline protocol is the unmasked one.

With `--dataset default` the runs use the default pipeline's own ingested data and semantic
IDs (run `dvc repro resolve` first) and go to bench/results/default_quality.json.

Every finished (run, seed) is kept in --out and skipped on the next call; an interrupted
`train` resumes from its last finished epoch (`train.resume: auto`) as long as --work is kept.
Exits 0 with a message when the dataset is absent.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from instruments_genrec import DATASET, PAPER, PER_RUN, base_params, prepare  # noqa: E402
from pipeline.config import with_overrides  # noqa: E402
from stage_runs import train_and_evaluate  # noqa: E402

OUT = {"instruments": ROOT / "bench" / "results" / "instruments_quality.json",
       "default": ROOT / "bench" / "results" / "default_quality.json"}
PROTOCOLS = {"": "history not masked", "_masked": "history masked"}


def run_params(raw: dict, run: str, seed: int, work: Path) -> dict:
    """params.yaml (Instruments paths) with the run's `train:` keys, the seed and its own
    output folders."""
    method, *overrides = run.split(":")
    folder = work / "runs" / f"{run.replace(':', '_').replace('=', '-')}_seed{seed}"
    keys = {"seed": seed, "train.method": method,
            **{f"paths.{k}": str(folder / k) for k in PER_RUN}}
    for item in overrides:
        key, _, value = item.partition("=")
        keys[f"train.{key}"] = yaml.safe_load(value)
    return with_overrides(raw, keys)


def one_seed(raw: dict, run: str, seed: int, work: Path) -> dict:
    """Train and evaluate one (run, seed); the epoch curve comes from the train stage's plot,
    its training minutes from the stage's timings."""
    params = run_params(raw, run, seed, work)
    result = train_and_evaluate(params)
    curve = json.loads((Path(params["paths"]["plots"]) / "train" / "epochs.json").read_text())
    keep = ("epoch", "steps", "lr", "train/loss", "valid/hr_10", "valid/ndcg_10")
    minutes = result["train"]["timing/epoch_minutes"]          # training only, per epoch end
    return {"train": result["train"], "test": result["test"], "curve": [
        {**{k: e[k] for k in keep if k in e}, "train_minutes": m} for e, m in zip(curve, minutes)],
        "train_minutes": result["train_minutes"], "train_params": params["train"]}


def summary(run: str, seeds: dict[str, dict]) -> dict:
    """The issue's row: means over the seeds of the headline metrics, our SASRec beside."""
    tests = [r["test"] for r in seeds.values()]

    def mean(key: str) -> float:
        return round(float(np.mean([t[key] for t in tests])), 4)

    def std(key: str) -> float:
        return round(float(np.std([t[key] for t in tests])), 4)
    return {"method": run.split(":")[0], "run": run, "seeds": sorted(int(s) for s in seeds),
            "hr_10": mean("test/hr_10"), "ndcg_10": mean("test/ndcg_10"),
            "hr_10_std": std("test/hr_10"), "ndcg_10_std": std("test/ndcg_10"),
            "hr_10_masked": mean("test_masked/hr_10"), "ndcg_10_masked": mean("test_masked/ndcg_10"),
            "sasrec_hr_10": mean("sasrec/hr_10"), "sasrec_ndcg_10": mean("sasrec/ndcg_10"),
            "sasrec_hr_10_masked": mean("sasrec_masked/hr_10"),
            "sasrec_ndcg_10_masked": mean("sasrec_masked/ndcg_10"),
            "popularity_hr_10": mean("popularity/hr_10"),
            "best_epoch": [r["train"]["best_epoch"] for r in seeds.values()],
            "epochs_run": [r["train"]["epochs_run"] for r in seeds.values()],
            # A run resumed across sessions: its stage's wall time covers the last session
            # only, so the epochs' training minutes (validation excluded) stand in for it.
            "train_minutes": [round(max(r["train_minutes"], r["curve"][-1]["train_minutes"]), 1)
                              for r in seeds.values()],
            "commit": sorted({r["commit"] for r in seeds.values()})}


def table(results: dict) -> str:
    lines = ["| run | seeds | test HR@10 | test NDCG@10 | masked HR@10 | our SASRec HR@10 (masked) "
             "| best / run epochs | train min per seed |", "|---" * 8 + "|"]
    for name, row in results["runs"].items():
        s = summary(name, row["per_seed"])
        spread = f" ± {s['hr_10_std']:.4f}" if len(s["seeds"]) > 1 else ""
        lines.append(
            f"| `{s['run']}` | {','.join(map(str, s['seeds']))} | {s['hr_10']:.4f}{spread} | "
            f"{s['ndcg_10']:.4f} | {s['hr_10_masked']:.4f} | {s['sasrec_hr_10']:.4f} "
            f"({s['sasrec_hr_10_masked']:.4f}) | "
            f"{'/'.join(map(str, s['best_epoch']))} of {'/'.join(map(str, s['epochs_run']))} | "
            f"{', '.join(f'{m:.0f}' for m in s['train_minutes'])} |")
    return "\n".join(lines)


def _recipe(run: str) -> str:
    """A run's keys without its method, `tiger`'s modality (`_method` names both) and the
    keys every run of the study shares."""
    keys = run.split(":")[1:]
    shared = ("batch_size=64", "lr=0.002", "tiger_modality=text", "tiger_modality=image")
    return ":".join(k.removeprefix("model.") for k in keys if k not in shared)


def _method(run: str) -> str:
    """The curve a run belongs to: its method, `tiger` split by the modality it reads."""
    method = run.split(":")[0]
    for modality in ("text", "image"):
        if f"tiger_modality={modality}" in run:
            return f"{method} ({modality} IDs)"
    return method


def plot(results: dict, path: Path, dataset: str) -> None:
    """Validation HR@10 (all users) against training minutes, one colour per method: its
    best run (highest mean test HR@10) drawn bold, one line per seed, the method's other
    recipes faint; each run's test HR@10 at its kept epoch as a dot; papers and our SASRec
    as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods: dict[str, list[str]] = {}
    for run in results["runs"]:
        methods.setdefault(_method(run), []).append(run)
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=100)
    for i, (method, runs) in enumerate(sorted(methods.items())):
        colour = f"C{i % 10}"
        best = max(runs, key=lambda r: summary(r, results["runs"][r]["per_seed"])["hr_10"])
        for run in runs:
            seeds = results["runs"][run]["per_seed"]
            for seed, r in seeds.items():
                minutes = [e["train_minutes"] for e in r["curve"]]
                label = (f"{method}: {_recipe(run)}" if run == best and seed == min(seeds)
                         else None)
                ax.plot(minutes, [e["valid/hr_10"] for e in r["curve"]], color=colour,
                        alpha=0.9 if run == best else 0.25, linewidth=2 if run == best else 1,
                        marker="." if len(minutes) == 1 else None, label=label)
                kept = r["train"]["best_epoch"] - 1
                ax.scatter([minutes[kept]], [r["test"]["test/hr_10"]], color=colour, zorder=3,
                           alpha=1.0 if run == best else 0.35, s=30 if run == best else 12)
    sasrec = np.mean([r["summary"]["sasrec_hr_10"] for r in results["runs"].values()])
    ax.axhline(sasrec, color="k", linestyle="--", label=f"our SASRec, test {sasrec:.4f}")
    styles = ("-.", ":", (0, (5, 2)), (0, (3, 1, 1, 1)))
    for style, (name, values) in zip(styles, PAPER.items() if dataset == "instruments" else ()):
        ax.axhline(values[2], color="dimgrey", linestyle=style,
                   label=f"{name} paper, test {values[2]:.4f}")
    ax.set_xlabel("training minutes (validation excluded)")
    ax.set_ylabel("HR@10 (lines: validation, dots: test at the kept epoch)")
    ax.set_title(f"{dataset}, history not masked; bold: each method's best recipe, "
                 "faint: its other recipes")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="", help="comma-separated runs (see the module doc)")
    parser.add_argument("--seeds", default="1", help="comma-separated seeds of every run")
    parser.add_argument("--work", default="/tmp/mmgenrec-instruments",
                        help="stage outputs, kept between invocations to resume")
    parser.add_argument("--dataset", choices=sorted(OUT), default="instruments")
    parser.add_argument("--out", default=None, help="results file (default: per dataset)")
    parser.add_argument("--beam", type=int, default=None,
                        help="re-run `evaluate` of the finished --runs with this beam width "
                             "(kept under test_beam/<width>)")
    parser.add_argument("--table", action="store_true", help="print the finished runs' rows")
    parser.add_argument("--plot", default=None, help="write the curves to this PNG")
    args = parser.parse_args()
    out = Path(args.out or OUT[args.dataset])
    results = json.loads(out.read_text()) if out.is_file() else {"runs": {}}
    if args.table or args.plot:
        if args.table:
            print(table(results))
        if args.plot:
            plot(results, Path(args.plot), args.dataset)
        return 0
    work = Path(args.work)
    if args.dataset == "default":
        raw = yaml.safe_load((ROOT / "params.yaml").read_text())
        raw["paths"] = {k: str(ROOT / v) for k, v in raw["paths"].items()}
    elif not DATASET.is_dir():
        print(f"skipped: {DATASET} is absent")
        return 0
    else:
        (work / "common").mkdir(parents=True, exist_ok=True)
        raw = base_params(work)
        results["prepare_seconds"] = {**results.get("prepare_seconds", {}),
                                      **prepare(raw, work)}
    results["paper"] = {k: dict(zip(("hr_1", "hr_5", "hr_10", "ndcg_5", "ndcg_10"), v))
                        for k, v in PAPER.items()}
    if args.beam is not None:
        return rebeam(results, out, raw, args.runs, args.seeds, args.beam, work)
    for run in filter(None, args.runs.split(",")):
        row = results["runs"].setdefault(run, {"per_seed": {}})
        for seed in args.seeds.split(","):
            if seed in row["per_seed"]:
                print(f"{run} seed {seed}: kept from {out}")
                continue
            started = _provenance()           # the code the run starts with
            record = {**one_seed(raw, run, int(seed), work), **started}
            test = record["test"]
            print(f"{run} seed {seed}: test hr@10 {test['test/hr_10']:.4f} ndcg@10 "
                  f"{test['test/ndcg_10']:.4f} (sasrec {test['sasrec/hr_10']:.4f})", flush=True)
            # Another invocation may have finished runs meanwhile: merge into the file as it is.
            results = {**results, "runs": json.loads(out.read_text())["runs"]} \
                if out.is_file() else results
            row = results["runs"].setdefault(run, {"per_seed": {}})
            row["per_seed"][seed] = record
            for name, each in results["runs"].items():
                each["summary"] = summary(name, each["per_seed"])
            _save(results, out)
    print(table(results))
    return 0


def rebeam(results: dict, out: Path, raw: dict, runs: str, seeds: str, beam: int,
           work: Path) -> int:
    """Decode finished runs' kept models again with another beam width (same users)."""
    from pipeline.config import params_from_dict
    from pipeline.stages import evaluate

    for run in filter(None, runs.split(",")):
        for seed in seeds.split(","):
            params = with_overrides(run_params(raw, run, int(seed), work),
                                    {"evaluate.beam": beam})
            params["paths"]["evaluate"] += f"_beam{beam}"
            params["paths"]["reports"] += f"_beam{beam}"
            tested = evaluate.run(params_from_dict(params))
            results = json.loads(out.read_text())       # as other invocations left it
            record = results["runs"][run]["per_seed"][seed]
            record.setdefault("test_beam", {})[str(beam)] = tested
            print(f"{run} seed {seed} beam {beam}: test hr@10 {tested['test/hr_10']:.4f} "
                  f"(beam {raw['evaluate']['beam']}: {record['test']['test/hr_10']:.4f})")
            _save(results, out)
    return 0


def _save(results: dict, out: Path) -> None:
    """Write the results atomically: another invocation may read the file at any time."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".tmp").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    out.with_suffix(".tmp").replace(out)


def _provenance() -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "pipeline"], cwd=ROOT,
                           text=True, capture_output=True).stdout.strip()
    import torch
    return {"commit": commit + ("+uncommitted pipeline changes" if dirty else ""),
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, no GPU"
                       if not torch.cuda.is_available() else torch.cuda.get_device_name()}


if __name__ == "__main__":
    sys.exit(main())
