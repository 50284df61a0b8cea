"""Every torch stage on a CUDA GPU with `device: auto` (the default), on the tiny shop of the
other stage tests. Skipped where torch sees no GPU (tests/conftest.py); on a GPU machine
without polars or the packaged encoders, bench/gpu_check.py runs them on data built here
(MMGENREC_CODED_DATA)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import params_from_dict
from pipeline.genrec.catalog import build_catalog, read_final_codes
from pipeline.genrec.checkpoint import load_model
from pipeline.genrec.decoding import normalization, recommend_users
from pipeline.genrec.fit import TrainData, model_config, training_samples
from pipeline.genrec.tasks import history_samples
from pipeline.genrec.training import epoch_steps, train_step
from pipeline.io import tables
from pipeline.models.genrec import GenRec
from pipeline.serve.recommender import Recommender
from pipeline.stages import evaluate, quantize, resolve, sasrec, train

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


@pytest.mark.parametrize("method", ["mscgrec", "macrec", "mql4grec", "tiger"])
def test_train_and_evaluate_run_on_cuda_and_the_model_serves_on_a_cpu(coded, method):
    coded["train"].update(method=method, tasks=["seqrec", "seqimage", "item2image"])
    coded["evaluate"].update(beam=12, users=60)
    params = params_from_dict(coded)
    trained = train.run(params)
    assert trained["epochs_run"] == 2 and 0 <= trained["valid/hr_10"] <= 1
    metrics = evaluate.run(params)
    assert metrics["test/invalid_rate"] == 0.0 and 0 <= metrics["test/hr_10"] <= 1
    predictions = tables.read_table("data/evaluate/predictions.parquet",
                                    tables.predictions_schema(10))
    on_gpu = np.array(predictions.column("items").to_pylist())
    cpu = load_model(Path("data/model"), torch.device("cpu"))       # a CPU-only server
    assert cpu.catalog.device.type == "cpu"
    seqs = tables.read_table("data/ingest/sequences.parquet", tables.SEQUENCES).to_pylist()
    history_of = {row["user_id"]: row["test_history"] for row in seqs}
    users = predictions.column("user_id").to_pylist()
    samples = history_samples([history_of[u] for u in users], [0] * len(users),
                              cpu.cfg.max_history, cpu.catalog.n_items)
    top, _ = recommend_users(cpu.model, cpu.catalog, samples.history, 12,
                             normalization(cpu.cfg), "mean", 10)
    # float32 on both; kernels differ, so a near-tie may order differently on a few users.
    assert (top.numpy() == on_gpu).all(axis=1).mean() >= 0.9
    gpu = Recommender("data/model", "data/ingest/items.parquet", "auto", beam=12)
    assert gpu.loaded.catalog.device.type == "cuda"
    assert [r.item_id for r in gpu.recommend(history_of[users[0]])] == on_gpu[0].tolist()


def test_a_training_step_never_waits_for_the_gpu(coded):
    """torch's sync debug mode raises on any host synchronisation (`.item()`, a nonzero, a
    blocking copy) inside the steps."""
    coded["train"].update(method="mscgrec", modality_dropout=0.3)
    cfg = params_from_dict(coded).train
    catalog = build_catalog(read_final_codes(Path("data/codes/final"), cfg), 120, cfg)
    seqs = tables.read_table("data/ingest/sequences.parquet", tables.SEQUENCES)
    data = TrainData.place(training_samples(catalog, seqs.column("train_items"), 20),
                           catalog, CUDA)
    model = GenRec(model_config(cfg, catalog)).to(CUDA)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    dropout = torch.Generator(CUDA).manual_seed(0)
    steps = epoch_steps(data.lengths, data.catalog.train_tasks, 16,
                        torch.Generator().manual_seed(0), CUDA)
    total = torch.zeros((), device=CUDA)

    def one(step) -> None:
        nonlocal total
        terms = train_step(model, data.catalog, cfg, step, data.samples[step.task.name],
                           dropout, CUDA)
        optimizer.zero_grad(set_to_none=True)
        terms["objective"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        total = total + terms["loss"].detach()

    one(steps[0])                                # first-call set-up (cuBLAS handles) aside
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in steps[1:6]:
            one(step)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(total).item()


def test_sasrec_runs_on_cuda(coded):
    metrics = sasrec.run(params_from_dict(coded))
    assert 0 <= metrics["test/hr_10"] <= 1


@pytest.mark.parametrize("method", ["rqvae", "macrec"])
def test_quantizers_run_on_cuda(coded, method):
    coded["quantize"].update(methods={"text": method, "image": method, "collab": "rqkmeans"})
    coded["quantize"]["rqvae"].update(hidden=[32], latent_dim=8, epochs=3, batch_size=64)
    coded["quantize"]["macrec"].update(clusters=8)
    params = params_from_dict(coded)
    quantize.run(params)
    resolve.run(params)
    ids, codes = tables.read_codes(Path("data/codes/final/text.parquet"))
    assert len(np.unique(codes, axis=0)) == len(ids)


def test_features_and_rqdino_run_on_cuda(coded, tmp_path):
    """The text and image encoders (tiny random Hugging Face models saved offline) and
    RQ-DINO's trunk and head on the GPU."""
    from transformers import (BertConfig, BertModel, BertTokenizerFast, CLIPImageProcessor,
                              CLIPVisionConfig, CLIPVisionModelWithProjection)

    from pipeline.stages import image_features, text_features
    torch.manual_seed(0)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path / "bert")
    BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32)).save_pretrained(tmp_path / "bert")
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                              num_hidden_layers=1, image_size=30, patch_size=10, projection_dim=12)
    CLIPVisionModelWithProjection(vision).save_pretrained(tmp_path / "clip")
    CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30}) \
        .save_pretrained(tmp_path / "clip")
    coded["text_features"].update(model=str(tmp_path / "bert"))
    coded["image_features"].update(encoder="hf_clip", model=str(tmp_path / "clip"))
    coded["quantize"].update(methods={"image": "rqdino"}, levels=2, codebook_size=8)
    coded["quantize"]["rqdino"].update(hidden=[32], latent_dim=8, projector_dim=16,
                                       prototypes=32, epochs=3, batch_size=32, local_crops=2,
                                       rounds=2, freeze_trunk=False)
    params = params_from_dict(coded)
    assert text_features.run(params)["dim"] == 16
    assert image_features.run(params)["dim"] == 12
    quantize.run(params)
    resolve.run(params)
    ids, codes = tables.read_codes(Path("data/codes/final/image.parquet"))
    assert len(ids) > 0 and len(np.unique(codes, axis=0)) == len(ids)
