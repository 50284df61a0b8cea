"""The training-method registry: every method is registered, and a new one is one function
plus one registry line."""
import numpy as np
import pytest
import torch

from pipeline.config import TrainMethod, params_from_dict
from pipeline.genrec.catalog import build_catalog
from pipeline.genrec.decoding import recommend_batch
from pipeline.genrec.fit import model_config, training_samples
from pipeline.genrec.methods import METHODS, Method
from pipeline.genrec.tasks import Task
from pipeline.genrec.training import Step, train_step
from pipeline.models.genrec import GenRec

N_ITEMS = 40


def _setup(real_params, tiny_t5, **train):
    raw = {**real_params, "train": {**real_params["train"], "model": tiny_t5, **train}}
    cfg = params_from_dict(raw).train
    rng = np.random.default_rng(0)
    items = np.arange(N_ITEMS)
    codes = {m: (items, rng.permutation(64)[:N_ITEMS, None] // [16, 4, 1] % 4)
             for m in ("text", "image", "collab")}
    catalog = build_catalog(codes, N_ITEMS, cfg)
    torch.manual_seed(0)
    model = GenRec(model_config(cfg, catalog))
    sequences = [rng.integers(0, N_ITEMS, 8).tolist() for _ in range(6)]
    return cfg, catalog, model, training_samples(catalog, sequences, cfg.max_history)


def test_every_train_method_is_registered():
    assert set(METHODS) == set(TrainMethod)


def test_a_method_added_by_one_registry_line_trains_and_decodes(real_params, tiny_t5,
                                                                 monkeypatch):
    def mmtext_tasks(cfg):
        one = [Task("mmtext", ("text", "image"), "text", True)]
        return one, one

    monkeypatch.setitem(METHODS, TrainMethod.TIGER,
                        Method(mmtext_tasks, modality_dropout=True, dual_positions=True))
    cfg, catalog, model, samples = _setup(real_params, tiny_t5, method="tiger",
                                          modality_dropout=0.5)
    assert [t.name for t in catalog.train_tasks] == ["mmtext"] and "mmtext" in catalog.vocab.prompts
    assert model.cfg.max_items == cfg.max_history and model.cfg.max_slots == 6   # 3 + 3 codes
    step = Step(catalog.train_tasks[0], torch.arange(len(samples["mmtext"].target)))
    terms = train_step(model, catalog, cfg, step, samples["mmtext"],
                       torch.Generator().manual_seed(0), torch.device("cpu"))
    terms["objective"].backward()
    assert torch.isfinite(terms["loss"]) and model.t5.shared.weight.grad.abs().sum() > 0
    top, _ = recommend_batch(model.eval(), catalog, samples["mmtext"].history[:4], 5, "trie",
                             "mean", 5)
    assert ((top >= 0) & (top < N_ITEMS)).all()


@pytest.mark.parametrize("method, extra", [("macrec", True), ("mql4grec", False)])
def test_only_macrec_adds_the_weighted_implicit_alignment_term(real_params, tiny_t5, method,
                                                                extra):
    losses = {}
    for weight in (0.0, 0.5):
        cfg, catalog, model, samples = _setup(real_params, tiny_t5, method=method,
                                              tasks=["seqrec", "seqimage"], implicit_weight=weight)
        step = Step(catalog.train_tasks[0], torch.arange(16))
        terms = train_step(model, catalog, cfg, step, samples["seqrec"],
                           torch.Generator().manual_seed(0), torch.device("cpu"))
        losses[weight] = {k: float(v) for k, v in terms.items()}
    assert ("implicit" in losses[0.5]) is extra and "implicit" not in losses[0.0]
    added = losses[0.5]["loss"] - losses[0.0]["loss"]
    assert added == pytest.approx(0.5 * losses[0.5]["implicit"] if extra else 0.0, abs=1e-5)
    if extra:
        assert losses[0.5]["implicit"] > 0
