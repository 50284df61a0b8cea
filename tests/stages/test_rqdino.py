"""RQ-DINO image quantization on a tiny shop: crops, the trainable and frozen trunk, resolve."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.io import tables
from pipeline.config import ConfigError, params_from_dict
from pipeline.quantize.views import multicrop
from pipeline.encoders import image as image_encoders
from pipeline.runtime.errors import UserInputError
from pipeline.quantize import rqdino
from pipeline.stages import image_features, ingest, quantize, resolve, synthetic

TINY_CLIP = {"embed_dim": 16,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                            "patch_size": 16},
             "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2,
                          "layers": 1}}


@pytest.fixture
def shop(params_dict, tmp_path):
    """Tiny shop with image features from a tiny random open_clip ViT, RQ-DINO on images."""
    import open_clip

    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "tiny-rqdino-clip.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(tmp_path / "cfgs")
    params_dict["image_features"].update(encoder="open_clip", model="tiny-rqdino-clip",
                                         pretrained=None)
    params_dict["quantize"].update(methods={"image": "rqdino"}, levels=2, codebook_size=8)
    params_dict["quantize"]["rqdino"].update(hidden=[32], latent_dim=8, projector_dim=16,
                                             prototypes=32, epochs=12, batch_size=32,
                                             local_crops=2, rounds=2, lr=0.003)
    for stage in (synthetic, ingest, image_features):
        stage.run(params_from_dict(params_dict))
    return params_dict


def test_crops_are_a_function_of_the_seed():
    encoder = image_encoders.build("efficientnet_lite0", "", None, "main", torch.device("cpu"),
                                   torch.float32)
    p = params_from_dict(_real()).quantize.rqdino
    views = multicrop(encoder, p)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    a, b, c = views(img, 7), views(img, 7), views(img, 8)
    assert [v.shape for v in a] == [(3, 224, 224)] * 2 + [(3, p.local_size, p.local_size)] * 4
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


def _real():
    import yaml
    from tests.conftest import ROOT
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("freeze", [True, False])
def test_rqdino_stage_writes_valid_codes_that_resolve(shop, freeze):
    shop["quantize"]["rqdino"]["freeze_trunk"] = freeze
    params = params_from_dict(shop)
    metrics = quantize.run(params)
    history = json.loads(Path("plots/quantize/image_epochs.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 13))
    assert all(np.isfinite([h["dino_loss"], h["quant_loss"]]).all() for h in history)
    assert not any(Path("data/work").rglob("*.npy"))          # crop features cleaned up
    item_ids, codes = tables.read_codes("data/codes/raw/image.parquet")
    assert codes.shape == (len(item_ids), 2) and codes.min() >= 0 and codes.max() < 8
    assert metrics["image/items"] == len(item_ids)
    colliding = np.load("data/codes/raw/image_dist_items.npy")
    assert np.load("data/codes/raw/image_dists.npy").shape == (len(colliding), 2, 8)
    report = resolve.run(params)
    _, final = tables.read_codes("data/codes/final/image.parquet")
    assert len(np.unique(final, axis=0)) == len(final) and report["image/collision_rate_after"] == 0


def test_rqdino_is_for_images_only(params_dict):
    params_dict["quantize"]["methods"] = {"text": "rqdino"}
    with pytest.raises(ConfigError, match="quantize.methods.text"):
        params_from_dict(params_dict)


def test_rqdino_needs_the_encoder_not_precomputed_vectors(params_dict, tmp_path):
    params_dict["image_features"].update(precomputed=str(tmp_path / "x.npy"))
    params_dict["quantize"]["methods"] = {"image": "rqdino"}
    params = params_from_dict(params_dict)
    with pytest.raises(UserInputError, match="image_features.precomputed"):
        rqdino.fit(["image"], params)
