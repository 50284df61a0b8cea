"""The `train` stage on a tiny shop: every method, the constrained objective, the checkpoint."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch.optim.swa_utils import AveragedModel

from pipeline.config import params_from_dict
from pipeline.genrec import fit as genrec_fit
from pipeline.genrec.catalog import build_catalog, read_final_codes
from pipeline.genrec.checkpoint import load_model
from pipeline.genrec.decoding import evaluate_users
from pipeline.genrec.fit import model_config, training_samples, valid_sample
from pipeline.genrec.tasks import Task
from pipeline.genrec.training import target_loss
from pipeline.io import tables
from pipeline.models.genrec import GenRec, GenRecConfig
from pipeline.stages import train

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("method", ["mscgrec", "macrec", "tiger"])
def test_train_stage_writes_a_model_that_rebuilds_without_params(coded, method):
    coded["train"]["method"] = method
    params = params_from_dict(coded)
    metrics = train.run(params)
    assert metrics["epochs_run"] == 2 and 0.0 <= metrics["valid/hr_10"] <= 1.0
    assert metrics["train/samples"] > 0 and metrics["timing/samples_per_s"] > 0
    assert len(metrics["timing/epoch_minutes"]) == 2
    history = json.loads(Path("plots/train/epochs.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert 0 < history[0]["steps"] < history[1]["steps"] == 2 * history[0]["steps"]
    assert 0 < metrics["timing/epoch_minutes"][0] < metrics["timing/epoch_minutes"][1]
    assert "train_minutes" not in history[0]          # the curve holds results only
    if method == "macrec":
        assert history[0]["train/implicit"] > 0
    loaded = load_model(Path("data/model"), torch.device("cpu"))
    model, catalog = loaded.model, loaded.catalog
    assert (model.item_pos is not None) == (method == "mscgrec")
    assert loaded.cfg == params.train
    seqs = tables.read_table("data/ingest/sequences.parquet", tables.SEQUENCES)
    valid = valid_sample(catalog, seqs, params.train, params.seed)
    again, top = evaluate_users(model, catalog, valid, params.train, "valid")
    assert again["valid/hr_10"] == pytest.approx(metrics["valid/hr_10"])
    assert ((top >= 0) & (top < catalog.n_items)).all()           # real items only
    assert not any(Path("data/work/train").rglob("*.pt"))          # resume state cleaned up


def test_constrained_loss_ignores_tokens_the_trie_forbids(coded):
    params = params_from_dict(coded)
    catalog = build_catalog(read_final_codes(Path("data/codes/final"), params.train),
                            120, params.train)
    t = Task("mscgrec", ("text", "image", "collab"), "collab", True)
    targets = catalog.item_of_row["collab"][:5]
    labels = catalog.tables["collab"][targets]
    logits = torch.zeros(5, 3, catalog.vocab.size)
    base_c = target_loss(logits, labels, targets, t, catalog, constrained=True)
    base_f = target_loss(logits, labels, targets, t, catalog, constrained=False)
    logits[:, :, 0] = 50.0                                       # pad: never allowed
    assert target_loss(logits, labels, targets, t, catalog, constrained=True) == pytest.approx(float(base_c))
    assert target_loss(logits, labels, targets, t, catalog, constrained=False) > base_f + 10


def test_validation_takes_every_user_unless_a_sample_is_asked_for(coded):
    seqs = tables.read_table("data/ingest/sequences.parquet", tables.SEQUENCES)
    n_items = tables.read_table("data/ingest/items.parquet", tables.ITEMS).num_rows
    for users, expected in ((0, len(seqs)), (25, 25), (10 ** 6, len(seqs))):
        coded["train"]["valid_users"] = users
        params = params_from_dict(coded)
        codes = read_final_codes(Path("data/codes/final"), params.train)
        catalog = build_catalog(codes, n_items, params.train)
        assert len(valid_sample(catalog, seqs, params.train, params.seed).target) == expected


def test_missing_codes_for_the_method_is_a_clear_error(coded):
    coded["train"]["method"] = "macrec"
    for name in ("image.parquet", "image_dists.npy"):
        Path("data/codes/final", name).unlink(missing_ok=True)
    with pytest.raises(Exception, match="image semantic IDs"):
        train.run(params_from_dict(coded))


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_kill_and_resume_ends_where_an_uninterrupted_run_ends(coded, monkeypatch, ema):
    coded["train"].update(method="tiger", epochs=3, patience=5, ema=ema,
                          model={**coded["train"]["model"], "dropout": 0.1})
    params = params_from_dict(coded)
    train.run(params)
    straight = load_file("data/model/model.safetensors")
    real = genrec_fit.evaluate_users
    calls = {"n": 0}

    def dies_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    shutil.rmtree("data/model")
    monkeypatch.setattr(genrec_fit, "evaluate_users", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train.run(params)
    assert len(list(Path("data/work/train").rglob("last.pt"))) == 1   # epoch 1 was saved
    monkeypatch.setattr(genrec_fit, "evaluate_users", real)
    history = train.run(params)
    resumed = load_file("data/model/model.safetensors")
    assert history["epochs_run"] == 3
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_ema_validates_and_keeps_the_moving_average_of_every_step(coded, monkeypatch):
    """`train.ema: d` validates and keeps e_1 = w_1, e_t = d e_(t-1) + (1 - d) w_t over the
    trained weights w_t after each optimizer step (averaged here by hand), not w_t itself."""
    coded["train"].update(method="tiger", epochs=2, patience=5, ema=0.9)
    trained = []
    real_update = AveragedModel.update_parameters

    def update_parameters(self, model):
        trained.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        real_update(self, model)

    validated = []

    def validate(model, *args):
        validated.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"valid/hr_10": 1.0 / len(validated), "valid/ndcg_10": 0.0}   # epoch 1 best

    monkeypatch.setattr(AveragedModel, "update_parameters", update_parameters)
    monkeypatch.setattr(genrec_fit, "_validate", validate)
    train.run(params_from_dict(coded))
    steps = len(trained) // 2
    average = dict(trained[0])
    for weights in trained[1:steps]:
        average = {k: 0.9 * average[k] + 0.1 * weights[k] for k in average}
    assert len(trained) == 2 * steps and steps > 1
    assert all(torch.allclose(validated[0][k], average[k], atol=1e-6) for k in average)
    assert not all(torch.allclose(validated[0][k], trained[steps - 1][k]) for k in average)
    kept = load_file("data/model/model.safetensors")
    assert all(torch.equal(kept[f"model.{k}"], v) for k, v in validated[0].items())  # epoch 1


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
            node = trie.child(level, node, tokens[:, level] - offsets[level])
        assert torch.equal(catalog.item_of_row[modality][node], items)


def test_implicit_alignment_pairs_each_item_with_itself(coded):
    from pipeline.core.contrastive import info_nce
    from pipeline.models.genrec import Batch
    from pipeline.genrec.alignment import implicit_alignment

    coded["train"]["method"] = "macrec"
    params = params_from_dict(coded)
    catalog = build_catalog(read_final_codes(Path("data/codes/final"), params.train), 120,
                            params.train)
    model = GenRec(GenRecConfig(catalog.vocab.size, **coded["train"]["model"])).eval()
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


def test_two_gloo_processes_train_the_same_model_as_one(coded):
    """torchrun with 2 CPU processes (DDP over gloo): each takes half of every batch and the
    averaged gradients equal the whole batch's, so the weights match a 1-process run."""
    # lr 1e-3: Adam turns the float-rounding differences of a 2-process gradient sum into
    # weight differences that grow with the step size; the tolerance below is set for it.
    coded["train"].update(method="mscgrec", epochs=2, modality_dropout=0.3, lr=0.001)
    params = params_from_dict(coded)
    train.run(params)
    single = load_file("data/model/model.safetensors")
    coded["paths"]["model"] = "data/model_ddp"
    coded["paths"]["metrics"] = "metrics_ddp"
    Path("params.yaml").write_text(yaml.safe_dump(coded))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "pipeline.stages.train"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(Path("metrics_ddp/train.json").read_text())
    assert metrics["train/processes"] == 2 and metrics["epochs_run"] == 2
    parallel = load_file("data/model_ddp/model.safetensors")
    for key in single:
        torch.testing.assert_close(parallel[key], single[key], atol=2e-4, rtol=1e-3)


def test_processes_split_each_batch_and_average_to_the_batch_gradient(coded, monkeypatch):
    from pipeline.genrec import training as genrec_training
    from pipeline.genrec.training import Step, train_step

    coded["train"].update(method="mscgrec", modality_dropout=0.3)
    params = params_from_dict(coded)
    catalog = build_catalog(read_final_codes(Path("data/codes/final"), params.train), 120,
                            params.train)
    seqs = tables.read_table("data/ingest/sequences.parquet", tables.SEQUENCES)
    samples = training_samples(catalog, seqs.column("train_items").to_pylist(), 20)["mscgrec"]
    model = GenRec(model_config(params.train, catalog))
    step = Step(catalog.train_tasks[0], torch.arange(37))           # odd: an uneven split
    seen = []
    real = genrec_training.encode_history
    monkeypatch.setattr(genrec_training, "encode_history",
                        lambda h, *a, **k: seen.append(h) or real(h, *a, **k))
    grads = []
    for rank, world in ((0, 1), (0, 2), (1, 2)):
        model.zero_grad()
        terms = train_step(model, catalog, params.train, step, samples,
                           torch.Generator().manual_seed(0), torch.device("cpu"), rank, world)
        terms["objective"].backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert [len(h) for h in seen] == [37, 19, 18]
    assert torch.equal(torch.cat(seen[1:]).sort(0).values, seen[0].sort(0).values)
    for whole, first, second in zip(*grads):
        torch.testing.assert_close((first + second) / 2, whole, atol=1e-6, rtol=1e-4)


def test_a_tiny_model_overfits_a_toy_shop(params_dict, tiny_t5):
    """16 items whose next item is fixed by the last one: after training, top-1 is always right."""
    from pipeline.genrec.tasks import sequential_samples
    from pipeline.genrec.training import Step, train_step
    from pipeline.genrec.decoding import recommend_batch

    params_dict["train"].update(method="mscgrec", modality_dropout=0.0, model=tiny_t5)
    cfg = params_from_dict(params_dict).train
    items = np.arange(16)
    codes = {"text": (items, np.stack([items // 4, items % 4], 1)),
             "image": (items, np.stack([items % 4, items // 4], 1)),
             "collab": (items, np.stack([items // 4, (items + 1) % 4], 1))}
    catalog = build_catalog(codes, 16, cfg)
    sequences = [[(5 * u + 3 * t) % 16 for t in range(8)] for u in range(4)]
    samples = sequential_samples(sequences, 20, 16)
    torch.manual_seed(0)
    model = GenRec(model_config(cfg, catalog))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    step = Step(catalog.train_tasks[0], torch.arange(len(samples.target)))
    for _ in range(300):
        loss = train_step(model, catalog, cfg, step, samples, torch.Generator(), torch.device("cpu"))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    top, _ = recommend_batch(model, catalog, samples.history, 10, "trie", "mean", 1)
    assert float(loss) < 0.05
    assert torch.equal(top[:, 0], samples.target)
