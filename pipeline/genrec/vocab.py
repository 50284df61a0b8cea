"""The token vocabulary: 0 = pad (also the decoder start), 1 = eos, one prompt token per
task, then one disjoint range per (modality, level) of the semantic IDs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.models.genrec import PAD

MODALITY_ORDER = ("text", "image", "collab")


@dataclass(frozen=True)
class Vocab:
    prompts: dict[str, int]
    offsets: dict[str, tuple[int, ...]]   # modality -> token id of code 0 of every level
    sizes: dict[str, tuple[int, ...]]     # modality -> K_l of every level
    size: int


def build_vocab(sizes: dict[str, tuple[int, ...]], tasks: list[str]) -> Vocab:
    cursor = 2
    prompts = {}
    for name in tasks:
        prompts[name], cursor = cursor, cursor + 1
    offsets = {}
    for m in sorted(sizes, key=MODALITY_ORDER.index):
        offsets[m] = tuple(cursor + sum(sizes[m][:l]) for l in range(len(sizes[m])))
        cursor += sum(sizes[m])
    return Vocab(prompts, offsets, dict(sizes), cursor)


def token_table(item_ids: np.ndarray, codes: np.ndarray, n_items: int, offsets) -> torch.Tensor:
    """(n_items + 1, L) token ids of every item's codes; PAD rows for items without codes and
    for the sentinel row n_items that pads histories."""
    table = np.full((n_items + 1, codes.shape[1]), PAD, dtype=np.int64)
    table[item_ids] = codes + np.asarray(offsets)[None, :]
    return torch.from_numpy(table)
