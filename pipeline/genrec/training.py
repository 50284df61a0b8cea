"""One training step of the generative recommender (every method): batches, the target loss
(MSCGRec's constrained softmax or the full one), the method's extra loss, the learning-rate
schedule and AdamW's parameter groups."""
from __future__ import annotations

import math
import time
from typing import NamedTuple

import torch
import torch.nn.functional as F

from pipeline.config import Schedule, TrainParams
from pipeline.core.batching import length_buckets
from pipeline.core.beam import level_log_probs
from pipeline.genrec.catalog import Catalog
from pipeline.genrec.methods import METHODS
from pipeline.genrec.tasks import Samples, Task, encode_history
from pipeline.models.genrec import GenRec


class Step(NamedTuple):
    task: Task
    index: torch.Tensor    # sample rows of that task


def target_loss(logits: torch.Tensor, targets: torch.Tensor, t: Task, catalog: Catalog,
                constrained: bool) -> torch.Tensor:
    """Mean token cross-entropy of the target items' codes; logits (B, L, V), targets (B,).

    constrained (MSCGRec §3.4): at each level the softmax is normalised only over the codes
    the trie allows after the gold prefix; otherwise over the whole vocabulary.
    """
    labels = catalog.tables[t.target][targets].to(logits.device)           # (B, L) token ids
    if not constrained:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
    trie = catalog.tries[t.target]
    rows = catalog.row_of_item[t.target][targets.cpu()].to(logits.device)
    nodes = trie.item_nodes[rows]                                          # (B, L)
    offsets = catalog.vocab.offsets[t.target]
    loss = logits.new_zeros(())
    for level in range(labels.shape[1]):
        lp = level_log_probs(logits[:, level], offsets[level],
                             trie.allowed(level, nodes[:, level]), "trie")
        loss = loss - lp.gather(1, (labels[:, level] - offsets[level])[:, None]).mean()
    return loss / labels.shape[1]


def epoch_steps(samples: dict[str, Samples], tasks: list[Task], batch_size: int, n_items: int,
                generator: torch.Generator) -> list[Step]:
    """Length-bucketed batches of every task, interleaved in random order."""
    steps = [Step(t, b) for t in tasks
             for b in length_buckets((samples[t.name].history != n_items).sum(dim=1),
                                     batch_size, generator)]
    return [steps[i] for i in torch.randperm(len(steps), generator=generator).tolist()]


def train_step(model: GenRec, catalog: Catalog, cfg: TrainParams, step: Step,
               samples: Samples, generator: torch.Generator, device: torch.device,
               rank: int = 0, world: int = 1) -> dict:
    """Forward + loss of this process's share of one batch (no optimizer step).

    Under data parallelism process `rank` of `world` takes rows rank::world of the batch, and
    its loss is scaled so that DDP's gradient average equals the gradient of the whole batch's
    mean loss (exact even when the batch does not split evenly). Every process draws the
    modality-dropout mask of the whole batch, so the random stream is the same for any world
    size. Returns the loss terms.
    """
    t = step.task
    method = METHODS[cfg.method]
    drop = None
    if method.modality_dropout and cfg.modality_dropout > 0:
        drop = torch.rand(len(step.index), len(t.sources), generator=generator) < cfg.modality_dropout
        drop = drop[rank::world]
    index = step.index[rank::world]
    history, targets = samples.history[index], samples.target[index]
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name],
                           catalog.n_items, drop)
    batch = type(batch)(*(x.to(device) for x in batch))
    labels = catalog.tables[t.target][targets].to(device)
    share = world * len(index) / len(step.index)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits, _ = model(batch, labels)
        loss = target_loss(logits.float(), targets, t, catalog, cfg.constrained)
        terms = {"loss": loss}
        extra = method.extra_loss
        if extra is not None and extra.weight(cfg) > 0:
            # In-batch negatives are this process's rows (as in the papers' DDP runs).
            term = extra.loss(getattr(model, "module", model), catalog, targets, cfg, device)
            terms[extra.name] = term
            terms["loss"] = loss + extra.weight(cfg) * term
    terms["objective"] = terms["loss"] * share
    return terms


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
    """Training samples per second over the steps timed so far."""

    def __init__(self) -> None:
        self.samples, self.seconds, self._start = 0, 0.0, 0.0

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self, n: int) -> None:
        self.seconds += time.perf_counter() - self._start
        self.samples += n

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0
