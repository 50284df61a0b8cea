"""Tasks, samples and encoder batches of the generative recommender.

Each task reads the history in some modalities and targets one modality's codes of the next
item (or of the same item for the explicit alignment tasks item2image / image2item). A sample
is a (history, target item) pair; `encode_history` turns a batch of histories into the
encoder's tokens for one task.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from pipeline.models.genrec import PAD, Batch


class Task(NamedTuple):
    name: str
    sources: tuple[str, ...]   # modalities of the history items, in token order
    target: str                # modality whose codes are generated
    sequential: bool           # history -> next item; else item -> the same item


def task(name: str, modalities: tuple[str, ...] = ("text", "image", "collab")) -> Task:
    """The named task: MQL4GRec/MACRec's six, `tiger_<m>` and `mscgrec`."""
    fixed = {
        "seqrec": Task("seqrec", ("text",), "text", True),
        "seqimage": Task("seqimage", ("image",), "image", True),
        "item2image": Task("item2image", ("text",), "image", False),
        "image2item": Task("image2item", ("image",), "text", False),
        "seqitem2image": Task("seqitem2image", ("text",), "image", True),
        "seqimage2item": Task("seqimage2item", ("image",), "text", True),
        "mscgrec": Task("mscgrec", tuple(modalities), "collab", True),
    }
    if name.startswith("tiger_"):
        m = name.removeprefix("tiger_")
        return Task(name, (m,), m, True)
    return fixed[name]


class Samples(NamedTuple):
    history: torch.Tensor   # (S, H) item ids, left-padded with the sentinel n_items
    target: torch.Tensor    # (S,) item ids


def sequential_samples(sequences: list[list[int]], max_history: int, n_items: int) -> Samples:
    """Every prefix of every training sequence: history (the last max_history items before
    position t) -> the item at t, for t >= 1."""
    hist, tgt = [], []
    for seq in sequences:
        for t in range(1, len(seq)):
            hist.append(_left_pad(seq[:t], max_history, n_items))
            tgt.append(seq[t])
    return Samples(torch.tensor(hist, dtype=torch.long).reshape(-1, max_history),
                   torch.tensor(tgt, dtype=torch.long))


def history_samples(histories: list[list[int]], targets: list[int], max_history: int,
                    n_items: int) -> Samples:
    """One sample per user: its (validation or test) history -> target."""
    rows = [_left_pad(h, max_history, n_items) for h in histories]
    return Samples(torch.tensor(rows, dtype=torch.long).reshape(-1, max_history),
                   torch.tensor(targets, dtype=torch.long))


def _left_pad(history: list[int], max_history: int, n_items: int) -> list[int]:
    """The last `max_history` items, left-padded to that length with the sentinel n_items."""
    kept = list(history[-max_history:])
    return [n_items] * (max_history - len(kept)) + kept


def item_samples(items: np.ndarray) -> Samples:
    """One sample per item for the alignment tasks: the item itself is history and target."""
    items = torch.as_tensor(items, dtype=torch.long)
    return Samples(items[:, None], items)


def encode_history(history: torch.Tensor, t: Task, tables: dict[str, torch.Tensor],
                   prompt: int, n_items: int, drop: torch.Tensor | None = None) -> Batch:
    """Encoder inputs of a batch of histories (B, H) for task `t`: the history items' codes
    in the task's modality order, oldest first, then the task's prompt token.

    Columns holding only the sentinel are trimmed (dynamic padding). `drop` (B, n_sources)
    bool hides whole modalities of the history (training-time modality masking); tokens of
    codes an item lacks are PAD and masked too.
    """
    live = (history != n_items).any(dim=0)
    first = int(live.nonzero()[0]) if live.any() else history.shape[1] - 1
    history = history[:, first:]
    b, h = history.shape
    parts = [tables[m][history] for m in t.sources]                 # each (B, H, L_m)
    flat = torch.cat(parts, dim=2)                                   # (B, H, T)
    width = flat.shape[2]
    visible = flat != PAD
    if drop is not None:
        owner = torch.cat([torch.full((p.shape[2],), i) for i, p in enumerate(parts)])
        visible &= ~drop[:, None, owner.to(drop.device)]
    # The prompt goes last, after the right-aligned history: the relative positions between
    # real tokens (what T5's attention bias sees) then never depend on how far the batch is
    # padded, so a sample's output does not depend on the other samples in its batch.
    tokens = torch.cat([flat.reshape(b, h * width), torch.full((b, 1), prompt)], dim=1)
    mask = torch.cat([visible.reshape(b, h * width), torch.ones(b, 1, dtype=torch.bool)], dim=1)
    recency = (h - torch.arange(h)).repeat_interleave(width)          # most recent item = 1
    slot = torch.arange(1, width + 1).repeat(h)
    zero = torch.zeros(1, dtype=torch.long)
    return Batch(tokens, mask, torch.cat([recency, zero]).expand(b, -1),
                 torch.cat([slot, zero]).expand(b, -1))
