"""Tasks, samples and encoder batches of the generative recommender.

Each task reads the history in some modalities and targets one modality's codes of the next
item (or of the same item for the explicit alignment tasks item2image / image2item). A sample
is a (history, target item) pair; `encode_history` turns a batch of histories into the
encoder's tokens for one task.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
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


def sequential_samples(sequences, max_history: int, n_items: int) -> Samples:
    """Every prefix of every training sequence: history (the last max_history items before
    position t) -> the item at t, for t >= 1, in sequence then position order.

    sequences: a list column (Arrow, as read from sequences.parquet, or Python lists of ints),
    read as its flat values and offsets: no Python object per interaction, and the (S, H)
    history is the only large array (8 x H bytes a sample)."""
    offsets, values = _flat(sequences)
    lengths = np.diff(offsets)
    first = np.zeros(len(values), dtype=bool)
    first[offsets[:-1][lengths > 0]] = True
    positions = np.flatnonzero(~first)                       # every t >= 1, flat
    starts = np.repeat(offsets[:-1], lengths)[positions]     # its sequence's first position
    history = left_windows(values, starts, positions, max_history, n_items)
    return Samples(torch.from_numpy(history), torch.from_numpy(values[positions]))


def history_samples(histories, targets, max_history: int, n_items: int) -> Samples:
    """One sample per user: its (validation or test) history -> target. histories: a list
    column as for `sequential_samples`; targets: (U,) item ids."""
    offsets, values = _flat(histories)
    rows = left_windows(values, offsets[:-1], offsets[1:], max_history, n_items)
    return Samples(torch.from_numpy(rows), torch.as_tensor(np.asarray(targets, dtype=np.int64)))


def left_windows(values: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int,
                 pad: int, chunk: int = 1 << 20) -> np.ndarray:
    """(R, width) int64: row r holds values[max(starts[r], ends[r] - width):ends[r]],
    left-padded with `pad`; built `chunk` rows at a time, so the temporaries stay near
    chunk x width whatever R is."""
    out = np.full((len(ends), width), pad, dtype=np.int64)
    if len(values) == 0:
        return out
    shifts = np.arange(-width, 0, dtype=np.int64)
    for lo in range(0, len(ends), chunk):
        index = ends[lo:lo + chunk, None] + shifts
        inside = index >= starts[lo:lo + chunk, None]
        out[lo:lo + chunk] = np.where(inside, values[np.maximum(index, 0)], pad)
    return out


def _flat(lists) -> tuple[np.ndarray, np.ndarray]:
    """(U + 1,) int64 offsets from 0 and (T,) int64 values of a list column."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    if not isinstance(lists, (pa.ListArray, pa.LargeListArray)):
        lists = pa.array(lists, pa.list_(pa.int64()))
    offsets = lists.offsets.to_numpy().astype(np.int64)
    values = lists.values.to_numpy(zero_copy_only=False).astype(np.int64)
    return offsets - offsets[0], values[offsets[0]:offsets[-1]]


def item_samples(items: np.ndarray) -> Samples:
    """One sample per item for the alignment tasks: the item itself is history and target."""
    items = torch.as_tensor(items, dtype=torch.long)
    return Samples(items[:, None], items)


def encode_history(history: torch.Tensor, t: Task, tables: dict[str, torch.Tensor],
                   prompt: int, n_items: int, drop: torch.Tensor | None = None,
                   width: int | None = None) -> Batch:
    """Encoder inputs of a batch of histories (B, H) for task `t`: the history items' codes
    in the task's modality order, oldest first, then the task's prompt token. Built on the
    device of `history` (the tables must be there too).

    Only the last `width` history columns are kept (dynamic padding): the caller knows the
    batch's longest history from lengths it holds on the host, so the shape is set without
    reading the device. None trims the columns holding only the sentinel by looking (a
    host synchronisation: for tests and one-off calls, not for a training step). `drop`
    (B, n_sources) bool hides whole modalities of the history (training-time modality
    masking); tokens of codes an item lacks are PAD and masked too.
    """
    if width is None:
        live = (history != n_items).any(dim=0)
        width = history.shape[1] - int(live.nonzero()[0]) if live.any() else 1
    history = history[:, history.shape[1] - max(1, min(width, history.shape[1])):]
    device = history.device
    b, h = history.shape
    parts = [tables[m][history] for m in t.sources]                 # each (B, H, L_m)
    flat = torch.cat(parts, dim=2)                                   # (B, H, T)
    span = flat.shape[2]
    visible = flat != PAD
    if drop is not None:
        owner = torch.cat([torch.full((p.shape[2],), i, device=device)
                           for i, p in enumerate(parts)])
        visible &= ~drop[:, None, owner]
    # The prompt goes last, after the right-aligned history: the relative positions between
    # real tokens (what T5's attention bias sees) then never depend on how far the batch is
    # padded, so a sample's output does not depend on the other samples in its batch.
    tokens = torch.cat([flat.reshape(b, h * span),
                        torch.full((b, 1), prompt, device=device)], dim=1)
    mask = torch.cat([visible.reshape(b, h * span),
                      torch.ones(b, 1, dtype=torch.bool, device=device)], dim=1)
    recency = (h - torch.arange(h, device=device)).repeat_interleave(span)   # most recent = 1
    slot = torch.arange(1, span + 1, device=device).repeat(h)
    zero = torch.zeros(1, dtype=torch.long, device=device)
    return Batch(tokens, mask, torch.cat([recency, zero]).expand(b, -1),
                 torch.cat([slot, zero]).expand(b, -1))


def history_lengths(history: torch.Tensor, n_items: int) -> torch.Tensor:
    """(S,) int64: real (non-sentinel) items of each left-padded history (S, H)."""
    return (history != n_items).sum(dim=1)
