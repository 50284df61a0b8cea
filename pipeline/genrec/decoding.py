"""Decoding: histories -> each decoded task's top-W items by trie-constrained beam search,
fused across tasks into one top-K list; and the ranking metrics of those lists."""
from __future__ import annotations

import numpy as np
import torch

from pipeline.config import TrainParams
from pipeline.core.beam import beam_search
from pipeline.core.metrics import ranking_metrics
from pipeline.genrec.catalog import Catalog
from pipeline.genrec.tasks import Samples, Task, encode_history, history_lengths
from pipeline.models.genrec import GenRec
from pipeline.runtime.progress import bar


@torch.no_grad()
def decode(model: GenRec, catalog: Catalog, history: torch.Tensor, t: Task, beam: int,
           normalize: str, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-`beam` (item ids (B, W), log-probabilities (B, W)) of task `t` for histories
    (B, H) on the catalogue's device, whose longest holds `width` items (None: found by
    looking); -1 / -inf where fewer than W items exist."""
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name],
                           catalog.n_items, width=width)
    trie = catalog.tries[t.target]
    out = beam_search(model.decode_step, model.reorder,
                      model.start_decoding(model.encode(batch), batch.mask), len(history),
                      trie, list(catalog.vocab.offsets[t.target]), beam, normalize=normalize)
    items = catalog.item_of_row[t.target][out.items.clamp(min=0)]
    return torch.where(out.items >= 0, items, -1), out.scores


def fuse(results: list[tuple[torch.Tensor, torch.Tensor]], n_items: int, rule: str,
         k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse several decoders' (items (B, W), scores (B, W)) into top-k (items, scores).

    `mean`: an item's score is the mean log-probability over the decoders that found it;
    `mean_bonus`: the same + 1 for items found by more than one decoder (MACRec's code);
    `max`: the best of its log-probabilities. Items found by none are never returned.
    Equal scores rank the lower item id first. The work is per found item (B x M for M =
    the decoders' W summed), not per catalogue item, so decoding costs the same at any
    catalogue size: each row's items are sorted so that equal ids sit together, and every
    run of equal ids is one candidate, its scores added in the decoders' order.
    """
    items, scores = torch.cat([r[0] for r in results], 1), torch.cat([r[1] for r in results], 1)
    valid = items >= 0
    key, order = torch.where(valid, items, n_items).sort(dim=1, stable=True)   # unfound last
    score = torch.where(valid, scores, 0.0).gather(1, order)
    found = valid.gather(1, order)
    first = torch.ones_like(found)
    first[:, 1:] = key[:, 1:] != key[:, :-1]
    run = first.cumsum(dim=1) - 1                                   # (B, M) candidate slot
    total = torch.zeros(score.shape, device=items.device).scatter_add_(1, run, score)
    count = torch.zeros(score.shape, device=items.device).scatter_add_(1, run, found.float())
    item = torch.full(key.shape, n_items, device=items.device).scatter_(
        1, torch.where(first, run, key.shape[1] - 1), torch.where(first, key, n_items))
    if rule == "max":
        fused = torch.full(score.shape, -torch.inf, device=items.device).scatter_reduce(
            1, run, torch.where(found, scores.gather(1, order), -torch.inf), "amax")
    else:
        fused = total / count.clamp(min=1)
        if rule == "mean_bonus":
            fused = fused + (count > 1).float()
    fused = torch.where((count > 0) & (item < n_items), fused, -torch.inf)
    top_scores, slots = fused.sort(dim=1, descending=True, stable=True)    # ties: lower id
    width = min(k, n_items, fused.shape[1])
    top_scores, slots = top_scores[:, :width], slots[:, :width]
    top_items = torch.where(top_scores > -torch.inf, item.gather(1, slots), -1)
    missing = min(k, n_items) - top_items.shape[1]           # fewer found than k: pad the lists
    return (torch.nn.functional.pad(top_items, (0, missing), value=-1),
            torch.nn.functional.pad(top_scores, (0, missing), value=-torch.inf))


def recommend_batch(model: GenRec, catalog: Catalog, history: torch.Tensor, beam: int,
                    normalize: str, fusion: str, k: int, width: int | None = None):
    """Fused top-k (items (B, k), scores (B, k)) of the method's decoded tasks, for
    histories (B, H) on the catalogue's device."""
    results = [decode(model, catalog, history, t, beam, normalize, width)
               for t in catalog.decode_tasks]
    return fuse(results, catalog.n_items, fusion, k)


def normalization(cfg: TrainParams) -> str:
    """Decoding scores the way the model was trained: over the trie's codes or the vocabulary."""
    return "trie" if cfg.constrained else "full"


@torch.no_grad()
def recommend_users(model: GenRec, catalog: Catalog, history: torch.Tensor, beam: int,
                    normalize: str, fusion: str, k: int, batch_size: int = 128,
                    progress: str | None = None):
    """Fused top-k (items (U, k), scores (U, k)) on the CPU of histories (U, H) (on the
    host), decoded with the model in eval mode on the catalogue's device (the model's).

    Users are decoded in batches of `batch_size` in order of history length, so a batch
    pads little (the encoder costs what its padded batch costs; a row's output does not
    depend on its batch, see `encode_history`); the histories cross to the device once and
    the lists come back once. -1 / -inf fill the lists past the catalogue's end. `progress`
    names a progress bar (none when None)."""
    model.eval()
    lengths = history_lengths(history, catalog.n_items)
    order = torch.argsort(lengths, stable=True)
    ends = lengths[order]
    on_device = history[order].to(catalog.device)
    tops, scores = [], []
    for start in bar(range(0, len(history), batch_size), desc=progress, unit="batch",
                     enabled=bool(progress), leave=False):
        stop = min(start + batch_size, len(history))
        top, score = recommend_batch(model, catalog, on_device[start:stop], beam, normalize,
                                     fusion, k, int(ends[stop - 1]))
        missing = k - top.shape[1]              # a catalogue smaller than k
        tops.append(torch.nn.functional.pad(top, (0, missing), value=-1))
        scores.append(torch.nn.functional.pad(score, (0, missing), value=-torch.inf))
    top, score = torch.cat(tops).cpu(), torch.cat(scores).cpu()
    back = torch.empty_like(order)
    back[order] = torch.arange(len(order))
    return top[back], score[back]


def evaluate_users(model: GenRec, catalog: Catalog, samples: Samples, cfg: TrainParams,
                   prefix: str, batch_size: int = 128):
    """HR@{1,5,10}, NDCG@{5,10} of fused top-10 lists, and the (U, 10) lists themselves."""
    top, _ = recommend_users(model, catalog, samples.history, cfg.beam, normalization(cfg),
                             cfg.fusion, 10, batch_size)
    return ranking_metrics(topk_ranks(top, samples.target), prefix), top


def topk_ranks(top: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """0-based rank of each target in its top-k list; k (a miss) when absent."""
    hit = top == targets[:, None]
    ranks = torch.where(hit.any(dim=1), hit.float().argmax(dim=1), top.shape[1])
    return ranks.cpu().numpy()
