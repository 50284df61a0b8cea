"""SASRec: no leakage of held-out targets, learns a planted sequential pattern (with the full
or a sampled softmax), validates on a sample when asked, resumes."""
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from pipeline.io import tables
from pipeline.config import ConfigError, params_from_dict
from pipeline.core.metrics import ranking_metrics
from pipeline.io.embeddings import read_embeddings
from pipeline.baselines import sasrec as sasrec_baseline
from pipeline.models.sasrec import SASRec, SASRecConfig
from pipeline.stages import sasrec


def _write_dataset(folder: Path, sequences: list[list[int]], n_items: int) -> None:
    """items + sequences tables for users whose full (chronological) histories are given."""
    folder.mkdir(parents=True)
    items = {name: [] for name in tables.ITEMS.names}
    for i in range(n_items):
        for name, value in (("item_id", i), ("original_id", f"I{i}"), ("title", f"t{i}"),
                            ("description", ""), ("brand", ""), ("categories", []),
                            ("text", f"t{i}"), ("image_ref", None), ("image_status", "absent")):
            items[name].append(value)
    tables.write_table(pa.table(items), folder / "items.parquet", tables.ITEMS)
    rows = {"user_id": list(range(len(sequences))),
            "train_items": [s[:-2] for s in sequences], "valid_history": [s[:-2] for s in sequences],
            "valid_item": [s[-2] for s in sequences], "test_history": [s[:-1] for s in sequences],
            "test_item": [s[-1] for s in sequences]}
    tables.write_table(pa.table(rows), folder / "sequences.parquet", tables.SEQUENCES)


@pytest.fixture
def planted(params_dict):
    """100 items; every user walks i -> i+1 (mod 100) from a random start: a pure sequential
    pattern that popularity cannot see."""
    rng = np.random.default_rng(0)
    n_items = 100
    seqs = [[(start + k) % n_items for k in range(8)] for start in rng.integers(0, n_items, 600)]
    _write_dataset(Path(params_dict["paths"]["ingest"]), seqs, n_items)
    params_dict["sasrec"].update(hidden=32, dropout=0.1, max_len=10, epochs=40, patience=5,
                                 batch_size=64, lr=0.005)
    params_dict["train"]["max_history"] = 10       # params.yaml requires the same history
    return params_dict, seqs, n_items


def test_training_rows_never_contain_held_out_targets(planted):
    _, seqs, _ = planted
    train = [s[:-2] for s in seqs]
    inputs, targets = sasrec_baseline.training_rows(train, max_len=10)
    for row, seq in enumerate(seqs):
        seen = set((inputs[row][inputs[row] > 0] - 1).tolist()) | set(
            (targets[row][targets[row] > 0] - 1).tolist())
        assert seen == set(seq[:-2])
        assert seq[-1] not in seen and seq[-2] not in seen


def test_learns_planted_pattern_far_above_popularity(planted):
    params_dict, seqs, n_items = planted
    metrics = sasrec.run(params_from_dict(params_dict))
    counts = np.bincount([i for s in seqs for i in s[:-2]], minlength=n_items)
    order = np.argsort(-counts, kind="stable")
    rank_of = np.empty(n_items, dtype=int)
    rank_of[order] = np.arange(n_items)
    popularity = ranking_metrics(rank_of[[s[-1] for s in seqs]], "pop")
    assert popularity["pop/hr_10"] < 0.25
    assert metrics["test/hr_10"] > 0.8
    vectors, present = read_embeddings(Path(params_dict["paths"]["features"]) / "collab.parquet")
    assert vectors.shape == (n_items, 32) and present.all()
    model = sasrec_baseline.load(Path(params_dict["paths"]["sasrec"]), torch.device("cpu"))
    assert model.cfg.n_items == n_items and model.cfg.hidden == 32


@pytest.mark.parametrize("updates", [{}, {"loss": "sampled", "negatives": 16,
                                          "item_updates": "sparse"}])
def test_interrupted_training_resumes_to_the_same_model(planted, monkeypatch, capsys, updates):
    params_dict, _, _ = planted
    params_dict["sasrec"].update(epochs=4, patience=10, **updates)
    params = params_from_dict(params_dict)
    torch.manual_seed(params.seed)
    reference = sasrec.run(params)

    real_evaluate, calls = sasrec_baseline.evaluate, []

    def crash_on_third_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(sasrec_baseline, "evaluate", crash_on_third_epoch)
    torch.manual_seed(params.seed)
    with pytest.raises(KeyboardInterrupt):
        sasrec.run(params)
    monkeypatch.setattr(sasrec_baseline, "evaluate", real_evaluate)
    torch.manual_seed(params.seed)
    capsys.readouterr()
    assert sasrec.run(params) == reference
    out = capsys.readouterr().out
    assert "resuming after epoch 2" in out and "epoch 1 loss" not in out


def test_sampled_softmax_learns_the_pattern_without_scoring_the_catalogue(planted, monkeypatch):
    params_dict, _, _ = planted
    params_dict["sasrec"].update(loss="sampled", negatives=16)
    real_logits, training_calls = SASRec.logits, []

    def logits(self, states):
        if self.training:                  # evaluation ranks every item; training must not
            training_calls.append(states.shape)
        return real_logits(self, states)

    monkeypatch.setattr(SASRec, "logits", logits)
    metrics = sasrec.run(params_from_dict(params_dict))
    assert training_calls == []
    assert metrics["test/hr_10"] > 0.8


def test_sparse_item_updates_leave_untouched_rows_still_and_learn_the_pattern(planted):
    """Under `item_updates: sparse` a step moves only the item rows its batch looks up: a row
    the first step moved and the second did not touch stays where the first left it (dense
    AdamW keeps moving it on its momentum); the sampled softmax still learns the pattern."""
    params_dict, seqs, n_items = planted
    params_dict["sasrec"].update(loss="sampled", negatives=8)
    inputs, targets = sasrec_baseline.training_rows([s[:-2] for s in seqs], max_len=10)
    first, second = torch.arange(0, 4), torch.arange(4, 8)
    moved_on_second = {}
    for updates in ("dense", "sparse"):
        cfg = params_from_dict(params_dict | {"sasrec": params_dict["sasrec"]
                                              | {"item_updates": updates}}).sasrec
        torch.manual_seed(0)
        model = SASRec(SASRecConfig(n_items, 32, 1, 2, 0.0, 10))
        steppers = sasrec_baseline.optimizers(model, cfg)
        generator = torch.Generator().manual_seed(0)
        seen = []
        for batch in (first, second):
            sasrec_baseline.train_batch(model, steppers, inputs, targets, batch, cfg,
                                        generator, torch.device("cpu"))
            assert model.item_emb.weight.grad.is_sparse == (updates == "sparse")
            rows = model.item_emb.weight.grad.coalesce().indices()[0] if updates == "sparse" \
                else model.item_emb.weight.grad.abs().sum(dim=1).nonzero()[:, 0]
            seen.append((set(rows.tolist()), model.item_emb.weight.detach().clone()))
        (rows_1, after_1), (rows_2, after_2) = seen
        only_first = sorted(rows_1 - rows_2)
        assert only_first, "the two batches must touch different rows"
        moved_on_second[updates] = (after_2[only_first] - after_1[only_first]).abs().max()
    assert moved_on_second["sparse"] == 0 and moved_on_second["dense"] > 0
    params_dict["sasrec"]["item_updates"] = "sparse"
    assert sasrec.run(params_from_dict(params_dict))["test/hr_10"] > 0.8


@pytest.mark.parametrize("change, needs", [({"loss": "full"}, "sasrec.loss: sampled"),
                                           ({"weight_decay": 0.1}, "weight_decay: 0")])
def test_sparse_item_updates_refuse_what_would_touch_every_row(params_dict, change, needs):
    params_dict["sasrec"].update({"loss": "sampled", "item_updates": "sparse"} | change)
    with pytest.raises(ConfigError, match="sasrec.item_updates") as error:
        params_from_dict(params_dict)
    assert needs in str(error.value)


def test_early_stopping_ranks_a_seeded_sample_of_users_when_asked(planted, monkeypatch):
    params_dict, seqs, _ = planted
    params_dict["sasrec"].update(valid_users=50, epochs=2)
    real_evaluate, seen = sasrec_baseline.evaluate, []

    def evaluate(model, histories, targets, *args):
        seen.append((args[-1], [tuple(h) for h in histories], list(targets)))
        return real_evaluate(model, histories, targets, *args)

    monkeypatch.setattr(sasrec_baseline, "evaluate", evaluate)
    monkeypatch.setattr(sasrec, "evaluate", evaluate)
    sasrec.run(params_from_dict(params_dict))
    valid = [s for s in seen if s[0] == "valid"]
    test = [s for s in seen if s[0] == "test"]
    assert len(valid) == 2 and valid[0][1:] == valid[1][1:]          # the same users each epoch
    assert len(valid[0][1]) == 50 and len(test[0][1]) == len(seqs)  # the test ranks everyone
    pairs = {(tuple(s[:-2]), s[-2]) for s in seqs}
    assert all((h, int(t)) in pairs for h, t in zip(valid[0][1], valid[0][2]))
