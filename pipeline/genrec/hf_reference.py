"""The reference decoder: HF `generate` beam search with a trie `prefix_allowed_tokens_fn`
(the MQL4GRec/MACRec code path). Slower by design: a Python callback per beam per step over a
dict of token prefixes. Kept to check the fast decoder against it (tests, bench/)."""
from __future__ import annotations

import torch
from transformers.modeling_outputs import BaseModelOutput

from pipeline.models.genrec import EOS, PAD
from pipeline.genrec.tasks import Task, encode_history
from pipeline.models.genrec import GenRec
from pipeline.genrec.catalog import Catalog


def prefix_table(catalog: Catalog, modality: str) -> tuple[dict, dict]:
    """(token prefix -> allowed next tokens, full token sequence -> item id) of a modality."""
    items = catalog.item_of_row[modality].tolist()
    sequences = catalog.tables[modality][items].tolist()
    allowed: dict[tuple[int, ...], set[int]] = {}
    for seq in sequences:
        for level in range(len(seq)):
            allowed.setdefault(tuple(seq[:level]), set()).add(seq[level])
    return ({k: sorted(v) for k, v in allowed.items()},
            {tuple(seq): item for seq, item in zip(sequences, items)})


@torch.no_grad()
def hf_decode(model: GenRec, catalog: Catalog, history: torch.Tensor, t: Task, beam: int,
              device: torch.device, table: tuple[dict, dict] | None = None):
    """Top-`beam` (item ids (B, W), log-probabilities (B, W)) of task `t` by HF beam search,
    scored with the full-vocabulary softmax (`normalize="full"` in the fast decoder)."""
    allowed, item_of = table or prefix_table(catalog, t.target)
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name],
                           catalog.n_items)
    batch = type(batch)(*(x.to(device) for x in batch))
    states = model.hf_encode(batch)
    levels = catalog.tables[t.target].shape[1]

    def allowed_tokens(_: int, prefix: torch.Tensor) -> list[int]:
        return allowed.get(tuple(prefix[1:].tolist()), [])

    out = model.t5.generate(
        encoder_outputs=BaseModelOutput(last_hidden_state=states), attention_mask=batch.mask,
        num_beams=beam, num_return_sequences=beam, max_new_tokens=levels, min_new_tokens=levels,
        do_sample=False, length_penalty=0.0, early_stopping=True,
        prefix_allowed_tokens_fn=allowed_tokens, decoder_start_token_id=PAD, pad_token_id=PAD,
        eos_token_id=EOS, output_scores=True, return_dict_in_generate=True)
    seqs = out.sequences[:, 1:].tolist()
    items = torch.tensor([item_of.get(tuple(s), -1) for s in seqs]).reshape(len(history), beam)
    return items, out.sequences_scores.float().cpu().reshape(len(history), beam)
