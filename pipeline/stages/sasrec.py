"""DVC stage `sasrec`: SASRec trained with full-softmax cross-entropy on the training split.

Only `train_items` enter training: the validation target drives early stopping (NDCG@10) and
the test target is used once, for the reported baseline. Outputs: the checkpoint
(`<paths.sasrec>/model.pt`, config included) and the learned item table as the collaborative
modality (`<paths.features>/collab.parquet`). Training resumes from `<paths.work>/sasrec`
after an interruption.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline import tables
from pipeline.checkpoint import load_progress, save_progress
from pipeline.config import Params, SASRecParams
from pipeline.errors import UserInputError
from pipeline.core.batching import length_buckets
from pipeline.core.metrics import mask_seen_scores, ranking_metrics, target_ranks
from pipeline.features import fingerprint, load_precomputed, resolve_device, write_embeddings
from pipeline.models.sasrec import SASRec, SASRecConfig
from pipeline.runner import stage_main


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


def run(params: Params) -> dict:
    cfg = params.sasrec
    seqs = tables.read_table(Path(params.paths.ingest) / "sequences.parquet", tables.SEQUENCES)
    items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS)
    n_items = items.num_rows
    train = seqs.column("train_items").to_pylist()
    valid_item = seqs.column("valid_item").to_numpy()
    test_hist = [t + [v] for t, v in zip(train, valid_item.tolist())]
    device = resolve_device(cfg.device.value)
    model_cfg = SASRecConfig(n_items, cfg.hidden, cfg.layers, cfg.heads, cfg.dropout, cfg.max_len)
    model = SASRec(model_cfg).to(device)
    best_state, history = _fit(model, train, valid_item, cfg, device, params)
    model.load_state_dict(best_state)
    metrics = evaluate(model, test_hist, seqs.column("test_item").to_numpy(), cfg.mask_history,
                       device, "test")
    metrics |= {"best_epoch": history["best_epoch"], "epochs_run": history["epochs_run"],
                "valid/ndcg_10": history["best_ndcg"]}
    out = Path(params.paths.sasrec) / "model.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": best_state, "config": dataclasses.asdict(model_cfg),
                "metrics": metrics}, out.with_suffix(".tmp"))
    out.with_suffix(".tmp").replace(out)
    if cfg.precomputed is not None:
        vectors, status = load_precomputed(cfg.precomputed, cfg.precomputed_ids,
                                           items.column("original_id").to_pylist())
    else:
        vectors, status = model.item_embeddings().cpu().numpy(), ["ok"] * n_items
    write_embeddings(Path(params.paths.features) / "collab.parquet", vectors, status)
    return metrics


def _fit(model: SASRec, train: list[list[int]], valid_item: np.ndarray, cfg: SASRecParams,
         device: torch.device, params: Params) -> tuple[dict, dict]:
    """Train with early stopping on validation NDCG@10; checkpoint every epoch for resume."""
    inputs, targets = training_rows(train, cfg.max_len)
    if len(inputs) == 0:
        raise UserInputError("no user has two or more training items: nothing to train SASRec "
                             "on (raise ingest.user_k or use a larger dataset)")
    lengths = (targets > 0).sum(dim=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(params.seed)
    ckpt = Path(params.paths.work) / "sasrec" / fingerprint(
        dataclasses.asdict(cfg), params.seed, len(train), int(inputs.sum()), int(targets.sum())) / "last.pt"
    state = {"epoch": 0, "best_ndcg": -1.0, "best_epoch": 0, "best_state": None}
    stateful = {"model": model, "optimizer": optimizer}
    if ckpt.is_file():
        state = load_progress(ckpt, stateful, generator)
        print(f"sasrec: resuming after epoch {state['epoch']} from {ckpt}")
    while state["epoch"] < cfg.epochs and state["epoch"] - state["best_epoch"] < cfg.patience:
        model.train()
        total = 0.0
        for batch in tqdm(length_buckets(lengths, cfg.batch_size, generator),
                          desc=f"sasrec epoch {state['epoch'] + 1}", unit="batch", disable=None,
                          leave=False):
            x, y = inputs[batch], targets[batch]
            width = int((y > 0).sum(dim=1).max())     # right padding: trim the empty tail
            x, y = x[:, :width].to(device), y[:, :width].to(device)
            real = y > 0
            # Full softmax over the catalogue, at real target positions only.
            loss = torch.nn.functional.cross_entropy(model.logits(model(x)[real]), y[real] - 1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        state["epoch"] += 1
        ndcg = evaluate(model, train, valid_item, cfg.mask_history, device, "valid")["valid/ndcg_10"]
        print(f"sasrec: epoch {state['epoch']} loss {total / len(inputs):.4f} valid ndcg@10 {ndcg:.4f}")
        if ndcg > state["best_ndcg"]:
            state |= {"best_ndcg": ndcg, "best_epoch": state["epoch"],
                      "best_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        save_progress(ckpt, state, stateful, generator)
    best_state = state["best_state"]
    ckpt.unlink(missing_ok=True)
    return best_state, {"best_epoch": state["best_epoch"], "best_ndcg": state["best_ndcg"],
                        "epochs_run": state["epoch"]}


def main() -> int:
    return stage_main("sasrec", run)


if __name__ == "__main__":
    sys.exit(main())
