"""Issue 22's scale bench: each stage's seconds and peak memory against the size of its input.

    python bench/scale.py --family quantize --sizes 10000,100000,1000000 [--dim 384]
    python bench/scale.py --family shop --sizes 1,10,100 [--stages synthetic,ingest,samples]
    python bench/scale.py --table            # markdown rows, with the slopes
    python bench/scale.py --plot DIR         # one log-log PNG per stage (seconds, peak RSS)

Families:
- `quantize` (feature-free): N random item vectors (a Gaussian mixture of N / 20 centres, so
  the codes have structure) written as the text features, then the real `quantize` stage
  (params.yaml's settings, `rqkmeans` on that one modality) and `resolve`; the rows add the
  raw collision rate (resolve's work grows with the colliding items).
- `shop`: the synthetic default shop at SIZE times its items and users (2,000 x 5,000 at 1),
  images at 16 px from 10 on (rendering dominates otherwise; the stages after ingest do not
  read them here), then the real `synthetic` and `ingest` stages, and `samples`: building the
  training samples of every training sequence as the `train` stage does (`training_samples`).

Every stage runs as its own process (`python -m pipeline.stages.<stage>`) in a folder of its
own under --work with params.yaml's settings and that folder's paths; its peak resident memory
is the process's `ru_maxrss` (os.wait4). Rows go to bench/results/scale.json, one per (family,
stage, size): stage, items, users, interactions, seconds, peak_rss_mb, commit. A (family,
stage, size) already there is measured again only with --again.
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

from pipeline.config import read_yaml, with_overrides  # noqa: E402

OUT = ROOT / "bench" / "results" / "scale.json"
STAGES = {"quantize": ["quantize", "resolve"], "shop": ["synthetic", "ingest", "samples"]}
PATHS = ("synthetic", "ingest", "features", "sasrec", "codes", "model", "image_cache",
         "evaluate", "reports", "work", "metrics", "costs", "plots")


def folder_params(folder: Path, family: str, size: int) -> dict:
    """params.yaml with every path inside `folder` and the family's settings at `size`."""
    raw = read_yaml(ROOT / "params.yaml")
    keys: dict[str, object] = {f"paths.{k}": str(folder / "data" / k) for k in PATHS}
    if family == "quantize":
        keys["quantize.methods"] = {"text": "rqkmeans"}
    else:
        syn = raw["synthetic"]
        keys |= {"synthetic.n_items": syn["n_items"] * size,
                 "synthetic.n_users": syn["n_users"] * size}
        if size >= 10:
            keys["synthetic.image_size"] = 16
    return with_overrides(raw, keys)


def random_features(path: Path, n: int, dim: int, seed: int = 0) -> None:
    """N vectors around N / 20 Gaussian centres (unit spread around each, as far as the
    centres spread), written as an embedding table."""
    from pipeline.io.embeddings import write_embeddings

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(n // 20, 1), dim), dtype=np.float32)
    vectors = centres[rng.integers(len(centres), size=n)]
    vectors += rng.standard_normal((n, dim), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_embeddings(path, vectors, ["ok"] * n)


def measure(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, the output's tail) of one process; raises if it fails. A
    child's ru_maxrss starts at its parent's RSS when it forks, so this process must stay
    small: the big arrays (random features) are made in a child of their own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed in {cwd}:\n{output[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, output[-300:]


def samples_command() -> list[str]:
    """Build the training samples as `train` does, from the folder's ingested sequences."""
    code = ("import pyarrow.parquet as pq; from pipeline.genrec.tasks import sequential_samples;"
            "import yaml; p = yaml.safe_load(open('params.yaml'));"
            "t = pq.read_table(p['paths']['ingest'] + '/sequences.parquet', columns=['train_items']);"
            "n = pq.read_metadata(p['paths']['ingest'] + '/items.parquet').num_rows;"
            "s = sequential_samples(t.column('train_items'), "
            "p['train']['max_history'], n); print('samples', len(s.target))")
    return [sys.executable, "-c", code]


def sizes_of(folder: Path, family: str, stage: str, size: int) -> dict:
    """items, users, interactions of the stage's input: what synthetic wrote, for the later
    stages the ingested tables."""
    if family == "quantize":
        return {"items": size, "users": 0, "interactions": 0}
    import pyarrow.parquet as pq

    ingest = folder / "data" / "ingest"
    if stage == "synthetic":
        written = json.loads((folder / "data" / "metrics" / "synthetic.json").read_text())
        return {"items": written["written/items"], "users": written["written/users"],
                "interactions": written["written/reviews"]}
    return {"items": pq.read_metadata(ingest / "items.parquet").num_rows,
            "users": pq.read_metadata(ingest / "users.parquet").num_rows,
            "interactions": pq.read_metadata(ingest / "interactions.parquet").num_rows}


def run_family(family: str, sizes: list[int], stages: list[str], work: Path, dim: int,
               results: list[dict], again: bool, out: Path, commit: str) -> None:
    for size in sizes:
        folder = work / f"{family}-{size}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "params.yaml").write_text(yaml.safe_dump(folder_params(folder, family, size),
                                                           sort_keys=False))
        if family == "quantize":    # in a child: this process stays small (see `measure`)
            subprocess.run([sys.executable, __file__, "--features", str(size), "--dim", str(dim),
                            "--out", str(folder / "data" / "features" / "text.parquet")],
                           check=True)
        for stage in stages:
            done = [r for r in results if (r["family"], r["stage"], r["size"]) == (family, stage, size)]
            if done and not again:
                continue
            command = samples_command() if stage == "samples" else [
                sys.executable, "-m", f"pipeline.stages.{stage}"]
            seconds, rss, tail = measure(command, folder)
            row = {"family": family, "stage": stage, "size": size,
                   **sizes_of(folder, family, stage, size), "seconds": round(seconds, 2),
                   "peak_rss_mb": round(rss, 1), "commit": commit}
            if family == "quantize":
                metrics = json.loads((folder / "data" / "metrics" / "quantize.json").read_text())
                row["collision_rate"] = metrics["text/collision_rate"]
            results[:] = [r for r in results if r not in done] + [row]
            print(json.dumps(row), flush=True)
            out.write_text(json.dumps(results, indent=1) + "\n")


def slope(rows: list[dict], key: str, x: str) -> float | None:
    """Least-squares slope of log(key) against log(x) over the rows' two largest sizes and any
    between them (the issue's 10x-100x span)."""
    rows = sorted((r for r in rows if r.get(x)), key=lambda r: r[x])[-2:]
    if len(rows) < 2:
        return None
    xs, ys = np.log([r[x] for r in rows]), np.log([max(r[key], 1e-3) for r in rows])
    return float(np.polyfit(xs, ys, 1)[0])


def x_key(family: str, stage: str) -> str:
    return "items" if family == "quantize" or stage == "synthetic" else "interactions"


def table(results: list[dict]) -> str:
    lines = ["| family | stage | size | items | users | interactions | seconds | peak RSS MB |",
             "|---" * 8 + "|"]
    groups: dict[tuple, list] = {}
    for r in sorted(results, key=lambda r: (r["family"], r["stage"], r["size"])):
        groups.setdefault((r["family"], r["stage"]), []).append(r)
        lines.append(f"| {r['family']} | {r['stage']} | {r['size']} | {r['items']} | "
                     f"{r['users']} | {r['interactions']} | {r['seconds']} | {r['peak_rss_mb']} |")
    lines += ["", "| family | stage | slope of seconds | slope of peak RSS | against |",
              "|---|---|---|---|---|"]
    for (family, stage), rows in groups.items():
        x = x_key(family, stage)
        t, m = slope(rows, "seconds", x), slope(rows, "peak_rss_mb", x)
        fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {family} | {stage} | {fmt(t)} | {fmt(m)} | {x} (two largest sizes) |")
    return "\n".join(lines)


def plot(results: list[dict], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple, list] = {}
    for r in results:
        groups.setdefault((r["family"], r["stage"]), []).append(r)
    for (family, stage), rows in groups.items():
        x = x_key(family, stage)
        rows = sorted((r for r in rows if r.get(x)), key=lambda r: r[x])
        fig, ax = plt.subplots(figsize=(5.5, 4), dpi=100)
        for key, colour in (("seconds", "C0"), ("peak_rss_mb", "C1")):
            s = slope(rows, key, x)
            ax.loglog([r[x] for r in rows], [r[key] for r in rows], "o-", color=colour,
                      label=f"{key} (slope {s:.2f})" if s is not None else key)
        ax.set_xlabel(x)
        ax.set_title(f"{stage} ({family})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / f"scale_{family}_{stage}.png")
        plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--family", choices=sorted(STAGES))
    parser.add_argument("--sizes", default="")
    parser.add_argument("--stages", default=None, help="default: every stage of the family")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--work", default="/tmp/mmgenrec-scale")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--again", action="store_true")
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--plot", default=None)
    parser.add_argument("--features", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.features is not None:             # the child that writes the random vectors
        random_features(Path(args.out), args.features, args.dim)
        return 0
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else []
    if args.table:
        print(table(results))
        return 0
    if args.plot:
        plot(results, Path(args.plot))
        return 0
    if not args.family or not args.sizes:
        parser.error("--family and --sizes are needed to measure")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    stages = args.stages.split(",") if args.stages else STAGES[args.family]
    out.parent.mkdir(parents=True, exist_ok=True)
    run_family(args.family, [int(s) for s in args.sizes.split(",")], stages, Path(args.work),
               args.dim, results, args.again, out, commit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
