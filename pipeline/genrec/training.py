"""One training step of the generative recommender (every method): batches, the target loss
(MSCGRec's constrained softmax or the full one), the method's extra loss, the learning-rate
schedule and AdamW's parameter groups."""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from typing import NamedTuple

import torch
import torch.nn.functional as F

from pipeline.config import Precision, Schedule, TrainParams
from pipeline.core.batching import length_buckets
from pipeline.core.beam import level_log_probs
from pipeline.genrec.catalog import Catalog
from pipeline.genrec.methods import METHODS
from pipeline.genrec.tasks import Samples, Task, encode_history
from pipeline.models.genrec import GenRec


class Step(NamedTuple):
    task: Task
    index: torch.Tensor        # (B,) sample rows of that task, on the samples' device
    width: int | None = None   # longest history of the batch (items), known on the host;
                               # None: `encode_history` finds it (a host synchronisation)


def train_step(model: GenRec, catalog: Catalog, cfg: TrainParams, step: Step,
               samples: Samples, generator: torch.Generator, device: torch.device,
               rank: int = 0, world: int = 1) -> dict:
    """Forward + loss of this process's share of one batch (no optimizer step); returns the
    loss terms, as tensors on `device` (reading them is the caller's choice).

    Everything it reads is already on `device` (catalogue, samples, step index; `generator`
    too, which draws the modality-dropout masks), and no shape depends on the data, so on a
    GPU the step only queues kernels and never waits for them. Under data parallelism process
    `rank` of `world` takes rows rank::world of the batch, and its loss is scaled so that
    DDP's gradient average equals the gradient of the whole batch's mean loss (exact even when
    the batch does not split evenly). Every process draws the modality-dropout mask of the
    whole batch, so the random stream is the same for any world size.
    """
    t, method = step.task, METHODS[cfg.method]
    drop = None
    if method.modality_dropout and cfg.modality_dropout > 0:
        drop = torch.rand(len(step.index), len(t.sources), generator=generator,
                          device=device) < cfg.modality_dropout
        drop = drop[rank::world]
    index = step.index[rank::world]
    history, targets = samples.history[index], samples.target[index]
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name],
                           catalog.n_items, drop, width=step.width)
    labels = catalog.tables[t.target][targets]                              # (B, L) token ids
    amp = torch.autocast("cuda", torch.bfloat16) if autocast(cfg, device) else nullcontext()
    with amp:
        logits, _ = model(batch, labels)
        terms = {"loss": target_loss(logits.float(), labels, targets, t, catalog,
                                     cfg.constrained)}
        extra = method.extra_loss
        if (extra is not None and extra.weight(cfg) > 0
                and set(extra.needs) <= set(catalog.tables)):
            # In-batch negatives are this process's rows (as in the papers' DDP runs).
            term = extra.loss(getattr(model, "module", model), catalog, targets, cfg, device)
            terms[extra.name] = term
            terms["loss"] = terms["loss"] + extra.weight(cfg) * term
    terms["objective"] = terms["loss"] * (world * len(index) / len(step.index))
    return terms


def autocast(cfg: TrainParams, device: torch.device) -> bool:
    """bf16 autocast of the forward pass: on CUDA when `train.precision` is bfloat16 (the
    loss itself is computed in float32); the CPU always computes in float32."""
    return device.type == "cuda" and cfg.precision is Precision.BFLOAT16


def target_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor, t: Task,
                catalog: Catalog, constrained: bool) -> torch.Tensor:
    """Mean token cross-entropy of the target items' codes: logits (B, L, V), labels (B, L)
    their token ids, targets (B,) the item ids.

    constrained (MSCGRec §3.4): at each level the softmax is normalised only over the codes
    the trie allows after the gold prefix; otherwise over the whole vocabulary.
    """
    if not constrained:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
    trie = catalog.tries[t.target]
    nodes = trie.item_nodes[catalog.row_of_item[t.target][targets]]         # (B, L)
    offsets = catalog.vocab.offsets[t.target]
    loss = logits.new_zeros(())
    for level in range(labels.shape[1]):
        lp = level_log_probs(logits[:, level], offsets[level],
                             trie.allowed_lookup(level, nodes[:, level]), "trie")
        loss = loss - lp.gather(1, (labels[:, level] - offsets[level])[:, None]).mean()
    return loss / labels.shape[1]


def epoch_steps(lengths: dict[str, torch.Tensor], tasks: list[Task], batch_size: int,
                generator: torch.Generator, device: torch.device) -> list[Step]:
    """Length-bucketed batches of every task, interleaved in random order.

    lengths: task name -> (S,) history lengths of its samples, on the host, where the batches
    are planned; every step's rows are then one slice of a single index tensor copied to
    `device` once per epoch (a per-step copy would wait for the device each time)."""
    planned = [(t, b) for t in tasks
               for b in length_buckets(lengths[t.name], batch_size, generator)]
    planned = [planned[i] for i in torch.randperm(len(planned), generator=generator).tolist()]
    if not planned:
        return []
    index = torch.cat([b for _, b in planned]).to(device)
    bounds = torch.tensor([0] + [len(b) for _, b in planned]).cumsum(0).tolist()
    return [Step(t, index[lo:hi], int(lengths[t.name][b].max()))
            for (t, b), lo, hi in zip(planned, bounds, bounds[1:])]


def lr_lambda(total_steps: int, warmup_ratio: float, schedule: Schedule = Schedule.COSINE):
    """Linear warm-up over `warmup_ratio` of `total_steps`, then the schedule, as a LambdaLR
    factor: cosine to 0 at `total_steps`, inverse square root of the step (1 at the end of
    the warm-up, no horizon), or constant."""
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule is Schedule.INVERSE_SQRT:
            return math.sqrt(warmup / step)
        if schedule is Schedule.CONSTANT:
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def optimizer_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight decay on matrices only, none on norms' gains and
    biases (vectors), as in the T5 / BERT recipes."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


class Throughput:
    """Training samples per second over the epochs timed so far: `start` when an epoch
    begins, `stop` once its work has finished on the device (timing single steps of a GPU
    would time only their launch)."""

    def __init__(self) -> None:
        self.samples, self.seconds, self._start = 0, 0.0, 0.0

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self, n: int) -> None:
        self.seconds += time.perf_counter() - self._start
        self.samples += n

    def running(self, n: int) -> float:
        """The rate of the epochs so far plus `n` samples of the current one."""
        seconds = self.seconds + time.perf_counter() - self._start
        return (self.samples + n) / seconds if seconds else 0.0

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0
