"""The generative recommender: a small T5 encoder-decoder over semantic-ID tokens, trained
from scratch, with MSCGRec's optional dual position information (item index and slot of
each history token) added to the encoder's input embeddings."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from pipeline.genrec_data import EOS, PAD, Batch


@dataclass(frozen=True)
class GenRecConfig:
    vocab_size: int
    d_model: int = 128
    d_ff: int = 1024
    layers: int = 4
    decoder_layers: int = 4
    heads: int = 6
    d_kv: int = 64
    dropout: float = 0.1
    max_items: int = 0      # > 0: learned embedding of each token's item recency (MSCGRec)
    max_slots: int = 0      # > 0: learned embedding of each token's slot inside its item


class GenRec(nn.Module):
    def __init__(self, cfg: GenRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.t5 = T5ForConditionalGeneration(T5Config(
            vocab_size=cfg.vocab_size, d_model=cfg.d_model, d_ff=cfg.d_ff, d_kv=cfg.d_kv,
            num_layers=cfg.layers, num_decoder_layers=cfg.decoder_layers, num_heads=cfg.heads,
            dropout_rate=cfg.dropout, feed_forward_proj="relu", tie_word_embeddings=False,
            pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD))
        self.item_pos = nn.Embedding(cfg.max_items + 1, cfg.d_model) if cfg.max_items else None
        self.slot = nn.Embedding(cfg.max_slots + 1, cfg.d_model) if cfg.max_slots else None

    def encode(self, batch: Batch) -> torch.Tensor:
        """(B, S) inputs -> (B, S, d_model) encoder states."""
        embeds = self.t5.shared(batch.tokens)
        if self.item_pos is not None:
            embeds = embeds + self.item_pos(batch.item_pos.clamp(max=self.cfg.max_items))
        if self.slot is not None:
            embeds = embeds + self.slot(batch.slot.clamp(max=self.cfg.max_slots))
        return self.t5.encoder(inputs_embeds=embeds, attention_mask=batch.mask).last_hidden_state

    def forward(self, batch: Batch, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits (B, L, V) of the target tokens `labels` (B, L), and the
        encoder states (B, S, d_model)."""
        states = self.encode(batch)
        decoder_input = torch.cat([torch.full_like(labels[:, :1], PAD), labels[:, :-1]], dim=1)
        out = self.t5(encoder_outputs=(states,), attention_mask=batch.mask,
                      decoder_input_ids=decoder_input, use_cache=False)
        return out.logits, states

    def cross_cache(self, states: torch.Tensor, beam: int) -> EncoderDecoderCache:
        """A decoder cache whose cross-attention keys and values are already filled: projected
        once per user from `states` (B, S, D), then repeated for the `beam` rows of each user
        (HF would project the B * beam repeated states)."""
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        b, s, _ = states.shape
        for i, block in enumerate(self.t5.decoder.block):
            attn = block.layer[1].EncDecAttention
            shape = (b, s, attn.n_heads, attn.key_value_proj_dim)
            keys = attn.k(states).view(shape).transpose(1, 2).repeat_interleave(beam, dim=0)
            values = attn.v(states).view(shape).transpose(1, 2).repeat_interleave(beam, dim=0)
            cache.cross_attention_cache.update(keys, values, i)
            cache.is_updated[i] = True
        return cache

    def decode_step(self, tokens: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """One KV-cached decoder step: tokens (R,) -> logits (R, V); state = (encoder states
        (R, S, D), encoder mask (R, S), cache: None or one from `cross_cache`)."""
        states, mask, cache = state
        out = self.t5(encoder_outputs=(states,), attention_mask=mask,
                      decoder_input_ids=tokens[:, None], past_key_values=cache, use_cache=True)
        return out.logits[:, -1], (states, mask, out.past_key_values)

    @staticmethod
    def reorder(state: tuple, rows: torch.Tensor) -> tuple:
        """Gather the decoder self-attention cache along the beams. The cross-attention
        cache (and the encoder states and mask) stay: beam search only moves beams within a
        user, and all of a user's rows hold the same encoder states, so gathering them would
        copy identical values (the largest tensors of the cache)."""
        states, mask, cache = state
        cache.self_attention_cache.reorder_cache(rows)
        return states, mask, cache
