"""Training samples/s at the papers' T5 size: this pipeline's training step vs the reference
path (HF T5 with fixed-length padding, per-sample collation in a DataLoader, and the full
vocabulary softmax of `labels=`), on the same training samples.

    python bench/train_speed.py [--method mscgrec] [--steps 31] [--reference-steps 11]
        [--batch 256] [--out bench/results/train_speed.json]

Reads the semantic IDs and sequences the pipeline wrote under params.yaml's paths (run
`make run` first). Both paths build the same model size (MACRec/MSCGRec: 4 + 4 layers,
d_model 128, d_ff 1024, 6 heads, d_kv 64). Each path runs twice, each time in a fresh
process: with glibc's default allocator settings, and after `keep_freed_memory()` (what the
train stage sets); a fifth run takes this pipeline's step through HF's encoder module instead
of `GenRec.encode`, to show what the encoder pass alone is worth. Each run also reports its
process's system CPU seconds, minor page faults and peak RSS. This pipeline's steps are the first `--steps` of an epoch's shuffled
length-bucketed batches (their lengths vary); every reference step costs the same (all
padded to the longest history), so it gets fewer. The first step of each run is a warm-up,
not timed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.io import tables  # noqa: E402
from pipeline.config import params_from_dict  # noqa: E402
from pipeline.runtime.memory import keep_freed_memory  # noqa: E402
from pipeline.models.genrec import PAD  # noqa: E402
from pipeline.genrec.training import Step, epoch_steps, train_step  # noqa: E402
from pipeline.models.genrec import GenRec  # noqa: E402
from pipeline.genrec.catalog import build_catalog, read_final_codes  # noqa: E402
from pipeline.genrec.fit import model_config, training_samples  # noqa: E402
from pipeline.genrec.tasks import history_lengths  # noqa: E402

# (path, allocator setting) of each measured run
RUNS = [("ours", "keep"), ("ours", "default"), ("ours-hf-encoder", "keep"),
        ("reference", "keep"), ("reference", "default")]
PAPER_T5 = dict(d_model=128, d_ff=1024, layers=4, decoder_layers=4, heads=6, d_kv=64, dropout=0.1,
                tie_head=False)


def ours(model, catalog, cfg, samples, steps: list[Step]) -> float:
    """Samples/s of the pipeline's step: length-bucketed batches, dynamic padding, trie loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(0)
    timed, seconds = 0, 0.0
    for i, step in enumerate(steps):
        start = time.perf_counter()
        loss = train_step(model, catalog, cfg, step, samples[step.task.name], generator,
                          torch.device("cpu"))["objective"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i:
            seconds += time.perf_counter() - start
            timed += len(step.index)
    return timed / seconds


class FixedLength(torch.utils.data.Dataset):
    """One sample at a time as Python lists, every history padded to max_history items."""

    def __init__(self, catalog, task, samples):
        self.catalog, self.task, self.samples = catalog, task, samples
        self.rows = {m: catalog.tables[m].tolist() for m in task.sources + (task.target,)}

    def __len__(self):
        return len(self.samples.target)

    def __getitem__(self, i):
        tokens = []
        for item in self.samples.history[i].tolist():
            for m in self.task.sources:
                tokens.extend(self.rows[m][item])       # sentinel rows are PAD tokens
        tokens.append(self.catalog.vocab.prompts[self.task.name])
        return tokens, self.rows[self.task.target][int(self.samples.target[i])]


def collate(rows):
    tokens = torch.tensor([r[0] for r in rows])
    return tokens, tokens != PAD, torch.tensor([r[1] for r in rows])


def reference(model, catalog, cfg, samples, batch: int, n_steps: int) -> float:
    t = catalog.train_tasks[0]
    loader = torch.utils.data.DataLoader(FixedLength(catalog, t, samples[t.name]), batch_size=batch,
                                         shuffle=True, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    timed, seconds = 0, 0.0
    start = time.perf_counter()
    for i, (tokens, mask, labels) in enumerate(loader):
        if i == n_steps:
            break
        loss = model(input_ids=tokens, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i:
            seconds += time.perf_counter() - start
            timed += len(labels)
        start = time.perf_counter()
    return timed / seconds


def measure(path: str, method: str, n_steps: int, batch: int) -> dict:
    """Samples/s of one path in this process, and the mean encoder length of its batches."""
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["train"].update(method=method, model=PAPER_T5, batch_size=batch)
    params = params_from_dict(raw)
    cfg = params.train
    n_items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS).num_rows
    seqs = tables.read_table(Path(params.paths.ingest) / "sequences.parquet", tables.SEQUENCES)
    catalog = build_catalog(read_final_codes(Path(params.paths.codes) / "final", cfg), n_items, cfg)
    samples = training_samples(catalog, seqs.column("train_items").to_pylist(), cfg.max_history)
    torch.manual_seed(params.seed)
    model = GenRec(model_config(cfg, catalog)).train()
    if path == "ours-hf-encoder":
        model.encode = model.hf_encode           # the same step through HF's encoder module
    per_item = sum(catalog.tables[m].shape[1] for m in catalog.train_tasks[0].sources)
    if path == "reference":
        return {"samples_per_s": reference(model.t5, catalog, cfg, samples, batch, n_steps),
                "tokens_per_row": cfg.max_history * per_item + 1,
                "params": sum(p.numel() for p in model.t5.parameters())}
    lengths = {k: history_lengths(s.history, n_items) for k, s in samples.items()}
    steps = epoch_steps(lengths, catalog.train_tasks, batch,
                        torch.Generator().manual_seed(params.seed), torch.device("cpu"))[:n_steps]
    items = [s.width for s in steps[1:]]
    return {"samples_per_s": ours(model, catalog, cfg, samples, steps),
            "tokens_per_row": round(per_item * sum(items) / len(items) + 1, 1),
            "params": sum(p.numel() for p in model.parameters())}


def process_usage() -> dict:
    """This process's system CPU seconds, minor page faults and peak RSS (whole process)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"system_s": round(usage.ru_stime, 1), "minor_faults": usage.ru_minflt,
            "peak_rss_gb": round(usage.ru_maxrss / 2 ** 20, 1)}


def run_apart(path: str, memory: str, args) -> dict:
    """`measure` in a fresh process, so that allocator settings and heap state stay apart."""
    out = subprocess.run([sys.executable, __file__, "--measure", path, "--memory", memory,
                          "--method", args.method, "--batch", str(args.batch),
                          "--steps", str(args.reference_steps if path == "reference" else args.steps)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    result = json.loads(out.stdout.splitlines()[-1])
    print(f"{path:15} {memory:7} {result['samples_per_s']:7.1f} samples/s", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="mscgrec", choices=["mscgrec", "tiger"])
    parser.add_argument("--steps", type=int, default=31)
    parser.add_argument("--reference-steps", type=int, default=11)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_speed.json"))
    parser.add_argument("--measure", choices=sorted({p for p, _ in RUNS}),
                        help=argparse.SUPPRESS)
    parser.add_argument("--memory", choices=["default", "keep"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.chdir(ROOT)
    if args.measure:
        if args.memory == "keep" and not keep_freed_memory():
            raise SystemExit("keep_freed_memory: not a glibc system")
        result = measure(args.measure, args.method, args.steps, args.batch)
        print(json.dumps(result | process_usage()))
        return 0
    runs = {f"{path}/{memory}": run_apart(path, memory, args) for path, memory in RUNS}
    rate = {k: round(v["samples_per_s"], 1) for k, v in runs.items()}
    result = {"method": args.method, "model": PAPER_T5, "batch": args.batch,
              "timed_steps": {"ours": args.steps - 1, "reference": args.reference_steps - 1},
              "samples_per_s": rate,
              "tokens_per_row": {p: runs[f"{p}/keep"]["tokens_per_row"] for p in ("ours", "reference")},
              "ratio": round(rate["ours/keep"] / rate["reference/default"], 2),
              "ratio_same_allocator": {m: round(rate[f"ours/{m}"] / rate[f"reference/{m}"], 2)
                                       for m in ("keep", "default")},
              "process": {k: {u: v[u] for u in ("system_s", "minor_faults", "peak_rss_gb")}
                          for k, v in runs.items()},
              "params": runs["ours/keep"]["params"],
              "machine": f"{platform.processor() or platform.machine()}, "
                         f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
