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
    items, cfg, device)`, recorded per epoch as `train/<name>`; skipped when the weight is 0
    or the catalogue lacks a modality it `needs`."""
    name: str
    weight: Callable[[TrainParams], float]
    loss: Callable[..., torch.Tensor]
    needs: tuple[str, ...] = ()


def implicit_alignment(model: GenRec, catalog: Catalog, items: torch.Tensor, tau: float,
                       device: torch.device) -> torch.Tensor:
    """MACRec §3.3 implicit alignment: symmetric InfoNCE between the mean-pooled encoder
    states of each item's text IDs and of its image IDs; row i of both sides is item i
    (the public code pairs rows wrongly). Each distinct batch item that has both kinds of
    codes counts once; 0 when fewer than two do.

    Fixed shapes, so a GPU step never waits for it: every batch row is encoded, and rows
    that repeat an earlier item or lack a modality's codes are masked out of the loss."""
    keep = _first_occurrence(items) & catalog.has_codes("text", items) \
        & catalog.has_codes("image", items)
    pooled = []
    for modality in ("text", "image"):
        tokens = catalog.tables[modality][items]                           # (B, L) ID tokens
        zeros = torch.zeros_like(tokens)
        mask = torch.ones_like(tokens, dtype=torch.bool)
        states = model.encode(Batch(tokens, mask, zeros, zeros))
        pooled.append(states.mean(dim=1))
    loss = info_nce(pooled[0], pooled[1], tau, keep)
    return torch.where(keep.sum() >= 2, loss, torch.zeros((), device=loss.device))


def _first_occurrence(items: torch.Tensor) -> torch.Tensor:
    """(B,) bool: whether each entry of items (B,) is the first of its value."""
    order = torch.argsort(items, stable=True)
    ranked = items[order]
    first = torch.ones_like(ranked, dtype=torch.bool)
    first[1:] = ranked[1:] != ranked[:-1]
    return torch.empty_like(first).scatter_(0, order, first)


IMPLICIT = ExtraLoss(
    "implicit", lambda cfg: cfg.implicit_weight,
    lambda model, catalog, items, cfg, device: implicit_alignment(model, catalog, items,
                                                                  cfg.implicit_tau, device),
    needs=("text", "image"))
