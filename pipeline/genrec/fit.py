"""Fitting the generative recommender: its samples, its size, and the loop with early
stopping on the validation HR@10, resumable after every epoch, data-parallel under torchrun."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from pipeline.config import Resume, TrainParams
from pipeline.core.metrics import KS_HR, KS_NDCG, evaluated_rows
from pipeline.genrec.catalog import Catalog
from pipeline.genrec.decoding import evaluate_users
from pipeline.genrec.methods import METHODS
from pipeline.genrec.tasks import (
    Samples, history_lengths, history_samples, item_samples, sequential_samples,
)
from pipeline.genrec.training import (
    Throughput, epoch_steps, lr_lambda, optimizer_groups, train_step,
)
from pipeline.models.genrec import GenRec, GenRecConfig
from pipeline.runtime import distributed
from pipeline.runtime.checkpoint import fingerprint, load_progress, plain, save_progress
from pipeline.runtime.errors import UserInputError
from pipeline.runtime.progress import bar

PROGRESS_STEPS = 50   # steps between two reads of the loss for the progress bar


def model_config(cfg: TrainParams, catalog: Catalog) -> GenRecConfig:
    """The model's size from `train.model`, its vocabulary from the catalogue, and MSCGRec's
    dual positions (item recency up to max_history, slot up to the widest item) when the
    method has them and `train.dual_positions` is set."""
    dual = METHODS[cfg.method].dual_positions and cfg.dual_positions
    width = max(sum(catalog.tables[s].shape[1] for s in t.sources) for t in catalog.train_tasks)
    return GenRecConfig(vocab_size=catalog.vocab.size, **dataclasses.asdict(cfg.model),
                        max_items=cfg.max_history if dual else 0, max_slots=width if dual else 0)


def fit(model: GenRec, catalog: Catalog, cfg: TrainParams, samples: dict[str, Samples],
        valid: Samples, seed: int, work: Path, world: distributed.World
        ) -> tuple[dict, list[dict], float]:
    """Train with early stopping on validation HR@10; checkpoint every epoch for resume.

    Under torchrun every process builds the same batches and takes its rows of each (see
    `train_step`); DDP averages the gradients, so a step sees the whole batch as one process
    would. Validation users are split across processes and the metrics summed. With
    `cfg.ema` > 0 the weights validated, selected and returned are an exponential moving
    average of the trained ones, updated after every optimizer step. Returns (best weights,
    one record per epoch, training samples/s of all processes together).
    """
    per_epoch = sum(-(-len(s.target) // cfg.batch_size) for s in samples.values())
    optimizer = torch.optim.AdamW(optimizer_groups(model, cfg.weight_decay), lr=cfg.lr,
                                  fused=world.device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(per_epoch * cfg.epochs, cfg.warmup_ratio, cfg.schedule))
    generator = torch.Generator().manual_seed(seed)       # batch order, planned on the host
    # Modality-dropout masks are drawn where they are used; on the CPU from the same stream.
    dropout = (generator if world.device.type == "cpu"
               else torch.Generator(world.device).manual_seed(seed))
    data = TrainData.place(samples, catalog, world.device)
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema)) if cfg.ema > 0
           else None)
    forward = torch.compile(model) if cfg.compile else model
    if world.size > 1:
        forward = DistributedDataParallel(forward, device_ids=[world.device.index]
                                          if world.device.type == "cuda" else None)
    ckpt = work / fingerprint(
        plain(dataclasses.asdict(cfg)), seed, catalog.vocab.size, world.size,
        {k: int(s.target.sum()) for k, s in samples.items()}) / "last.pt"
    state = {"epoch": 0, "best": -1.0, "best_epoch": 0, "best_state": None, "history": []}
    stateful = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    if dropout is not generator:
        stateful["dropout_rng"] = GeneratorState(dropout)
    if ema is not None:
        stateful["ema"] = ema
    selected = model if ema is None else ema.module      # the weights validated and kept
    if ckpt.is_file() and cfg.resume is Resume.AUTO:
        state = load_progress(ckpt, stateful, generator)
        print(f"train: resuming after epoch {state['epoch']} from {ckpt}")
    speed = Throughput()
    # Training minutes (validation excluded) carry on across a resume.
    before = state["history"][-1]["train_minutes"] if state["history"] else 0.0
    while state["epoch"] < cfg.epochs and state["epoch"] - state["best_epoch"] < cfg.patience:
        sums = train_epoch(forward, model, data, cfg, (generator, dropout), optimizer,
                            scheduler, ema, world, speed, state["epoch"] + 1)
        state["epoch"] += 1
        metrics = _validate(selected, data.catalog, valid, cfg, world)
        record = {"epoch": state["epoch"], "steps": scheduler.last_epoch,
                  "train_minutes": round(before + speed.seconds / 60, 4), **sums,
                  "lr": scheduler.get_last_lr()[0], **metrics}
        state["history"].append(record)
        if world.main:
            print(f"train: epoch {state['epoch']} loss {record['train/loss']:.4f} "
                  f"valid hr@10 {metrics['valid/hr_10']:.4f} ndcg@10 {metrics['valid/ndcg_10']:.4f}")
        if metrics["valid/hr_10"] > state["best"]:
            state |= {"best": metrics["valid/hr_10"], "best_epoch": state["epoch"],
                      "best_state": {k: v.detach().cpu().clone()
                                     for k, v in selected.state_dict().items()}}
        if world.main:
            save_progress(ckpt, state, stateful, generator)
        distributed.barrier(world)
    if world.main:
        ckpt.unlink(missing_ok=True)
    return state["best_state"], state["history"], speed.rate


class TrainData(NamedTuple):
    """What the training steps read, placed once: the catalogue and every task's samples on
    the model's device, the history lengths on the host (where batches are planned)."""
    catalog: Catalog
    samples: dict[str, Samples]
    lengths: dict[str, torch.Tensor]

    @classmethod
    def place(cls, samples: dict[str, Samples], catalog: Catalog,
              device: torch.device) -> TrainData:
        return cls(catalog.to(device),
                   {k: Samples(s.history.to(device), s.target.to(device))
                    for k, s in samples.items()},
                   {k: history_lengths(s.history, catalog.n_items) for k, s in samples.items()})


class GeneratorState:
    """A torch.Generator seen as a stateful object of the resume checkpoint."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> dict:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, saved: dict) -> None:
        self.generator.set_state(saved["state"])


def train_epoch(forward, model: GenRec, data: TrainData, cfg: TrainParams,
                 generators: tuple[torch.Generator, torch.Generator], optimizer, scheduler,
                 ema: AveragedModel | None, world: distributed.World, speed: Throughput,
                 epoch: int) -> dict[str, float]:
    """One pass over the shuffled batches; returns the sample-weighted mean loss terms.

    The loss sums stay on the device and are read once, at the end of the epoch; the
    progress bar reads the loss every PROGRESS_STEPS steps."""
    model.train()
    plan, dropout = generators
    steps = epoch_steps(data.lengths, data.catalog.train_tasks, cfg.batch_size, plan,
                        world.device)
    # A batch with fewer rows than processes would leave one empty: every process skips it.
    steps = [s for s in steps if len(s.index) >= world.size]
    sums: dict[str, torch.Tensor] = {}
    done = 0
    speed.start()
    with bar(steps, desc=f"train epoch {epoch}", unit="batch", enabled=world.main,
             leave=False, mininterval=2.0) as batches:
        for i, step in enumerate(batches):
            terms = train_step(forward, data.catalog, cfg, step,
                               data.samples[step.task.name], dropout, world.device,
                               world.rank, world.size)
            optimizer.zero_grad(set_to_none=True)
            terms.pop("objective").backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            rows = len(step.index[world.rank::world.size])
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value.detach() * rows
            done += len(step.index)
            if world.main and (i + 1) % PROGRESS_STEPS == 0:
                batches.set_postfix(loss=f"{float(terms['loss'].detach()):.3f}",
                                    samples_s=f"{speed.running(done):.0f}", refresh=False)
    keys = sorted(sums)
    local = torch.stack([sums[k] for k in keys]).double().cpu()   # the epoch's one read
    if world.device.type == "cuda":        # the last optimizer step too, for the timing
        torch.cuda.synchronize(world.device)
    speed.stop(done)
    totals = distributed.sum_all(world, local)
    n = sum(len(s.index) for s in steps)
    return {f"train/{k}": float(v) / n for k, v in zip(keys, totals)}


def _validate(model: GenRec, catalog: Catalog, valid: Samples, cfg: TrainParams,
              world: distributed.World) -> dict[str, float]:
    """Validation metrics over all sampled users; each process decodes its share."""
    mine = Samples(valid.history[world.rank::world.size], valid.target[world.rank::world.size])
    keys = [f"valid/hr_{k}" for k in KS_HR] + [f"valid/ndcg_{k}" for k in KS_NDCG]
    sums = torch.zeros(len(keys), dtype=torch.float64)
    if len(mine.target):
        metrics, _ = evaluate_users(model, catalog, mine, cfg, "valid")
        sums = torch.tensor([metrics[k] * len(mine.target) for k in keys], dtype=torch.float64)
    totals = distributed.sum_all(world, sums)
    return {k: float(v) / len(valid.target) for k, v in zip(keys, totals)}


def training_samples(catalog: Catalog, train_items, max_history: int) -> dict[str, Samples]:
    """Samples of every training task, keeping only targets that have the task's codes.
    train_items: the training sequences, a list column (see `sequential_samples`)."""
    seq = sequential_samples(train_items, max_history, catalog.n_items)
    out = {}
    for t in catalog.train_tasks:
        if t.sequential:
            s = seq
        else:  # alignment tasks: every item that has both the source and the target codes
            items = torch.arange(catalog.n_items)
            ok = catalog.has_codes(t.target, items)
            for m in t.sources:
                ok &= catalog.has_codes(m, items)
            s = item_samples(items[ok].numpy())
        keep = catalog.has_codes(t.target, s.target)
        out[t.name] = Samples(s.history[keep], s.target[keep])
        if len(out[t.name].target) == 0:
            raise UserInputError(f"train: task {t.name} has no sample (no target item has "
                                 f"{t.target} semantic IDs)")
    return out


def valid_sample(catalog: Catalog, seqs, cfg: TrainParams, seed: int) -> Samples:
    """Every user's validation history -> validation item, or a seeded sample of
    `valid_users` users when that is not 0."""
    rows = evaluated_rows(len(seqs), cfg.valid_users, seed)
    return history_samples(seqs.column("valid_history").take(rows),
                           seqs.column("valid_item").to_numpy()[rows], cfg.max_history,
                           catalog.n_items)
