"""GenRec's decoding path — its encoder pass built for inference, users encoded in chunks of
similar length, KV-cached decoder steps that share one copy of each user's cross-attention
keys among the beams — computes what HF's T5 modules compute on the same weights."""
import numpy as np
import pytest
import torch

from pipeline import recommender
from pipeline.config import params_from_dict
from pipeline.genrec_data import PAD, encode_history, sequential_samples
from pipeline.models.genrec import GenRec
from pipeline.recommender import build_catalog, encode_by_length
from pipeline.stages.train import model_config


@pytest.fixture
def setup(real_params, tiny_t5):
    """A random two-layer mscgrec model (item-recency and slot embeddings on), its catalogue,
    and 8 histories of 1 to 8 items."""
    two_layers = {**tiny_t5, "layers": 2, "decoder_layers": 2}
    raw = {**real_params, "train": {**real_params["train"], "method": "mscgrec",
                                    "model": two_layers}}
    cfg = params_from_dict(raw).train
    rng = np.random.default_rng(1)
    items = np.arange(40)
    codes = {m: (items, rng.permutation(64)[:40, None] // [16, 4, 1] % 4)
             for m in ("text", "image", "collab")}
    catalog = build_catalog(codes, 40, cfg)
    torch.manual_seed(1)
    model = GenRec(model_config(cfg, catalog)).eval()
    samples = sequential_samples([rng.integers(0, 40, 9).tolist()], 20, 40)
    return model, catalog, samples.history[torch.randperm(len(samples.target))]


def test_encoder_for_decoding_equals_the_hf_encoder(setup):
    model, catalog, history = setup
    t = catalog.decode_tasks[0]
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name], 40)
    assert not batch.mask.all()                                  # padding is exercised
    with torch.no_grad():
        ours, hf = model.encode_for_decoding(batch), model.encode(batch)
    torch.testing.assert_close(ours[batch.mask], hf[batch.mask], atol=1e-5, rtol=1e-5)


def test_chunks_of_similar_length_give_the_states_of_one_padded_batch(setup, monkeypatch):
    model, catalog, history = setup
    monkeypatch.setattr(recommender, "ENCODE_CHUNK", 3)
    t = catalog.decode_tasks[0]
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name], 40)
    with torch.no_grad():
        states, mask = encode_by_length(model, catalog, history, t, torch.device("cpu"))
        whole = model.encode(batch)
    assert torch.equal(mask, batch.mask)
    torch.testing.assert_close(states[mask], whole[mask], atol=1e-5, rtol=1e-5)


def test_cached_steps_equal_teacher_forced_hf_logits(setup):
    model, catalog, history = setup
    t = catalog.decode_tasks[0]
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name], 40)
    users, beams, steps = len(history), 3, 4
    labels = torch.randint(1, model.cfg.vocab_size, (users * beams, steps))
    with torch.no_grad():
        states = model.encode(batch)
        hf = model.t5(encoder_outputs=(states.repeat_interleave(beams, 0),),
                      attention_mask=batch.mask.repeat_interleave(beams, 0),
                      decoder_input_ids=torch.cat([torch.full((users * beams, 1), PAD),
                                                   labels[:, :-1]], 1)).logits
        state = model.start_decoding(states, batch.mask)
        logits, state = model.decode_step(torch.full((users,), PAD), state)   # one row per user
        torch.testing.assert_close(logits, hf[::beams, 0], atol=1e-5, rtol=1e-5)
        state = model.reorder(state, torch.arange(users).repeat_interleave(beams))
        for step in range(1, steps):
            logits, state = model.decode_step(labels[:, step - 1], state)
            torch.testing.assert_close(logits, hf[:, step], atol=1e-5, rtol=1e-5)
