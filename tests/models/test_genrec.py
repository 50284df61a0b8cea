"""GenRec's own paths compute what HF's T5 modules compute on the same weights: its encoder
pass (training and inference), users encoded in chunks of similar length, and KV-cached
decoder steps that share one copy of each user's cross-attention keys among the beams."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from pipeline.genrec import decoding
from pipeline.config import params_from_dict
from pipeline.models.genrec import PAD
from pipeline.genrec.tasks import encode_history, sequential_samples
from pipeline.models import genrec
from pipeline.models.genrec import GenRec, _dropout
from pipeline.genrec.catalog import build_catalog
from pipeline.genrec.fit import model_config


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


def test_encoder_equals_the_hf_encoder(setup):
    model, catalog, history = setup
    t = catalog.decode_tasks[0]
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name], 40)
    assert not batch.mask.all()                                  # padding is exercised
    with torch.no_grad():
        ours, hf = model.encode(batch), model.hf_encode(batch)
    torch.testing.assert_close(ours[batch.mask], hf[batch.mask], atol=1e-5, rtol=1e-5)


def test_training_encoder_without_dropout_has_the_hf_encoder_gradients(setup):
    model, catalog, history = setup
    assert model.cfg.dropout == 0
    model.train()
    t = catalog.decode_tasks[0]
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name], 40)
    weights = torch.randn(*batch.mask.shape, model.cfg.d_model) * batch.mask[..., None]
    grads = []
    for encode in (model.encode, model.hf_encode):
        model.zero_grad()
        (encode(batch) * weights).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert any("relative_attention_bias" in n for n in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4)


def test_training_encoder_applies_dropout(setup):
    model, catalog, history = setup
    model = GenRec(replace(model.cfg, dropout=0.1)).eval()
    t = catalog.decode_tasks[0]
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name], 40)
    with torch.no_grad():
        plain = model.encode(batch)
        model.train()
        torch.manual_seed(3)
        first = model.encode(batch)
        torch.manual_seed(3)
        again = model.encode(batch)
        other = model.encode(batch)
    assert torch.equal(first, again)                             # seeded like nn.Dropout
    assert not torch.allclose(first, plain) and not torch.allclose(first, other)


def test_training_encoder_drops_out_where_the_hf_encoder_does(setup, monkeypatch):
    """Same sites, same order, same shapes and rates: embeddings, attention weights, attention
    output, feed-forward hidden, feed-forward output, final states."""
    model, catalog, history = setup
    model = GenRec(replace(model.cfg, dropout=0.1)).train()
    model.t5.set_attn_implementation("eager")        # HF's attention dropout as a visible call
    t = catalog.decode_tasks[0]
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name], 40)
    ours, hf = [], []
    own, functional = genrec._dropout, torch.nn.functional.dropout
    monkeypatch.setattr(genrec, "_dropout",
                        lambda x, p: ours.append((x.shape, p)) or own(x, p))
    monkeypatch.setattr(torch.nn.functional, "dropout",
                        lambda x, p=0.5, training=True, inplace=False:
                        hf.append((x.shape, p)) or functional(x, p, training, inplace))
    model.encode(batch)
    model.hf_encode(batch)
    assert len(ours) == 2 + 4 * model.cfg.layers
    assert ours == hf


def test_cpu_dropout_drops_at_rate_p_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(1_000_000)
    out = _dropout(x, 0.1)
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.002
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 65536 / (65536 - 6554)))
    assert abs(out.mean().item() - 1.0) < 0.005
    assert _dropout(x, 0.0) is x
    blocks = (_dropout(torch.ones(4096), 0.5) == 0).view(4, 1024).float().mean(dim=1)
    assert ((blocks - 0.5).abs() < 0.06).all()                  # every 16-bit slice is random


def test_users_decoded_in_length_order_get_what_each_alone_gets(setup):
    """recommend_users batches users by history length and puts the lists back in the
    users' order: each row equals decoding that user on its own."""
    model, catalog, history = setup
    model.eval()
    top, scores = decoding.recommend_users(model, catalog, history, 5, "trie", "mean", 5,
                                           batch_size=3)
    for user in range(len(history)):
        alone, alone_scores = decoding.recommend_batch(model, catalog, history[user:user + 1],
                                                       5, "trie", "mean", 5)
        assert torch.equal(top[user], alone[0])
        torch.testing.assert_close(scores[user], alone_scores[0], atol=1e-5, rtol=1e-5)


def test_teacher_forced_decoder_equals_the_hf_decoder(setup):
    model, catalog, history = setup
    t = catalog.decode_tasks[0]
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name], 40)
    tokens = torch.randint(1, model.cfg.vocab_size, (len(history), 4))
    with torch.no_grad():
        states = model.encode(batch)
        ours = model.teacher_forced(tokens, states, batch.mask)
        hf = model.t5(encoder_outputs=(states,), attention_mask=batch.mask,
                      decoder_input_ids=tokens, use_cache=False).logits
    torch.testing.assert_close(ours, hf, atol=1e-5, rtol=1e-5)


def test_cached_steps_equal_teacher_forced_hf_logits(setup):
    model, catalog, history = setup
    t = catalog.decode_tasks[0]
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name], 40)
    users, beams, steps = len(history), 3, 4
    labels = torch.randint(1, model.cfg.vocab_size, (users * beams, steps))
    with torch.no_grad():
        states = model.hf_encode(batch)
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


@pytest.mark.parametrize("tied", [False, True])
def test_tie_head_takes_effect_and_survives_a_training_step_and_reload(setup, tied):
    """transformers 5 forces T5's head to be tied whatever the config says: the param must
    win, through an optimizer step and a rebuild from the state dict."""
    model, catalog, history = setup
    model = GenRec(replace(model.cfg, tie_head=tied)).train()
    t5 = model.t5
    assert (t5.lm_head.weight.data_ptr() == t5.shared.weight.data_ptr()) is tied
    assert t5.config.scale_decoder_outputs is tied
    t = catalog.decode_tasks[0]
    batch = encode_history(history, t, catalog.tables, catalog.vocab.prompts[t.name], 40)
    labels = catalog.tables[t.target][torch.arange(len(history))]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(batch, labels)[0].logsumexp(-1).mean().backward()
    optimizer.step()
    assert torch.equal(t5.lm_head.weight, t5.shared.weight) is tied
    reloaded = GenRec(model.cfg)
    reloaded.load_state_dict(model.state_dict())
    for name, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], value), name
    n_matrices = len({p.data_ptr() for p in reloaded.parameters()})
    assert n_matrices == len(list(model.parameters()))
    model.eval(), reloaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(batch, labels)[0], model(batch, labels)[0])
