"""The `train` stage on a tiny shop: every method, the constrained objective, the checkpoint."""
import copy
import json
import shutil
from pathlib import Path

import pytest
import torch

from pipeline import tables
from pipeline.config import params_from_dict
from pipeline.genrec_data import Task
from pipeline.genrec_training import target_loss
from pipeline.models.genrec import GenRec, GenRecConfig
from pipeline.recommender import build_catalog, evaluate_users, read_final_codes
from pipeline.stages import (
    image_features, ingest, quantize, resolve, sasrec, synthetic, text_features, train,
)
from pipeline.stages.train import valid_sample

TINY_T5 = dict(d_model=32, d_ff=64, layers=1, decoder_layers=1, heads=2, d_kv=16, dropout=0.0)


@pytest.fixture(scope="module")
def coded_data(real_params, tmp_path_factory):
    """Tiny shop with text, image and collab semantic IDs (rqkmeans, 3 x 8 codes), built
    once per module; returns (params mapping, folder holding its data/)."""
    root = tmp_path_factory.mktemp("coded")
    raw = copy.deepcopy(real_params)
    raw["synthetic"].update(n_items=120, n_users=150, min_len=5, max_len=12, image_size=16)
    raw["sasrec"].update(epochs=2, hidden=16)
    raw["quantize"].update(methods={"text": "rqkmeans", "image": "rqkmeans",
                                    "collab": "rqkmeans"}, levels=3, codebook_size=8)
    raw["train"].update(epochs=2, batch_size=64, valid_users=40, beam=10, model=TINY_T5)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        params = params_from_dict(raw)
        for stage in (synthetic, ingest, text_features, image_features, sasrec, quantize, resolve):
            stage.run(params)
    return raw, root


@pytest.fixture
def coded(coded_data, tmp_path, monkeypatch):
    raw, root = coded_data
    shutil.copytree(root / "data", tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    return copy.deepcopy(raw)


@pytest.mark.parametrize("method", ["mscgrec", "macrec", "tiger"])
def test_train_stage_writes_a_model_that_rebuilds_without_params(coded, method):
    coded["train"]["method"] = method
    params = params_from_dict(coded)
    metrics = train.run(params)
    assert metrics["epochs_run"] == 2 and 0.0 <= metrics["valid/hr_10"] <= 1.0
    assert metrics["train/samples"] > 0 and metrics["train/samples_per_s"] > 0
    history = json.loads(Path("plots/train/epochs.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    if method == "macrec":
        assert history[0]["train/implicit"] > 0
    saved = torch.load("data/model/model.pt", weights_only=False)
    model = GenRec(GenRecConfig(**saved["config"]))
    model.load_state_dict(saved["model"])
    assert (model.item_pos is not None) == (method == "mscgrec")
    catalog = build_catalog(saved["codes"], saved["n_items"], params.train)
    seqs = tables.read_table("data/ingest/sequences.parquet", tables.SEQUENCES)
    valid = valid_sample(catalog, seqs, params.train, params.seed)
    again, top = evaluate_users(model, catalog, valid, params.train, torch.device("cpu"), "valid")
    assert again["valid/hr_10"] == pytest.approx(metrics["valid/hr_10"])
    assert ((top >= 0) & (top < saved["n_items"])).all()           # real items only
    assert not any(Path("data/work/train").rglob("*.pt"))          # resume state cleaned up


def test_constrained_loss_ignores_tokens_the_trie_forbids(coded):
    params = params_from_dict(coded)
    catalog = build_catalog(read_final_codes(Path("data/codes/final"), params.train),
                            120, params.train)
    t = Task("mscgrec", ("text", "image", "collab"), "collab", True)
    targets = catalog.item_of_row["collab"][:5]
    logits = torch.zeros(5, 3, catalog.vocab.size)
    base_c = target_loss(logits, targets, t, catalog, constrained=True)
    base_f = target_loss(logits, targets, t, catalog, constrained=False)
    logits[:, :, 0] = 50.0                                       # pad: never allowed
    assert target_loss(logits, targets, t, catalog, constrained=True) == pytest.approx(float(base_c))
    assert target_loss(logits, targets, t, catalog, constrained=False) > base_f + 10


def test_missing_codes_for_the_method_is_a_clear_error(coded):
    coded["train"]["method"] = "macrec"
    for name in ("image.parquet", "image_dists.npy"):
        Path("data/codes/final", name).unlink(missing_ok=True)
    with pytest.raises(Exception, match="image semantic IDs"):
        train.run(params_from_dict(coded))


def test_kill_and_resume_ends_where_an_uninterrupted_run_ends(coded, monkeypatch):
    coded["train"].update(method="tiger", epochs=3, patience=5, model={**TINY_T5, "dropout": 0.1})
    params = params_from_dict(coded)
    train.run(params)
    straight = torch.load("data/model/model.pt", weights_only=False)["model"]
    real = train.evaluate_users
    calls = {"n": 0}

    def dies_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    Path("data/model/model.pt").unlink()
    monkeypatch.setattr(train, "evaluate_users", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train.run(params)
    assert len(list(Path("data/work/train").rglob("last.pt"))) == 1   # epoch 1 was saved
    monkeypatch.setattr(train, "evaluate_users", real)
    history = train.run(params)
    resumed = torch.load("data/model/model.pt", weights_only=False)["model"]
    assert history["epochs_run"] == 3
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_tokens_round_trip_to_items(coded):
    params = params_from_dict(coded)
    catalog = build_catalog(read_final_codes(Path("data/codes/final"), params.train), 120,
                            params.train)
    for modality, trie in catalog.tries.items():
        items = catalog.item_of_row[modality]
        tokens = catalog.tables[modality][items]
        offsets = torch.tensor(catalog.vocab.offsets[modality])
        node = torch.zeros(len(items), dtype=torch.long)
        for level in range(tokens.shape[1]):
            node = trie.child[level][node, tokens[:, level] - offsets[level]]
        assert torch.equal(catalog.item_of_row[modality][node], items)


def test_implicit_alignment_pairs_each_item_with_itself(coded):
    from pipeline.core.contrastive import info_nce
    from pipeline.genrec_data import Batch
    from pipeline.genrec_training import implicit_alignment

    coded["train"]["method"] = "macrec"
    params = params_from_dict(coded)
    catalog = build_catalog(read_final_codes(Path("data/codes/final"), params.train), 120,
                            params.train)
    model = GenRec(GenRecConfig(catalog.vocab.size, **TINY_T5)).eval()
    items = torch.tensor([7, 3, 3, 11, 5])
    loss = implicit_alignment(model, catalog, items, 0.1, torch.device("cpu"))
    pooled = []
    for modality in ("text", "image"):
        rows = [catalog.tables[modality][i] for i in (3, 5, 7, 11)]
        tokens = torch.stack(rows)
        zeros = torch.zeros_like(tokens)
        pooled.append(model.encode(Batch(tokens, torch.ones_like(tokens, dtype=torch.bool),
                                         zeros, zeros)).mean(1))
    assert torch.isclose(loss, info_nce(pooled[0], pooled[1], 0.1))
    assert not torch.isclose(loss, info_nce(pooled[0], pooled[1].flip(0), 0.1))
