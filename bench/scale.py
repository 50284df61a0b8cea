"""Issue 22's scale bench: each stage's seconds and peak memory against the size of its input.

    python bench/scale.py --family quantize --sizes 10000,100000,1000000 [--dim 384]
    python bench/scale.py --family shop --sizes 1,10,100 [--stages synthetic,ingest,samples]
    python bench/scale.py --family reviews --sizes 100000,1000000,10000000
    python bench/scale.py --table            # markdown rows, with the slopes
    python bench/scale.py --plot DIR         # one log-log PNG per stage: seconds (a timed
                                             # loop: CPU ms per sample or user), peak RSS

Families:
- `quantize` (feature-free): N random item vectors (a Gaussian mixture of N / 20 centres, so
  the codes have structure) written as the text features, then the real `quantize` stage
  (params.yaml's settings, `rqkmeans` on that one modality) and `resolve`; the rows add the
  raw collision rate (resolve's work grows with the colliding items).
- `shop`: the synthetic default shop at SIZE times its items and users (2,000 x 5,000 at 1),
  images at 16 px from 10 on (rendering dominates otherwise), then the real `synthetic` and
  `ingest` stages, and `samples`: building the training samples of every training sequence
  as the `train` stage does (`training_samples`). `image_features` (the real stage,
  params.yaml's encoder; it resizes every image to its input size, so 16 px files cost what
  full-size ones do but for the decoding) is asked for by name: at 100 it is hours of CPU.
- `reviews`: SIZE reviews in the Amazon 2018 format (`<name>.json.gz`, one JSON object a line
  with the fields of a real review: reviewer, asin, time, rating, a 20-word review text and
  a summary — real texts are often longer, and parsing grows with the line;
  `meta_<name>.json.gz` without images), written by a child
  process: SIZE / 12 users with 5–30 reviews each (geometric, mean ~12) over SIZE / 50 items
  (log-normal popularity, σ = 1), then the real `ingest` (`dataset.source: amazon2018`),
  `samples`, the real `text_features` (params.yaml's encoder on each item's text), and
  `steps`: `--steps` optimizer steps of the default `train` recipe (params.yaml's method,
  model and batch) on the ingested catalogue, with random unique 4 x 256 codes for every
  item and modality the method reads (no features needed), on one thread, the first step
  not timed; its row adds `samples_per_s` (wall clock), `samples_per_cpu_s` (the process's
  CPU time over every step), `history_items` (mean history length of the timed samples: a
  step's cost grows with it) and `catalogue_items`; `decode`: the `evaluate` stage's
  decoding (constrained beam search, fused top-10) of `--users` test users on the same
  random codes, its row adding `users_per_s` and `users_per_cpu_s`; `sasrec_steps`:
  `--steps` training steps of the `sasrec` stage's loop (params.yaml's loss, the full
  softmax over the catalogue by default; samples are target positions) and its
  full-ranking evaluation of `--users` test users; `sasrec_sampled`: the same with
  `sasrec.loss: sampled`; `sasrec_sparse`: sampled with `sasrec.item_updates: sparse`.
  Issue 22's targets: `ingest` of 10^7 interactions in <= 5 minutes, the samples in <= 2
  minutes and <= 4 GB, samples/s at 200,000 items within 20 % of the default catalogue's.

Every stage runs as its own process (`python -m pipeline.stages.<stage>`) in a folder of its
own under --work with params.yaml's settings and that folder's paths; its peak resident memory
is the process's `ru_maxrss` (os.wait4). Rows go to bench/results/scale.json, one per (family,
stage, size): stage, items, users, interactions, seconds, cpu_seconds (the process's user +
system time: other jobs on the cores inflate the wall seconds, not these), peak_rss_mb,
commit, load_1min. A (family, stage, size) already there is measured again only with --again.
Slopes and plots use CPU seconds where every row of the stage has them.
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
STAGES = {"quantize": ["quantize", "resolve"], "shop": ["synthetic", "ingest", "samples"],
          "reviews": ["ingest", "samples", "text_features", "steps", "decode", "sasrec_steps",
                      "sasrec_sampled", "sasrec_sparse"]}
OPTIONAL = {"shop": ["image_features"]}     # run only when --stages names them
TRAINING = ("steps", "sasrec_steps", "sasrec_sampled", "sasrec_sparse")
CHILDREN = (*TRAINING, "decode")      # timed in a child of this script
PATHS = ("synthetic", "ingest", "features", "sasrec", "codes", "model", "image_cache",
         "evaluate", "reports", "work", "metrics", "costs", "plots")


def folder_params(folder: Path, family: str, size: int) -> dict:
    """params.yaml with every path inside `folder` and the family's settings at `size`."""
    raw = read_yaml(ROOT / "params.yaml")
    keys: dict[str, object] = {f"paths.{k}": str(folder / "data" / k) for k in PATHS}
    if family == "quantize":
        keys["quantize.methods"] = {"text": "rqkmeans"}
    elif family == "reviews":
        keys |= {"dataset.source": "amazon2018", "dataset.name": "Scale",
                 "dataset.path": str(folder / "data" / "raw")}
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


WORDS = ("guitar string tuner cable pedal amp strap pick case stand bright warm tone sound "
         "great good solid cheap works fine broke returned love recommend quality price").split()


def random_reviews(folder: Path, n: int, seed: int = 0) -> None:
    """`Scale.json.gz` with about n reviews and `meta_Scale.json.gz`, Amazon 2018 fields."""
    import gzip

    rng = np.random.default_rng(seed)
    n_users, n_items = max(n // 12, 1), max(n // 50, 5)
    lengths = np.clip(5 + rng.geometric(1 / 8, size=n_users) - 1, 5, 30)
    users = np.repeat(np.arange(n_users), lengths)
    popularity = rng.lognormal(0.0, 1.0, size=n_items)     # a long tail, most items kept
    items = rng.choice(n_items, size=len(users), p=popularity / popularity.sum())
    stamps = 1_400_000_000 + np.cumsum(rng.integers(1, 600, size=len(users)))
    words = rng.integers(len(WORDS), size=(len(users), 24))
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "Scale.json.gz", "wt", compresslevel=1) as fh:
        for row, (user, item, stamp) in enumerate(zip(users.tolist(), items.tolist(), stamps.tolist())):
            text = " ".join(WORDS[w] for w in words[row, :20])
            summary = " ".join(WORDS[w] for w in words[row, 20:])
            fh.write(f'{{"overall": 5.0, "verified": true, "reviewTime": "01 1, 2015", '
                     f'"reviewerID": "A{user:012d}", "asin": "B{item:09d}", '
                     f'"reviewerName": "user {user}", "reviewText": "{text}", '
                     f'"summary": "{summary}", "unixReviewTime": {stamp}}}\n')
    with gzip.open(folder / "meta_Scale.json.gz", "wt", compresslevel=1) as fh:
        for item in range(n_items):
            fh.write(json.dumps({"asin": f"B{item:09d}", "title": f"item {item} "
                                 + " ".join(WORDS[w] for w in rng.integers(len(WORDS), size=6)),
                                 "brand": f"brand {item % 97}", "category": ["Scale", f"c{item % 13}"],
                                 "description": [], "imageURLHighRes": []}) + "\n")


def measure(command: list[str], cwd: Path) -> tuple[float, float, float, str]:
    """(seconds, CPU seconds, peak RSS in MB, the output's tail) of one process; raises if it
    fails. CPU seconds (user + system) do not grow when other jobs share the cores, wall
    seconds do. A child's ru_maxrss starts at its parent's RSS when it forks, so this process
    must stay small: the big arrays (random features) are made in a child of their own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed in {cwd}:\n{output[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output[-300:]


def samples_command() -> list[str]:
    """Build the training samples as `train` does, from the folder's ingested sequences."""
    code = ("import pyarrow.parquet as pq; from pipeline.genrec.tasks import sequential_samples;"
            "import yaml; p = yaml.safe_load(open('params.yaml'));"
            "t = pq.read_table(p['paths']['ingest'] + '/sequences.parquet', columns=['train_items']);"
            "n = pq.read_metadata(p['paths']['ingest'] + '/items.parquet').num_rows;"
            "s = sequential_samples(t.column('train_items'), "
            "p['train']['max_history'], n); print('samples', len(s.target))")
    return [sys.executable, "-c", code]


def random_catalog():
    """(params, catalog, sequences) of the current folder: params.yaml's `train` method on
    the ingested catalogue, every item given random unique 4 x 256 codes in each modality the
    method reads (distinct 32-bit numbers written as 4 base-256 digits; no features needed)."""
    from pipeline.config import params_from_dict
    from pipeline.genrec.catalog import MODALITY_ORDER, build_catalog
    from pipeline.genrec.methods import METHODS
    from pipeline.io import tables

    params = params_from_dict(read_yaml(Path("params.yaml")))
    cfg = params.train
    ingest = Path(params.paths.ingest)
    n_items = tables.read_table(ingest / "items.parquet", tables.ITEMS).num_rows
    train_tasks, _ = METHODS[cfg.method].tasks(cfg)
    needed = sorted({m for t in train_tasks for m in (*t.sources, t.target)},
                    key=MODALITY_ORDER.index)
    rng = np.random.default_rng(params.seed)
    codes = {}
    for m in needed:
        numbers = rng.choice(2 ** 32, size=n_items, replace=False)
        codes[m] = (np.arange(n_items), (numbers[:, None] >> np.array([24, 16, 8, 0])) & 255)
    seqs = tables.read_table(ingest / "sequences.parquet", tables.SEQUENCES)
    return params, build_catalog(codes, n_items, cfg), seqs


def train_steps(n_steps: int) -> dict:
    """Samples/s of `n_steps` training steps (the first not timed) of params.yaml's `train`
    recipe on `random_catalog`; one torch thread."""
    import torch

    from bench.train_speed import ours
    from pipeline.genrec.fit import model_config, training_samples
    from pipeline.genrec.tasks import history_lengths
    from pipeline.genrec.training import epoch_steps
    from pipeline.models.genrec import GenRec

    params, catalog, seqs = random_catalog()
    cfg, n_items = params.train, catalog.n_items
    samples = training_samples(catalog, seqs.column("train_items"), cfg.max_history)
    torch.set_num_threads(1)
    torch.manual_seed(params.seed)
    model = GenRec(model_config(cfg, catalog)).train()
    lengths = {k: history_lengths(s.history, n_items) for k, s in samples.items()}
    steps = epoch_steps(lengths, catalog.train_tasks, cfg.batch_size,
                        torch.Generator().manual_seed(params.seed), torch.device("cpu"))[:n_steps]
    start = time.process_time()
    rate = ours(model, catalog, cfg, samples, steps)      # the train_speed bench's loop
    cpu = time.process_time() - start
    items = sum(int((samples[s.task.name].history[s.index] != n_items).sum()) for s in steps[1:])
    timed = sum(len(s.index) for s in steps[1:])
    return {"samples_per_s": round(rate, 1),
            "samples_per_cpu_s": round(sum(len(s.index) for s in steps) / cpu, 1),
            "catalogue_items": n_items, "history_items": round(items / timed, 2),
            "timed_steps": len(steps) - 1}


def test_users(seqs, n_users: int, seed: int) -> tuple[list[list[int]], np.ndarray]:
    """Test histories (training items + the validation item) and test targets of a seeded
    sample of `n_users` users."""
    from pipeline.core.metrics import evaluated_rows

    picked = seqs.take(evaluated_rows(len(seqs), n_users, seed))
    histories = [t + [v] for t, v in zip(picked.column("train_items").to_pylist(),
                                         picked.column("valid_item").to_pylist())]
    return histories, picked.column("test_item").to_numpy()


def decode_users(n_users: int) -> dict:
    """Users/s of the `evaluate` stage's decoding (constrained beam search of every decoded
    task, fused top-10; params.yaml's evaluate beam, fusion and batch) for a seeded sample of
    `n_users` test users on `random_catalog`, with a freshly initialised model (a beam
    search's work does not depend on the weights); one torch thread, the first batch not
    timed."""
    import torch

    from pipeline.genrec.decoding import normalization, recommend_users
    from pipeline.genrec.fit import model_config
    from pipeline.genrec.tasks import history_samples
    from pipeline.models.genrec import GenRec

    params, catalog, seqs = random_catalog()
    cfg, ev = params.train, params.evaluate
    histories, targets = test_users(seqs, n_users + ev.batch_size, params.seed)
    samples = history_samples(histories, targets, cfg.max_history, catalog.n_items)
    torch.set_num_threads(1)
    torch.manual_seed(params.seed)
    model = GenRec(model_config(cfg, catalog))
    args = (ev.beam, normalization(cfg), ev.fusion, ev.top_k, ev.batch_size)
    recommend_users(model, catalog, samples.history[:ev.batch_size], *args)      # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    recommend_users(model, catalog, samples.history[ev.batch_size:], *args)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    timed = len(samples.history) - ev.batch_size
    return {"users_per_s": round(timed / seconds, 1), "users_per_cpu_s": round(timed / cpu, 1),
            "timed_users": timed, "catalogue_items": catalog.n_items}


def sasrec_steps(n_steps: int, n_users: int, overrides: dict[str, str] | None = None) -> dict:
    """The SASRec baseline on the ingested catalogue: samples/s (target positions) of
    `n_steps` training steps of the `sasrec` stage's loop (params.yaml's `sasrec` section
    with `overrides`, e.g. {"sasrec.loss": "sampled"}; the first step not timed), and users/s
    of its full-ranking test evaluation for a seeded sample of `n_users` users; one torch
    thread."""
    import torch

    from pipeline.baselines.sasrec import evaluate, optimizers, train_batch, training_rows
    from pipeline.config import params_from_dict
    from pipeline.core.batching import length_buckets
    from pipeline.io import tables
    from pipeline.models.sasrec import SASRec, SASRecConfig

    raw = read_yaml(Path("params.yaml"))
    params = params_from_dict(with_overrides(raw, overrides or {}))
    cfg, ingest = params.sasrec, Path(params.paths.ingest)
    n_items = tables.read_table(ingest / "items.parquet", tables.ITEMS).num_rows
    seqs = tables.read_table(ingest / "sequences.parquet", tables.SEQUENCES)
    inputs, targets = training_rows(seqs.column("train_items").to_pylist(), cfg.max_len)
    torch.set_num_threads(1)
    torch.manual_seed(params.seed)
    model = SASRec(SASRecConfig(n_items, cfg.hidden, cfg.layers, cfg.heads, cfg.dropout,
                                cfg.max_len)).train()
    steppers = optimizers(model, cfg)
    generator = torch.Generator().manual_seed(params.seed)
    batches = length_buckets((targets > 0).sum(dim=1), cfg.batch_size, generator)[:n_steps]
    timed, seconds, cpu = 0, 0.0, 0.0
    for i, batch in enumerate(batches):
        start, cpu_start = time.perf_counter(), time.process_time()
        _, positions = train_batch(model, steppers, inputs, targets, batch, cfg, generator,
                                   torch.device("cpu"))
        if i:
            seconds += time.perf_counter() - start
            cpu += time.process_time() - cpu_start
            timed += positions
    histories, test = test_users(seqs, n_users, params.seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    evaluate(model, histories, test, cfg.mask_history, torch.device("cpu"), "test")
    ranking, ranking_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"samples_per_s": round(timed / seconds, 1), "samples_per_cpu_s": round(timed / cpu, 1),
            "users_per_s": round(len(histories) / ranking, 1),
            "users_per_cpu_s": round(len(histories) / ranking_cpu, 1),
            "timed_steps": len(batches) - 1, "timed_users": len(histories),
            "catalogue_items": n_items, "loss": cfg.loss, "item_updates": cfg.item_updates}


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
    out = {"items": pq.read_metadata(ingest / "items.parquet").num_rows,
           "users": pq.read_metadata(ingest / "users.parquet").num_rows,
           "interactions": pq.read_metadata(ingest / "interactions.parquet").num_rows}
    if stage == "ingest":      # what it read, before the k-core filter
        out["raw_interactions"] = json.loads(
            (folder / "data" / "metrics" / "ingest.json").read_text())["raw/interactions"]
    return out


def prepare(folder: Path, family: str, stage: str) -> None:
    """Run, unmeasured, the shop's `synthetic` and `ingest` when a later stage needs their
    outputs and the folder lacks them (its rows were measured in a folder since deleted)."""
    if family != "shop" or stage in ("synthetic", "ingest"):
        return
    for upstream, out in (("synthetic", "synthetic"), ("ingest", "ingest/items.parquet")):
        if not (folder / "data" / out).exists():
            measure([sys.executable, "-m", f"pipeline.stages.{upstream}"], folder)


def run_family(family: str, sizes: list[int], stages: list[str], work: Path, dim: int,
               results: list[dict], again: bool, out: Path, commit: str, steps: int,
               users: int) -> None:
    for size in sizes:
        folder = work / f"{family}-{size}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "params.yaml").write_text(yaml.safe_dump(folder_params(folder, family, size),
                                                           sort_keys=False))
        if family == "quantize":    # in a child: this process stays small (see `measure`)
            subprocess.run([sys.executable, __file__, "--features", str(size), "--dim", str(dim),
                            "--out", str(folder / "data" / "features" / "text.parquet")],
                           check=True)
        if family == "reviews" and not (folder / "data" / "raw" / "Scale.json.gz").is_file():
            subprocess.run([sys.executable, __file__, "--reviews", str(size),
                            "--out", str(folder / "data" / "raw")], check=True)
        for stage in stages:
            done = [r for r in results if (r["family"], r["stage"], r["size"]) == (family, stage, size)]
            if done and not again:
                continue
            prepare(folder, family, stage)
            command = (samples_command() if stage == "samples" else
                       [sys.executable, __file__, "--child", stage, "--steps", str(steps),
                        "--users", str(users)] if stage in CHILDREN
                       else [sys.executable, "-m", f"pipeline.stages.{stage}"])
            seconds, cpu, rss, tail = measure(command, folder)
            row = {"family": family, "stage": stage, "size": size,
                   **sizes_of(folder, family, stage, size), "seconds": round(seconds, 2),
                   "cpu_seconds": round(cpu, 2), "peak_rss_mb": round(rss, 1),
                   "commit": commit, "load_1min": round(os.getloadavg()[0], 2)}
            if family == "quantize":
                metrics = json.loads((folder / "data" / "metrics" / "quantize.json").read_text())
                row["collision_rate"] = metrics["text/collision_rate"]
            if stage in CHILDREN:
                row |= json.loads(tail.strip().splitlines()[-1])
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


def unit_cost(row: dict) -> tuple[str, float] | None:
    """A timed loop's CPU milliseconds per unit of work (a training sample, a decoded user):
    what must stay flat as the catalogue grows. None for the stages timed as a whole."""
    if row["stage"] in TRAINING:
        return "CPU ms per training sample", 1000 / row["samples_per_cpu_s"]
    if row["stage"] == "decode":
        return "CPU ms per decoded user", 1000 / row["users_per_cpu_s"]
    return None


def time_key(rows: list[dict]) -> str:
    """CPU seconds where every row of the stage has them (rows from before they were
    recorded have wall seconds only)."""
    return "cpu_seconds" if all("cpu_seconds" in r for r in rows) else "seconds"


def x_key(family: str, stage: str) -> str:
    return ("items" if family == "quantize"
            or stage in ("synthetic", "text_features", "image_features", *CHILDREN)
            else "interactions")


def table(results: list[dict]) -> str:
    lines = ["| family | stage | size | items | users | interactions | seconds | CPU seconds "
             "| peak RSS MB |", "|---" * 9 + "|"]
    groups: dict[tuple, list] = {}
    for r in sorted(results, key=lambda r: (r["family"], r["stage"], r["size"])):
        groups.setdefault((r["family"], r["stage"]), []).append(r)
        lines.append(f"| {r['family']} | {r['stage']} | {r['size']} | {r['items']} | "
                     f"{r['users']} | {r['interactions']} | {r['seconds']} | "
                     f"{r.get('cpu_seconds', '–')} | {r['peak_rss_mb']} |"
                     + (f" {r['samples_per_s']} samples/s ({r['samples_per_cpu_s']} a CPU "
                        "second)" if "samples_per_s" in r else "")
                     + (f" {r['users_per_s']} users/s ({r['users_per_cpu_s']} a CPU second)"
                        if "users_per_s" in r else ""))
    lines += ["", "| family | stage | slope of seconds | slope of peak RSS | against |",
              "|---|---|---|---|---|"]
    for (family, stage), rows in groups.items():
        x = x_key(family, stage)
        cost = unit_cost(rows[0])
        if cost:         # a timed loop: its cost per unit, not the process's seconds
            rows = [r | {"unit_ms": unit_cost(r)[1]} for r in rows]
        seconds = time_key(rows)
        t = slope(rows, "unit_ms" if cost else seconds, x)
        m = slope(rows, "peak_rss_mb", x)
        fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
        what = cost[0] if cost else "CPU seconds" if seconds == "cpu_seconds" else None
        lines.append(f"| {family} | {stage} | {fmt(t)}{f' ({what})' if what else ''} | "
                     f"{fmt(m)} | {x} (two largest sizes) |")
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
        cost = unit_cost(rows[0])
        if cost:
            rows = [r | {cost[0]: unit_cost(r)[1]} for r in rows]
        fig, ax = plt.subplots(figsize=(5.5, 4), dpi=100)
        for key, colour in ((cost[0] if cost else time_key(rows), "C0"), ("peak_rss_mb", "C1")):
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
    parser.add_argument("--reviews", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=101,
                        help="training steps of `steps` and `sasrec_steps`")
    parser.add_argument("--users", type=int, default=512,
                        help="test users of `decode` and of `sasrec_steps`' ranking")
    parser.add_argument("--child", choices=CHILDREN, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.features is not None:             # the child that writes the random vectors
        random_features(Path(args.out), args.features, args.dim)
        return 0
    if args.reviews is not None:              # the child that writes the review files
        random_reviews(Path(args.out), args.reviews)
        return 0
    if args.child is not None:                # the child that times a stage's loop
        timed = {"steps": lambda: train_steps(args.steps),
                 "decode": lambda: decode_users(args.users),
                 "sasrec_steps": lambda: sasrec_steps(args.steps, args.users),
                 "sasrec_sampled": lambda: sasrec_steps(args.steps, args.users,
                                                        {"sasrec.loss": "sampled"}),
                 "sasrec_sparse": lambda: sasrec_steps(args.steps, args.users,
                                                       {"sasrec.loss": "sampled",
                                                        "sasrec.item_updates": "sparse"}),
                 }[args.child]
        print(json.dumps(timed()))
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
    known = STAGES[args.family] + OPTIONAL.get(args.family, [])
    if unknown := [s for s in stages if s not in known]:
        parser.error(f"--stages: {unknown} not in the {args.family} family ({', '.join(known)})")
    out.parent.mkdir(parents=True, exist_ok=True)
    run_family(args.family, [int(s) for s in args.sizes.split(",")], stages, Path(args.work),
               args.dim, results, args.again, out, commit, args.steps, args.users)
    return 0


if __name__ == "__main__":
    sys.exit(main())
