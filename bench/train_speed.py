"""Training samples/s at the papers' T5 size: this pipeline's training step vs the reference
path (HF T5 with fixed-length padding, per-sample collation in a DataLoader, and the full
vocabulary softmax of `labels=`), in one process, on the same training samples.

    python bench/train_speed.py [--method mscgrec] [--steps 6] [--batch 256]
        [--out bench/results/train_speed.json]

Reads the semantic IDs and sequences the pipeline wrote under params.yaml's paths (run
`make run` first). Both paths build the same model size (MACRec/MSCGRec: 4 + 4 layers,
d_model 128, d_ff 1024, 6 heads, d_kv 64); the first step of each is a warm-up, not timed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import tables  # noqa: E402
from pipeline.config import params_from_dict  # noqa: E402
from pipeline.genrec_data import PAD  # noqa: E402
from pipeline.genrec_training import Step, epoch_steps, train_step  # noqa: E402
from pipeline.models.genrec import GenRec  # noqa: E402
from pipeline.recommender import build_catalog, read_final_codes  # noqa: E402
from pipeline.stages.train import model_config, training_samples  # noqa: E402

PAPER_T5 = dict(d_model=128, d_ff=1024, layers=4, decoder_layers=4, heads=6, d_kv=64, dropout=0.1)


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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="mscgrec", choices=["mscgrec", "tiger"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_speed.json"))
    args = parser.parse_args()
    os.chdir(ROOT)
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["train"].update(method=args.method, model=PAPER_T5, batch_size=args.batch)
    params = params_from_dict(raw)
    cfg = params.train
    n_items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS).num_rows
    seqs = tables.read_table(Path(params.paths.ingest) / "sequences.parquet", tables.SEQUENCES)
    catalog = build_catalog(read_final_codes(Path(params.paths.codes) / "final", cfg), n_items, cfg)
    samples = training_samples(catalog, seqs.column("train_items").to_pylist(), cfg.max_history)
    steps = epoch_steps(samples, catalog.train_tasks, args.batch, n_items,
                        torch.Generator().manual_seed(params.seed))[:args.steps]
    torch.manual_seed(params.seed)
    model = GenRec(model_config(cfg, catalog)).train()
    fast = ours(model, catalog, cfg, samples, steps)
    torch.manual_seed(params.seed)
    plain = GenRec(model_config(cfg, catalog)).t5.train()
    slow = reference(plain, catalog, cfg, samples, args.batch, args.steps)
    result = {"method": args.method, "model": PAPER_T5, "batch": args.batch,
              "timed_steps": args.steps - 1, "ours_samples_per_s": round(fast, 1),
              "reference_samples_per_s": round(slow, 1), "ratio": round(fast / slow, 2),
              "params": sum(p.numel() for p in model.parameters()),
              "machine": f"{platform.processor() or platform.machine()}, "
                         f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
