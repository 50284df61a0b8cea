"""Length-bucketed batching shared by the sequence models (SASRec, the generative model)."""
from __future__ import annotations

import torch


def length_buckets(lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                   window: int = 32) -> list[torch.Tensor]:
    """Shuffled batches of row indices whose rows have similar lengths.

    Rows are shuffled, sorted by length inside windows of `window` batches, cut into batches,
    and the batches shuffled: each batch pads only to its own longest row, while every epoch
    sees a different random composition (a global sort would give nearly the same batches
    every epoch).
    """
    order = torch.randperm(len(lengths), generator=generator)
    batches = []
    for chunk in order.split(batch_size * window):
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches.extend(chunk.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
