"""Contrastive losses of MACRec's cross-modal quantization (pure torch)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(a: torch.Tensor, b: torch.Tensor, tau: float,
             keep: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE: row i of a (B, D) and row i of b (B, D) are the positive pair,
    every other row of the other side a negative. Vectors are L2-normalised here. `keep`
    (B,) bool, when given, leaves the other rows out entirely (as anchors and as negatives)
    without changing any shape; with fewer than one kept row the result is NaN-free 0."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / tau
    target = torch.arange(len(a), device=a.device)
    if keep is None:
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    weight = keep.float() / keep.sum().clamp(min=1)

    def side(x: torch.Tensor) -> torch.Tensor:
        # Dropped columns get -inf; dropped rows become all-zero (finite, so no NaN reaches
        # the gradient through the masked-out rows) and weigh 0.
        x = torch.where(keep[:, None], x.masked_fill(~keep[None, :], -torch.inf), 0.0)
        return ((torch.logsumexp(x, dim=1) - x.diagonal()) * weight).sum()
    return 0.5 * (side(logits) + side(logits.T))


def pseudo_label_nce(x: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE on x (B, D) whose positives are the other in-batch rows with the same label.

    MACRec §3.2: residuals of one modality, positives chosen by the *other* modality's k-means
    pseudo-labels (`labels`, (B,) int). For anchor i, with P(i) its positives:
    -log(sum_{p in P(i)} exp(s_ip / tau) / sum_{j != i} exp(s_ij / tau)), averaged over
    anchors that have a positive; 0 when none has.
    """
    sim, positive, has_positive = _label_similarities(x, labels, tau)
    if not has_positive.any():
        return x.sum() * 0.0
    log_pos = torch.logsumexp(sim.masked_fill(~positive, -torch.inf), dim=1)
    return (torch.logsumexp(sim, dim=1) - log_pos)[has_positive].mean()


def one_positive_nce(x: torch.Tensor, labels: torch.Tensor, tau: float,
                     generator: torch.Generator) -> torch.Tensor:
    """`pseudo_label_nce` with one positive per anchor: for anchor i, one row p drawn
    uniformly (from `generator`, a CPU generator) among the other in-batch rows with its label;
    -log(exp(s_ip / tau) / sum_{j != i} exp(s_ij / tau)), averaged over anchors that have a
    positive; 0 when none has. The other same-label rows stay in the denominator."""
    sim, positive, has_positive = _label_similarities(x, labels, tau)
    if not has_positive.any():
        return x.sum() * 0.0
    draw = torch.rand(positive.shape, generator=generator).to(x.device)
    chosen = draw.masked_fill(~positive, -1.0).argmax(dim=1)
    log_pos = sim.gather(1, chosen[:, None]).squeeze(1)
    return (torch.logsumexp(sim, dim=1) - log_pos)[has_positive].mean()


def _label_similarities(x: torch.Tensor, labels: torch.Tensor, tau: float):
    """Cosine similarities / tau of the rows of x (B, D) with -inf on the diagonal, the (B, B)
    same-label mask without the diagonal, and which rows (B,) have a same-label row."""
    sim = F.normalize(x, dim=-1) @ F.normalize(x, dim=-1).T / tau
    self_mask = torch.eye(len(x), dtype=torch.bool, device=x.device)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    return sim.masked_fill(self_mask, -torch.inf), positive, positive.any(dim=1)
