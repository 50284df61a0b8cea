"""DVC stage `train`: unique semantic IDs + training sequences -> generative recommender.

Every prefix of every training sequence is a sample (history capped at `max_history`); the
alignment tasks add one sample per item. Early stopping on the validation HR@10 of every
user (or of `valid_users` sampled users), decoded exactly as the test is (trie-constrained
beam search, modality fusion). Outputs: `<paths.model>/model.pt` (weights, model config, train config and
the semantic IDs, so the recommender rebuilds without params.yaml), per-epoch curves in
`<paths.plots>/train/epochs.json`. An interrupted run resumes from its last finished epoch. Under `torchrun
--nproc_per_node N -m pipeline.stages.train` the stage trains data-parallel (DDP) on N
processes (GPUs, or gloo processes on the CPU).
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from pipeline import distributed, tables
from pipeline.checkpoint import load_progress, save_progress
from pipeline.config import Params, Resume, TrainConfig, TrainMethod
from pipeline.core.metrics import KS_HR, KS_NDCG
from pipeline.cpu_memory import keep_freed_memory
from pipeline.errors import UserInputError
from pipeline.features import fingerprint, resolve_device
from pipeline.genrec_data import Samples, history_samples, item_samples, sequential_samples
from pipeline.genrec_training import (
    Throughput, epoch_steps, lr_lambda, optimizer_groups, train_step,
)
from pipeline.models.genrec import GenRec, GenRecConfig
from pipeline.recommender import (
    Catalog, build_catalog, evaluate_users, has_codes, read_final_codes,
)
from pipeline.runner import stage_main
from pipeline.seeding import seed_everything


def run(params: Params) -> dict:
    cfg = params.train
    seed_everything(params.seed)       # model init and dropout draw from torch's global RNG
    world = distributed.start(resolve_device(cfg.device.value))
    try:
        return _run(params, world)
    finally:
        distributed.stop(world)


def _run(params: Params, world: distributed.World) -> dict:
    cfg = params.train
    n_items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS).num_rows
    seqs = tables.read_table(Path(params.paths.ingest) / "sequences.parquet", tables.SEQUENCES)
    codes = read_final_codes(Path(params.paths.codes) / "final", cfg)
    catalog = build_catalog(codes, n_items, cfg)
    samples = training_samples(catalog, seqs.column("train_items").to_pylist(), cfg.max_history)
    valid = valid_sample(catalog, seqs, cfg, params.seed)
    model_cfg = model_config(cfg, catalog)
    model = GenRec(model_cfg).to(world.device)
    best_state, history, speed = _fit(model, catalog, cfg, samples, valid, params, world)
    best = max(history, key=lambda h: h["valid/hr_10"])
    if world.main:
        out = Path(params.paths.model) / "model.pt"
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": best_state, "config": dataclasses.asdict(model_cfg),
                    "train": _plain(dataclasses.asdict(cfg)), "n_items": n_items,
                    "codes": {m: (ids, c) for m, (ids, c) in codes.items()}}, out.with_suffix(".tmp"))
        out.with_suffix(".tmp").replace(out)
        tables.write_json(history, Path(params.paths.plots) / "train" / "epochs.json")
    return {**{k: v for k, v in best.items() if k.startswith("valid/")},
            "best_epoch": best["epoch"], "epochs_run": len(history),
            "train/samples": sum(len(s.target) for s in samples.values()),
            "train/samples_per_s": round(speed, 1), "train/processes": world.size,
            "params": sum(p.numel() for p in model.parameters())}


def training_samples(catalog: Catalog, train_items: list[list[int]],
                     max_history: int) -> dict[str, Samples]:
    """Samples of every training task, keeping only targets that have the task's codes."""
    seq = sequential_samples(train_items, max_history, catalog.n_items)
    out = {}
    for t in catalog.train_tasks:
        if t.sequential:
            s = seq
        else:  # alignment tasks: every item that has both the source and the target codes
            items = torch.arange(catalog.n_items)
            ok = has_codes(catalog, t.target, items)
            for m in t.sources:
                ok &= has_codes(catalog, m, items)
            s = item_samples(items[ok].numpy())
        keep = has_codes(catalog, t.target, s.target)
        out[t.name] = Samples(s.history[keep], s.target[keep])
        if len(out[t.name].target) == 0:
            raise UserInputError(f"train: task {t.name} has no sample (no target item has "
                                 f"{t.target} semantic IDs)")
    return out


def valid_sample(catalog: Catalog, seqs, cfg: TrainConfig, seed: int) -> Samples:
    """Every user's validation history -> validation item, or a seeded sample of
    `valid_users` users when that is not 0."""
    histories = seqs.column("valid_history").to_pylist()
    targets = seqs.column("valid_item").to_pylist()
    rows = np.arange(len(targets))
    if 0 < cfg.valid_users < len(targets):
        rows = np.sort(np.random.default_rng(seed).permutation(len(targets))[:cfg.valid_users])
    return history_samples([histories[r] for r in rows], [targets[r] for r in rows],
                           cfg.max_history, catalog.n_items)


def model_config(cfg: TrainConfig, catalog: Catalog) -> GenRecConfig:
    m = cfg.model
    dual = cfg.method is TrainMethod.MSCGREC and cfg.dual_positions
    width = max(sum(catalog.tables[s].shape[1] for s in t.sources) for t in catalog.train_tasks)
    return GenRecConfig(catalog.vocab.size, m.d_model, m.d_ff, m.layers, m.decoder_layers,
                        m.heads, m.d_kv, m.dropout, m.tie_head, cfg.max_history if dual else 0,
                        width if dual else 0)


def _plain(obj):
    """asdict output with enums as their values (JSON- and torch.load-friendly)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return getattr(obj, "value", obj)


def _fit(model: GenRec, catalog: Catalog, cfg: TrainConfig, samples: dict[str, Samples],
         valid: Samples, params: Params, world: distributed.World) -> tuple[dict, list[dict], float]:
    """Train with early stopping on validation HR@10; checkpoint every epoch for resume.

    Under torchrun every process builds the same batches and takes its rows of each (see
    `train_step`); DDP averages the gradients, so a step sees the whole batch as one process
    would. Validation users are split across processes and the metrics summed. Returns
    (best weights, one record per epoch, training samples/s of all processes together).
    """
    per_epoch = sum(-(-len(s.target) // cfg.batch_size) for s in samples.values())
    optimizer = torch.optim.AdamW(optimizer_groups(model, cfg.weight_decay), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(per_epoch * cfg.epochs, cfg.warmup_ratio, cfg.schedule))
    generator = torch.Generator().manual_seed(params.seed)
    forward = torch.compile(model) if cfg.compile else model
    if world.size > 1:
        forward = DistributedDataParallel(forward, device_ids=[world.device.index]
                                          if world.device.type == "cuda" else None)
    ckpt = Path(params.paths.work) / "train" / fingerprint(
        _plain(dataclasses.asdict(cfg)), params.seed, catalog.vocab.size, world.size,
        {k: int(s.target.sum()) for k, s in samples.items()}) / "last.pt"
    state = {"epoch": 0, "best": -1.0, "best_epoch": 0, "best_state": None, "history": []}
    stateful = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    if ckpt.is_file() and cfg.resume is Resume.AUTO:
        state = load_progress(ckpt, stateful, generator)
        print(f"train: resuming after epoch {state['epoch']} from {ckpt}")
    speed = Throughput()
    # Training minutes (validation excluded) carry on across a resume.
    before = state["history"][-1]["train_minutes"] if state["history"] else 0.0
    while state["epoch"] < cfg.epochs and state["epoch"] - state["best_epoch"] < cfg.patience:
        sums = _train_epoch(forward, model, catalog, cfg, samples, generator, optimizer,
                            scheduler, world, speed, state["epoch"] + 1)
        state["epoch"] += 1
        metrics = _validate(model, catalog, valid, cfg, world)
        record = {"epoch": state["epoch"], "steps": scheduler.last_epoch,
                  "train_minutes": round(before + speed.seconds / 60, 4), **sums,
                  "lr": scheduler.get_last_lr()[0], **metrics}
        state["history"].append(record)
        if world.main:
            print(f"train: epoch {state['epoch']} loss {record['train/loss']:.4f} "
                  f"valid hr@10 {metrics['valid/hr_10']:.4f} ndcg@10 {metrics['valid/ndcg_10']:.4f}")
        if metrics["valid/hr_10"] > state["best"]:
            state |= {"best": metrics["valid/hr_10"], "best_epoch": state["epoch"],
                      "best_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        if world.main:
            save_progress(ckpt, state, stateful, generator)
        distributed.barrier(world)
    if world.main:
        ckpt.unlink(missing_ok=True)
    return state["best_state"], state["history"], speed.rate


def _train_epoch(forward, model: GenRec, catalog: Catalog, cfg: TrainConfig,
                 samples: dict[str, Samples], generator: torch.Generator, optimizer, scheduler,
                 world: distributed.World, speed: Throughput, epoch: int) -> dict[str, float]:
    """One pass over the shuffled batches; returns the sample-weighted mean loss terms."""
    model.train()
    sums: dict[str, float] = {}
    steps = epoch_steps(samples, catalog.train_tasks, cfg.batch_size, catalog.n_items, generator)
    # A batch with fewer rows than processes would leave one empty: every process skips it.
    steps = [s for s in steps if len(s.index) >= world.size]
    bar = tqdm(steps, desc=f"train epoch {epoch}", unit="batch", disable=None if world.main else True,
               leave=False, mininterval=2.0)
    for step in bar:
        speed.start()
        terms = train_step(forward, catalog, cfg, step, samples[step.task.name], generator,
                           world.device, world.rank, world.size)
        optimizer.zero_grad(set_to_none=True)
        terms.pop("objective").backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        speed.stop(len(step.index))
        rows = len(step.index[world.rank::world.size])
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach()) * rows
        bar.set_postfix(loss=f"{float(terms['loss'].detach()):.3f}", samples_s=f"{speed.rate:.0f}",
                        refresh=False)
    keys = sorted(sums)
    totals = distributed.sum_all(world, torch.tensor([sums[k] for k in keys], dtype=torch.float64))
    n = sum(len(s.index) for s in steps)
    return {f"train/{k}": float(v) / n for k, v in zip(keys, totals)}


def _validate(model: GenRec, catalog: Catalog, valid: Samples, cfg: TrainConfig,
              world: distributed.World) -> dict[str, float]:
    """Validation metrics over all sampled users; each process decodes its share."""
    mine = Samples(valid.history[world.rank::world.size], valid.target[world.rank::world.size])
    keys = [f"valid/hr_{k}" for k in KS_HR] + [f"valid/ndcg_{k}" for k in KS_NDCG]
    sums = torch.zeros(len(keys), dtype=torch.float64)
    if len(mine.target):
        metrics, _ = evaluate_users(model, catalog, mine, cfg, world.device, "valid")
        sums = torch.tensor([metrics[k] * len(mine.target) for k in keys], dtype=torch.float64)
    totals = distributed.sum_all(world, sums)
    return {k: float(v) / len(valid.target) for k, v in zip(keys, totals)}


def main() -> int:
    keep_freed_memory()              # in the stage's own process (tests call run() in pytest's)
    return stage_main("train", run)


if __name__ == "__main__":
    sys.exit(main())
