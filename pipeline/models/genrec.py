"""The generative recommender: a small T5 encoder-decoder over semantic-ID tokens, trained
from scratch, with MSCGRec's optional dual position information (item index and slot of
each history token) added to the encoder's input embeddings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

# Special tokens of the vocabulary (pipeline.genrec.vocab lays out the rest).
PAD, EOS = 0, 1      # PAD is also the decoder's start token


class Batch(NamedTuple):
    """Encoder inputs of a batch of histories."""
    tokens: torch.Tensor     # (B, S) encoder input ids
    mask: torch.Tensor       # (B, S) bool attention mask
    item_pos: torch.Tensor   # (B, S) 0 = prompt, j = j-th most recent history item
    slot: torch.Tensor       # (B, S) 0 = prompt, 1 + position of the token inside its item


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
    tie_head: bool = False  # output head shares the input embedding (then outputs scaled)
    max_items: int = 0      # > 0: learned embedding of each token's item recency (MSCGRec)
    max_slots: int = 0      # > 0: learned embedding of each token's slot inside its item


class DecoderState(NamedTuple):
    cross: tuple           # per layer (keys (B, H, d, S), values (B, H, S, d)), contiguous
    cross_bias: torch.Tensor   # (B, 1, 1, S) 0 for encoder tokens, dtype min for padding
    self_kv: tuple         # per layer (keys, values), each (B * W, H, t, d); () before step 1


class GenRec(nn.Module):
    def __init__(self, cfg: GenRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.t5 = T5ForConditionalGeneration(T5Config(
            vocab_size=cfg.vocab_size, d_model=cfg.d_model, d_ff=cfg.d_ff, d_kv=cfg.d_kv,
            num_layers=cfg.layers, num_decoder_layers=cfg.decoder_layers, num_heads=cfg.heads,
            dropout_rate=cfg.dropout, feed_forward_proj="relu", tie_word_embeddings=cfg.tie_head,
            pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD))
        _set_head(self.t5, cfg.tie_head)
        self.item_pos = nn.Embedding(cfg.max_items + 1, cfg.d_model) if cfg.max_items else None
        self.slot = nn.Embedding(cfg.max_slots + 1, cfg.d_model) if cfg.max_slots else None

    def embed(self, batch: Batch) -> torch.Tensor:
        """(B, S) inputs -> (B, S, d_model) encoder input embeddings."""
        embeds = self.t5.shared(batch.tokens)
        if self.item_pos is not None:
            embeds = embeds + self.item_pos(batch.item_pos.clamp(max=self.cfg.max_items))
        if self.slot is not None:
            embeds = embeds + self.slot(batch.slot.clamp(max=self.cfg.max_slots))
        return embeds

    def hf_encode(self, batch: Batch) -> torch.Tensor:
        """(B, S) inputs -> (B, S, d_model) states through HF's T5 encoder module: the
        reference that `encode` is tested against (and the HF decoding path's encoder)."""
        return self.t5.encoder(inputs_embeds=self.embed(batch),
                               attention_mask=batch.mask).last_hidden_state

    def encode(self, batch: Batch) -> torch.Tensor:
        """(B, S) inputs -> (B, S, d_model) encoder states: what `hf_encode` computes, with the
        same dropout sites when training, from the HF module's weights. HF rebuilds and copies
        the (B, H, S, S) position-bias-plus-mask tensor in every layer; here it is built once
        per batch, and on the CPU the dropout masks come from `_dropout` (torch's CPU
        Bernoulli draws cost more than the encoder's matrix products at this model size)."""
        encoder = self.t5.encoder
        p = encoder.dropout.p if self.training else 0.0
        x = _dropout(self.embed(batch), p)
        b, s, _ = x.shape
        first = encoder.block[0].layer[0].SelfAttention
        bias = first.compute_bias(s, s).to(x.dtype)                          # (1, H, S, S)
        bias = bias.masked_fill(~batch.mask.bool()[:, None, None, :], torch.finfo(x.dtype).min)
        for block in encoder.block:
            layer = block.layer[0]
            sa = layer.SelfAttention
            h = layer.layer_norm(x)
            q, k, v = (proj(h).view(b, s, sa.n_heads, sa.key_value_proj_dim).transpose(1, 2)
                       for proj in (sa.q, sa.k, sa.v))
            out = _mix(q, k, v, bias, p)
            x = x + _dropout(sa.o(out.transpose(1, 2).reshape(b, s, -1)), p)
            ff = block.layer[1]
            dense = ff.DenseReluDense
            h = _dropout(dense.act(dense.wi(ff.layer_norm(x))), p)
            x = x + _dropout(dense.wo(h), p)
        return _dropout(encoder.final_layer_norm(x), p)

    def forward(self, batch: Batch, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits (B, L, V) of the target tokens `labels` (B, L), and the
        encoder states (B, S, d_model)."""
        states = self.encode(batch)
        decoder_input = torch.cat([torch.full_like(labels[:, :1], PAD), labels[:, :-1]], dim=1)
        return self.teacher_forced(decoder_input, states, batch.mask), states

    def teacher_forced(self, tokens: torch.Tensor, states: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
        """Decoder logits (B, T, V) of the decoder inputs (B, T) over encoder states (B, S, D)
        with mask (B, S): what HF's T5 decoder computes (tested against it), with the same
        dropout sites, from its weights. HF's own forward builds its attention masks with a
        data-dependent check (`mask.all()`) that makes every training step wait for a GPU;
        here both biases are built from shapes alone."""
        decoder = self.t5.decoder
        p = decoder.dropout.p if self.training else 0.0
        x = _dropout(decoder.embed_tokens(tokens), p)
        b, t, _ = x.shape
        s = states.shape[1]
        lowest = torch.finfo(x.dtype).min
        first = decoder.block[0].layer[0].SelfAttention
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        self_bias = first.compute_bias(t, t).to(x.dtype).masked_fill(~causal, lowest)
        cross_bias = torch.zeros(b, 1, 1, s, dtype=x.dtype, device=x.device).masked_fill(
            ~mask.bool()[:, None, None, :], lowest)
        for block in decoder.block:
            layer = block.layer[0]
            x = x + _dropout(_attention(layer.SelfAttention, layer.layer_norm(x), None,
                                        self_bias, p), p)
            layer = block.layer[1]
            x = x + _dropout(_attention(layer.EncDecAttention, layer.layer_norm(x), states,
                                        cross_bias, p), p)
            ff = block.layer[2]
            dense = ff.DenseReluDense
            h = _dropout(dense.act(dense.wi(ff.layer_norm(x))), p)
            x = x + _dropout(dense.wo(h), p)
        x = _dropout(decoder.final_layer_norm(x), p)
        if self.t5.config.scale_decoder_outputs:
            x = x * self.cfg.d_model ** -0.5
        return self.t5.lm_head(x)

    def start_decoding(self, states: torch.Tensor, mask: torch.Tensor) -> DecoderState:
        """Decoder state of one row per user from encoder states (B, S, D) and mask (B, S):
        every layer's cross-attention keys and values projected once per user (never
        repeated per beam), and an empty self-attention cache."""
        b, s, _ = states.shape
        cross = []
        for block in self.t5.decoder.block:
            attn = block.layer[1].EncDecAttention
            shape = (b, s, attn.n_heads, attn.key_value_proj_dim)
            keys = attn.k(states).view(shape).permute(0, 2, 3, 1).contiguous()    # (B, H, d, S)
            cross.append((keys, attn.v(states).view(shape).transpose(1, 2).contiguous()))
        bias = torch.zeros(b, 1, 1, s, dtype=states.dtype, device=states.device)
        bias = bias.masked_fill(~mask.bool()[:, None, None, :], torch.finfo(states.dtype).min)
        return DecoderState(tuple(cross), bias, ())

    def decode_step(self, tokens: torch.Tensor, state: DecoderState
                    ) -> tuple[torch.Tensor, DecoderState]:
        """One KV-cached step of T5's decoder (eval mode: no dropout), computed from the HF
        module's weights: tokens (B * W,) -> logits (B * W, V), W rows (beams) per user.

        HF's own step attends each of the W beams of a user to its own copy of the user's
        encoder keys and values; here the W queries of a user share one copy, a (B, H, W, S)
        attention, which is where beam search spends its time."""
        decoder = self.t5.decoder
        rows = len(tokens)
        w = rows // state.cross_bias.shape[0]
        t = state.self_kv[0][0].shape[2] if state.self_kv else 0
        x = decoder.embed_tokens(tokens)                                     # (R, D)
        first = decoder.block[0].layer[0].SelfAttention
        bias = first.compute_bias(1, t + 1, past_seen_tokens=t)              # (1, H, 1, t+1)
        past = []
        for block, (ck, cv), kv in zip(decoder.block, state.cross,
                                       state.self_kv or (None,) * len(decoder.block)):
            sa, layer = block.layer[0].SelfAttention, block.layer[0]
            h = layer.layer_norm(x)
            q, k, v = (proj(h).view(rows, sa.n_heads, 1, sa.key_value_proj_dim)
                       for proj in (sa.q, sa.k, sa.v))
            if kv is not None:
                k, v = torch.cat([kv[0], k], dim=2), torch.cat([kv[1], v], dim=2)
            past.append((k, v))
            x = x + sa.o(_attend(q, k.transpose(2, 3), v, bias).reshape(rows, -1))
            ca, layer = block.layer[1].EncDecAttention, block.layer[1]
            q = ca.q(layer.layer_norm(x)).view(rows // w, w, ca.n_heads, ca.key_value_proj_dim)
            out = _attend(q.transpose(1, 2), ck, cv, state.cross_bias)          # (B, H, W, d)
            x = x + ca.o(out.transpose(1, 2).reshape(rows, -1))
            ff = block.layer[2]
            x = x + ff.DenseReluDense(ff.layer_norm(x))
        x = decoder.final_layer_norm(x)
        if self.t5.config.scale_decoder_outputs:
            x = x * self.cfg.d_model ** -0.5
        return self.t5.lm_head(x), state._replace(self_kv=tuple(past))

    @staticmethod
    def reorder(state: DecoderState, rows: torch.Tensor) -> DecoderState:
        """Gather the self-attention cache rows (B * W,) along the beams (the first call
        expands one row per user to W). The cross-attention keys and values stay: beam
        search only moves beams within a user."""
        return state._replace(self_kv=tuple((k[rows], v[rows]) for k, v in state.self_kv))


def _set_head(t5: T5ForConditionalGeneration, tied: bool) -> None:
    """Make the output head tied to the input embedding or not, as asked. transformers 5's
    T5Config sets tie_word_embeddings=True whatever it is given (it reads the argument only to
    choose the output scaling), so the untied head is made here: its own matrix, initialised
    as HF initialises an untied T5 head (N(0, 1)). The output scaling follows T5's convention:
    a tied head scales the decoder output by d_model**-0.5, an untied one does not."""
    t5.config.tie_word_embeddings = tied
    t5.config.scale_decoder_outputs = tied
    if tied:
        t5.lm_head.weight = t5.shared.weight
    elif t5.lm_head.weight.data_ptr() == t5.shared.weight.data_ptr():
        factor = t5.config.initializer_factor
        t5.lm_head.weight = nn.Parameter(torch.randn_like(t5.shared.weight) * factor)


def _dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout of x with drop probability p (0: x itself), randomness from torch's
    global generator. On the CPU the mask comes from 16-bit slices of 64-bit random integers
    (a quarter of the generator calls of a per-element Bernoulli draw), so p is rounded to a
    multiple of 1/65536 and the kept values are scaled by the inverse of the rounded keep
    probability: an exact dropout with p within 1e-5 of the configured one."""
    if p == 0:
        return x
    if x.device.type != "cpu":
        return nn.functional.dropout(x, p, training=True)
    threshold = round(p * 65536)
    words = torch.randint(-2 ** 63, 2 ** 63 - 1, ((x.numel() + 3) // 4,))
    keep = words.view(torch.int16)[:x.numel()].view(x.shape) >= threshold - 32768
    return torch.where(keep, x * (65536 / (65536 - threshold)), 0.0)


def _attention(attn: nn.Module, h: torch.Tensor, memory: torch.Tensor | None,
               bias: torch.Tensor, p: float) -> torch.Tensor:
    """One T5 attention module over h (B, T, D): self-attention when `memory` is None, else
    attention to memory (B, S, D); returns the output projection (B, T, D)."""
    b, t, _ = h.shape
    src = h if memory is None else memory

    def heads(x: torch.Tensor) -> torch.Tensor:
        return x.view(b, -1, attn.n_heads, attn.key_value_proj_dim).transpose(1, 2)
    q, k, v = heads(attn.q(h)), heads(attn.k(src)), heads(attn.v(src))
    out = _mix(q, k, v, bias, p)                                          # (B, H, T, d)
    return attn.o(out.transpose(1, 2).reshape(b, t, -1))


def _mix(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
         p: float) -> torch.Tensor:
    """Softmax(q k^T + bias) v over (B, H, T, d) heads, unscaled (T5's init folds the
    1/sqrt(d) into the weights), the weights dropped out with rate p: torch's fused attention
    (on a GPU it never materialises the (B, H, T, S) weights, dropout included), except for
    dropout on the CPU, where `_dropout`'s cheaper masks win."""
    if p > 0 and q.device.type == "cpu":
        return _attend(q, k.transpose(2, 3), v, bias, p)
    return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                                      dropout_p=p, scale=1.0)


def _attend(q: torch.Tensor, keys_t: torch.Tensor, v: torch.Tensor,
            bias: torch.Tensor, p: float = 0.0) -> torch.Tensor:
    """Softmax(q k^T + bias) v, with k^T given as `keys_t` (..., d, S), without scaling as T5
    does (its init folds the 1/sqrt(d)); the attention weights dropped out with rate p."""
    weights = torch.softmax((q @ keys_t + bias).float(), dim=-1).type_as(q)
    return _dropout(weights, p) @ v
