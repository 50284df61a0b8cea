"""SASRec (Kang & McAuley, 2018) trained with full-softmax cross-entropy over the catalogue.

Item index 0 is padding; catalogue item i is index i + 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SASRecConfig:
    n_items: int
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.5
    max_len: int = 50


class SASRec(nn.Module):
    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.n_items + 1, cfg.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(cfg.hidden, cfg.heads, dim_feedforward=cfg.hidden,
                                           dropout=cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.hidden)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """seq: (B, L) int64 item indices, right-padded with 0. Returns (B, L, H) states;
        the state at position t summarises items 0..t. With right padding the causal mask
        alone keeps padding out of every real position (a key-padding mask would make fully
        masked padding rows NaN, which then leaks through attention values)."""
        length = seq.shape[1]
        positions = torch.arange(length, device=seq.device)
        x = self.item_emb(seq) * self.cfg.hidden ** 0.5 + self.pos_emb(positions)
        x = self.dropout(x)
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool, device=seq.device), 1)
        x = self.encoder(x, mask=causal)
        return self.norm(x)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """(..., H) states -> (..., n_items) scores over catalogue items (padding excluded)."""
        return states @ self.item_emb.weight[1:].T

    def item_embeddings(self) -> torch.Tensor:
        """(n_items, H) the learned item table, row i = catalogue item i."""
        return self.item_emb.weight[1:].detach()
