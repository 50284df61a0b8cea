"""MACRec's implicit alignment loss (§3.3), the extra loss term of the `macrec` method."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import torch

from pipeline.config import TrainParams
from pipeline.core.contrastive import info_nce
from pipeline.models.genrec import Batch, GenRec

if TYPE_CHECKING:
    from pipeline.genrec.catalog import Catalog


class ExtraLoss(NamedTuple):
    """A loss term a method adds to each step: `weight(cfg) * loss(model, catalog, target
    items, cfg, device)`, recorded per epoch as `train/<name>`; skipped when the weight is 0."""
    name: str
    weight: Callable[[TrainParams], float]
    loss: Callable[..., torch.Tensor]


def implicit_alignment(model: GenRec, catalog: Catalog, items: torch.Tensor, tau: float,
                       device: torch.device) -> torch.Tensor:
    """MACRec §3.3 implicit alignment: symmetric InfoNCE between the mean-pooled encoder
    states of each item's text IDs and of its image IDs; row i of both sides is item i
    (the public code pairs rows wrongly)."""
    items = items.unique()
    items = items[catalog.has_codes("text", items) & catalog.has_codes("image", items)]
    if len(items) < 2:
        return torch.zeros((), device=device)
    pooled = []
    for modality in ("text", "image"):
        tokens = catalog.tables[modality][items].to(device)              # (B, L) ID tokens
        zeros = torch.zeros_like(tokens)
        states = model.encode(Batch(tokens, torch.ones_like(tokens, dtype=torch.bool), zeros, zeros))
        pooled.append(states.mean(dim=1))
    return info_nce(pooled[0], pooled[1], tau)


IMPLICIT = ExtraLoss(
    "implicit", lambda cfg: cfg.implicit_weight,
    lambda model, catalog, items, cfg, device: implicit_alignment(model, catalog, items,
                                                                  cfg.implicit_tau, device))
