"""quantize + resolve on a tiny shop (learned codes) and on imported codes."""
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.io import tables
from pipeline.config import params_from_dict
from pipeline.core.resolve import colliding_rows, reassign
from pipeline.sources.prepared import parse_code_file
from pipeline.stages import ingest, quantize, resolve, sasrec, synthetic, text_features


def _unique(codes):
    return len(np.unique(codes, axis=0)) == len(codes)


@pytest.mark.parametrize("strategy", ["reassign", "append", "sinkhorn"])
def test_learned_codes_resolve_to_unique_ids(params_dict, strategy):
    params_dict["sasrec"].update(epochs=2, hidden=16)
    params_dict["quantize"].update(methods={"text": "rqvae", "collab": "rqkmeans"}, levels=3,
                                   codebook_size=4)
    params_dict["quantize"]["rqvae"].update(hidden=[32], latent_dim=8, epochs=15, batch_size=64)
    params_dict["resolve"]["strategy"] = strategy
    params = params_from_dict(params_dict)
    for stage in (synthetic, ingest, text_features, sasrec):
        stage.run(params)
    raw = quantize.run(params)
    # 4 x 4 x 4 = 64 codes for ~100 items: collisions are certain before resolution.
    assert raw["text/collision_rate"] > 0 and raw["collab/collision_rate"] > 0
    assert raw["text/level_1/used"] <= 4
    history = json.loads(Path("plots/quantize/text_epochs.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 16))
    assert history[-1]["recon_loss"] < history[0]["recon_loss"]
    assert {"collision_rate", "level_3/used", "level_3/perplexity"} <= set(history[0])
    for name in ("text_level_1.png", "text_level_3.png", "collab_level_2.png"):
        assert Path("plots/quantize", name).read_bytes()[:4] == b"\x89PNG"
    # resolve's distances: the items that share a code only, the last two levels
    dists = np.load("data/codes/raw/text_dists.npy")
    dist_items = np.load("data/codes/raw/text_dist_items.npy")
    item_ids, codes = tables.read_codes("data/codes/raw/text.parquet")
    assert dist_items.tolist() == item_ids[colliding_rows(codes)].tolist()
    assert 0 < len(dist_items) < len(item_ids) and dists.shape == (len(dist_items), 2, 4)
    report = resolve.run(params)
    for modality in ("text", "collab"):
        final_ids, final = tables.read_codes(f"data/codes/final/{modality}.parquet")
        assert _unique(final) and report[f"{modality}/collision_rate_after"] == 0
        assert report[f"{modality}/collision_rate_before"] > 0
    n_items = tables.read_table("data/ingest/items.parquet", tables.ITEMS).num_rows
    assert sorted(final_ids.tolist()) == list(range(n_items))


def test_imported_codes_pass_through_resolve(params_dict, tmp_path):
    folder = tmp_path / "prep"
    folder.mkdir()
    users = {str(u): [(u + k) % 6 for k in range(5)] for u in range(12)}
    (folder / "Mini.inter.json").write_text(json.dumps(users))
    tokens = {str(i): [f"<a_{i % 2}>", "<b_0>"] for i in range(6)}   # 3 items per code
    (folder / "Mini.index_lemb.json").write_text(json.dumps(tokens))
    params_dict["dataset"].update(source="prepared", name="Mini", path=str(folder),
                                  prepared_codes={"text": "lemb"})
    params_dict["ingest"].update(user_k=3, item_k=1)
    params_dict["quantize"].update(methods={"text": "imported"}, levels=2, codebook_size=4)
    params = params_from_dict(params_dict)
    ingest.run(params)
    assert quantize.run(params)["text/collision_rate"] == 1.0
    report = resolve.run(params)
    _, final = tables.read_codes("data/codes/final/text.parquet")
    assert _unique(final) and report["text/items_moved"] == 4


def test_imported_method_without_codes_is_a_clear_error(params_dict):
    params_dict["quantize"]["methods"] = {"image": "imported"}
    params = params_from_dict(params_dict)
    synthetic.run(params)
    ingest.run(params)
    with pytest.raises(Exception, match="'imported' but .*image.parquet does not exist"):
        quantize.run(params)


def test_shared_instruments_text_codes_resolve_unique(instruments_dir):
    raw = parse_code_file(instruments_dir / "Instruments.index_lemb.json")
    codes = np.array([raw[str(i)] for i in range(len(raw))])
    assert not _unique(codes)
    out = reassign(codes, None, [256] * 4)
    assert _unique(out.codes) and not out.appended and out.moved == 262


def test_macrec_joint_quantization_and_its_deep_level_loss_reaches_the_encoder(params_dict):
    import torch

    from pipeline.core.contrastive import pseudo_label_nce
    from pipeline.models.rqvae import RQVAE, RQVAEConfig

    params_dict["quantize"].update(methods={"text": "macrec", "image": "macrec"}, levels=3,
                                   codebook_size=8)
    params_dict["quantize"]["rqvae"].update(hidden=[32], latent_dim=8, epochs=8, batch_size=64)
    params_dict["quantize"]["macrec"].update(clusters=6, contrast_from_level=2)
    params = params_from_dict(params_dict)
    for stage in (synthetic, ingest, text_features):
        stage.run(params)
    from pipeline.stages import image_features

    image_features.run(params)
    metrics = quantize.run(params)
    history = json.loads(Path("plots/quantize/image_epochs.json").read_text())
    assert len(history) == 8 and history[0]["contrast_loss"] > 0 and history[0]["align_loss"] > 0
    assert metrics["text/items"] > 0 and metrics["image/items"] > 0
    resolve.run(params)
    for modality in ("text", "image"):
        _, final = tables.read_codes(f"data/codes/final/{modality}.parquet")
        assert _unique(final)
    # The cross-modal residual loss at the 3rd level changes the encoder's weights.
    torch.manual_seed(0)
    model = RQVAE(RQVAEConfig(6, (16,), 4, 3, 4))
    x = torch.randn(16, 6)
    model.init_codebooks(x, torch.Generator().manual_seed(0))
    before = model.encoder[0].weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    pseudo_label_nce(model(x).residuals[2], torch.arange(16) % 3, tau=0.1).backward()
    optimizer.step()
    assert not torch.equal(before, model.encoder[0].weight)
