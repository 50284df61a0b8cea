"""Issue 22, past one machine: the data-parallel `train` under torchrun and the sharded feature
extraction on a local Dask cluster, each against one process, on the default dataset.

    python bench/parallel.py --what train [--epochs 1] [--valid-users 500]
    python bench/parallel.py --what features [--stage text_features] [--workers 2]

Reads what `make run` wrote under params.yaml's paths (ingest tables, semantic IDs); writes
only under --work. Results go to bench/results/parallel.json.

- `train`: the real `train` stage for --epochs epochs, (a) one process with --threads torch
  threads (the default run), (b) `torchrun --standalone --nproc_per_node P` with one thread
  each (gloo all-reduce of the gradients, `pipeline/runtime/distributed.py`). Reported: wall
  seconds, the stage's training samples/s (`timing/samples_per_s`), validation HR@10.
- `features`: a feature stage (its work folder emptied first), (a) one process
  (`python -m pipeline.stages.<stage>`), (b) --workers `--shard i/N` processes submitted to a
  `distributed.LocalCluster` of that many single-threaded workers, then the stage's own run
  assembling the chunks. Reported: wall seconds of each part; the vectors of (a) and (b) are
  compared (the largest absolute difference).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import read_yaml, with_overrides  # noqa: E402

OUT = ROOT / "bench" / "results" / "parallel.json"
OWN = ("model", "evaluate", "reports", "work", "metrics", "plots", "costs")


def folder(work: Path, name: str, overrides: dict, own: tuple[str, ...] = OWN) -> Path:
    """A run folder whose params.yaml reads the pipeline's data and writes only inside (the
    paths named in `own`)."""
    run = work / name
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    raw = read_yaml(ROOT / "params.yaml")
    keys = {f"paths.{k}": str((ROOT / raw["paths"][k]).resolve()) for k in raw["paths"]}
    keys |= {f"paths.{k}": str(run / k) for k in own} | overrides
    (run / "params.yaml").write_text(yaml.safe_dump(with_overrides(raw, keys), sort_keys=False))
    return run


def timed(command: list[str], cwd: Path, threads: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - start


def bench_train(work: Path, epochs: int, valid_users: int, procs: int, threads: int) -> dict:
    keys = {"train.epochs": epochs, "train.valid_users": valid_users, "train.resume": "never"}
    rows = {}
    for name, command, per_proc in (
            ("one_process", [sys.executable, "-m", "pipeline.stages.train"], threads),
            (f"torchrun_{procs}", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                   f"--nproc_per_node={procs}", "-m", "pipeline.stages.train"],
             max(threads // procs, 1))):
        run = folder(work, f"train-{name}", keys)
        seconds = timed(command, run, per_proc)
        costs = json.loads((run / "costs" / "train.json").read_text())
        metrics = json.loads((run / "metrics" / "train.json").read_text())
        rows[name] = {"seconds": round(seconds, 1), "threads_per_process": per_proc,
                      "samples_per_s": costs.get("timing/samples_per_s"),
                      "processes": metrics.get("train/processes"),
                      "valid_hr_10": metrics.get("valid/hr_10")}
        print(name, rows[name], flush=True)
    return rows


def bench_features(work: Path, stage: str, workers: int, threads: int) -> dict:
    from distributed import Client, LocalCluster

    from pipeline.io.embeddings import read_embeddings

    own = (*OWN, "features")
    single = folder(work, f"{stage}-one_process", {}, own)
    sharded = folder(work, f"{stage}-dask_{workers}", {}, own)
    for run in (single, sharded):     # local image files are named relative to the project
        (run / "data").symlink_to(ROOT / "data")
    rows = {"one_process": {"seconds": round(timed(
        [sys.executable, "-m", f"pipeline.stages.{stage}"], single, threads), 1)}}
    command = [sys.executable, "-m", f"pipeline.stages.{stage}", "--shard"]
    start = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        futures = [client.submit(timed, command + [f"{i + 1}/{workers}"], sharded, 1, pure=False)
                   for i in range(workers)]
        shard_seconds = client.gather(futures)
    shards = time.perf_counter() - start
    assemble = timed([sys.executable, "-m", f"pipeline.stages.{stage}"], sharded, threads)
    name = stage.removesuffix("_features")
    a, _ = read_embeddings(single / "features" / f"{name}.parquet")
    b, _ = read_embeddings(sharded / "features" / f"{name}.parquet")
    rows[f"dask_{workers}"] = {"seconds": round(shards + assemble, 1),
                               "shards_seconds": round(shards, 1),
                               "per_shard_seconds": [round(s, 1) for s in shard_seconds],
                               "assemble_seconds": round(assemble, 1),
                               "max_abs_difference": float(np.nanmax(np.abs(a - b)))}
    print(rows, flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--what", choices=["train", "features"], required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--valid-users", type=int, default=500)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the one process")
    parser.add_argument("--stage", default="text_features")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default="/tmp/mmgenrec-parallel")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    work = Path(args.work)
    if args.what == "train":
        rows = bench_train(work, args.epochs, args.valid_users, args.procs, args.threads)
        results["train"] = {"epochs": args.epochs, "valid_users": args.valid_users,
                            "commit": commit, **rows}
    else:
        rows = bench_features(work, args.stage, args.workers, args.threads)
        results[args.stage] = {"commit": commit, **rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
