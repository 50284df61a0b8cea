"""The SASRec baseline: its training rows, its training loop (full- or sampled-softmax
cross-entropy, early stopping on validation NDCG@10, resumable) and its ranking metrics,
with or without each user's history masked. Its item table is also the collaborative
modality."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from pipeline.config import ItemUpdates, SASRecLoss, SASRecParams
from pipeline.core.batching import length_buckets
from pipeline.core.metrics import evaluated_rows, mask_seen_scores, ranking_metrics, target_ranks
from pipeline.io.weights import load_weights, save_weights
from pipeline.models.sasrec import SASRec, SASRecConfig
from pipeline.runtime.checkpoint import fingerprint, load_progress, save_progress
from pipeline.runtime.errors import UserInputError
from pipeline.runtime.progress import bar

FORMAT = "mmgenrec.sasrec/1"


def training_rows(train_items: list[list[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-item targets from the training part only, right-padded.

    Each user's last `max_len + 1` training items give inputs seq[:-1] and targets seq[1:]
    (item indices shifted by +1; 0 = padding / no target). Users with one training item add
    no row. Returns (U, max_len) int64 inputs and targets.
    """
    rows = [seq[-(max_len + 1):] for seq in train_items if len(seq) >= 2]
    inputs = torch.zeros(len(rows), max_len, dtype=torch.long)
    targets = torch.zeros(len(rows), max_len, dtype=torch.long)
    for r, seq in enumerate(rows):
        seq = torch.tensor(seq, dtype=torch.long) + 1
        inputs[r, :len(seq) - 1] = seq[:-1]
        targets[r, :len(seq) - 1] = seq[1:]
    return inputs, targets


def eval_rows(histories: list[list[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (U, max_len) histories (+1 shifted) and the (U,) index of each last item."""
    inputs = torch.zeros(len(histories), max_len, dtype=torch.long)
    last = torch.zeros(len(histories), dtype=torch.long)
    for r, seq in enumerate(histories):
        seq = seq[-max_len:]
        inputs[r, :len(seq)] = torch.tensor(seq, dtype=torch.long) + 1
        last[r] = len(seq) - 1
    return inputs, last


@torch.no_grad()
def evaluate(model: SASRec, histories: list[list[int]], targets: np.ndarray, mask_history: bool,
             device: torch.device, prefix: str, batch_size: int = 512) -> dict[str, float]:
    """Full-ranking HR/NDCG of `targets` given `histories` (catalogue item indices)."""
    model.eval()
    inputs, last = eval_rows(histories, model.cfg.max_len)
    ranks = []
    for start in range(0, len(histories), batch_size):
        stop = start + batch_size
        width = int(last[start:stop].max()) + 1     # right padding: trim the empty tail
        seq = inputs[start:stop, :width].to(device)
        states = model(seq)[torch.arange(len(seq), device=device), last[start:stop].to(device)]
        scores = model.logits(states)
        tgt = torch.tensor(targets[start:start + batch_size], device=device)
        if mask_history:
            scores = mask_seen_scores(scores, seq - 1, tgt)
        ranks.append(target_ranks(scores, tgt).cpu().numpy())
    return ranking_metrics(np.concatenate(ranks), prefix)


def position_loss(model: SASRec, states: torch.Tensor, targets: torch.Tensor,
                  cfg: SASRecParams, generator: torch.Generator) -> torch.Tensor:
    """Mean cross-entropy of (P,) catalogue-item targets given their (P, H) states.

    `full`: softmax over every item. `sampled`: over the target and `cfg.negatives` items
    drawn uniformly (with replacement) for the whole batch; a drawn item that is a position's
    own target is masked out of that position's softmax. Uniform draws need no log-Q
    correction (it is the same for every candidate)."""
    if cfg.loss == SASRecLoss.FULL:
        return torch.nn.functional.cross_entropy(model.logits(states), targets)
    negatives = torch.randint(model.cfg.n_items, (cfg.negatives,), generator=generator)
    negatives = negatives.to(states.device)
    rows = model.item_emb                                                # row i + 1: item i
    positive = (states * rows(targets + 1)).sum(dim=1, keepdim=True)    # (P, 1)
    scores = states @ rows(negatives + 1).T                              # (P, N)
    scores = scores.masked_fill(negatives[None, :] == targets[:, None], -torch.inf)
    logits = torch.cat([positive, scores], dim=1)
    return torch.nn.functional.cross_entropy(logits, torch.zeros_like(targets))


def optimizers(model: SASRec, cfg: SASRecParams) -> dict[str, torch.optim.Optimizer]:
    """The optimizers of `cfg.item_updates`, by checkpoint name. `dense`: AdamW over every
    parameter. `sparse`: the item table switches to sparse gradients (only the rows a batch
    looks up) and gets torch's lazy SparseAdam, so rows a step does not touch, and their Adam
    moments, stay as they are; AdamW keeps the rest. Under the full softmax every row is
    touched, so the config allows `sparse` only with the sampled one."""
    if cfg.item_updates == ItemUpdates.DENSE:
        return {"optimizer": torch.optim.AdamW(model.parameters(), lr=cfg.lr,
                                               weight_decay=cfg.weight_decay)}
    model.item_emb.sparse = True
    rest = [p for name, p in model.named_parameters() if not name.startswith("item_emb.")]
    return {"optimizer": torch.optim.AdamW(rest, lr=cfg.lr, weight_decay=cfg.weight_decay),
            "item_optimizer": torch.optim.SparseAdam([model.item_emb.weight], lr=cfg.lr)}


def train_batch(model: SASRec, steppers: dict[str, torch.optim.Optimizer],
                inputs: torch.Tensor, targets: torch.Tensor, batch: torch.Tensor,
                cfg: SASRecParams, generator: torch.Generator,
                device: torch.device) -> tuple[float, int]:
    """One step of every optimizer of `optimizers` on rows `batch` of the (U, max_len)
    training rows; returns the loss and the number of target positions it covered."""
    x, y = inputs[batch], targets[batch]
    width = int((y > 0).sum(dim=1).max())     # right padding: trim the empty tail
    x, y = x[:, :width].to(device), y[:, :width].to(device)
    real = y > 0
    loss = position_loss(model, model(x)[real], y[real] - 1, cfg, generator)
    for optimizer in steppers.values():
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for optimizer in steppers.values():
        optimizer.step()
    return loss.item(), int(real.sum())


def fit(model: SASRec, train: list[list[int]], valid_item: np.ndarray, cfg: SASRecParams,
        device: torch.device, seed: int, work: Path) -> tuple[dict, dict]:
    """Train with early stopping on validation NDCG@10 (every user's, or `cfg.valid_users`
    sampled users'); checkpoint every epoch for resume."""
    inputs, targets = training_rows(train, cfg.max_len)
    rows = evaluated_rows(len(train), cfg.valid_users, seed)
    valid_hist, valid_target = [train[r] for r in rows], valid_item[rows]
    if len(inputs) == 0:
        raise UserInputError("no user has two or more training items: nothing to train SASRec "
                             "on (raise ingest.user_k or use a larger dataset)")
    lengths = (targets > 0).sum(dim=1)
    steppers = optimizers(model, cfg)
    generator = torch.Generator().manual_seed(seed)
    ckpt = work / fingerprint(dataclasses.asdict(cfg), seed, len(train), int(inputs.sum()),
                              int(targets.sum())) / "last.pt"
    state = {"epoch": 0, "best_ndcg": -1.0, "best_epoch": 0, "best_state": None}
    stateful = {"model": model} | steppers
    if ckpt.is_file():
        state = load_progress(ckpt, stateful, generator)
        print(f"sasrec: resuming after epoch {state['epoch']} from {ckpt}")
    while state["epoch"] < cfg.epochs and state["epoch"] - state["best_epoch"] < cfg.patience:
        model.train()
        total = 0.0
        for batch in bar(length_buckets(lengths, cfg.batch_size, generator),
                         desc=f"sasrec epoch {state['epoch'] + 1}", unit="batch", leave=False):
            loss, _ = train_batch(model, steppers, inputs, targets, batch, cfg, generator,
                                  device)
            total += loss * len(batch)
        state["epoch"] += 1
        ndcg = evaluate(model, valid_hist, valid_target, cfg.mask_history, device,
                        "valid")["valid/ndcg_10"]
        print(f"sasrec: epoch {state['epoch']} loss {total / len(inputs):.4f} valid ndcg@10 {ndcg:.4f}")
        if ndcg > state["best_ndcg"]:
            state |= {"best_ndcg": ndcg, "best_epoch": state["epoch"],
                      "best_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        save_progress(ckpt, state, stateful, generator)
    best_state = state["best_state"]
    ckpt.unlink(missing_ok=True)
    return best_state, {"best_epoch": state["best_epoch"], "best_ndcg": state["best_ndcg"],
                        "epochs_run": state["epoch"]}


def save(folder: Path, state: dict, model_cfg: SASRecConfig, metrics: dict) -> None:
    """`model.safetensors` (weights) + `model.json` (config, test metrics) in `folder`."""
    save_weights(folder, "model", FORMAT, state, {"config": dataclasses.asdict(model_cfg),
                                                  "metrics": metrics})


def load(folder: Path, device: torch.device) -> SASRec:
    """The `sasrec` stage's model, the baseline on the same users."""
    tensors, meta = load_weights(folder, "model", FORMAT, "dvc repro sasrec")
    model = SASRec(SASRecConfig(**meta["config"]))
    model.load_state_dict(tensors)
    return model.to(device)
