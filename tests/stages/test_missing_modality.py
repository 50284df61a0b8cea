"""A dataset without one modality (MovieLens has no pictures): the modality is left out of
quantize, resolve, train and evaluate with a line in the log and the metrics, and every
method works with what is left."""
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import params_from_dict
from pipeline.io import tables
from pipeline.io.embeddings import read_embeddings, write_embeddings
from pipeline.runtime.errors import UserInputError
from pipeline.stages import evaluate, quantize, resolve, train


@pytest.fixture
def no_images(coded):
    """The tiny shop with no image vector at all, quantized and resolved again."""
    path = Path(coded["paths"]["features"]) / "image.parquet"
    vectors, _ = read_embeddings(path)
    write_embeddings(path, np.full_like(vectors, np.nan), ["absent"] * len(vectors))
    coded["quantize"]["methods"] = {"text": "macrec", "image": "macrec", "collab": "rqkmeans"}
    coded["quantize"]["rqvae"].update(hidden=[32], latent_dim=8, epochs=2, batch_size=64)
    return coded


def test_a_modality_without_items_is_left_out_with_a_line(no_images, capsys):
    params = params_from_dict(no_images)
    metrics = quantize.run(params)
    out = capsys.readouterr().out
    assert "quantize: image: no item has an image vector; modality skipped" in out
    assert "macrec needs two modalities with items; text alone" in out
    assert metrics["image/coverage"] == 0.0 and metrics["text/coverage"] > 0.5
    assert metrics["skipped/image"].startswith("no item has an image vector")
    assert sorted(p.name for p in Path("data/codes/raw").glob("*.parquet")) == [
        "collab.parquet", "text.parquet"]
    resolved = resolve.run(params)
    assert "skipped/image" in resolved and not Path("data/codes/final/image.parquet").exists()
    assert json.loads(Path("data/codes/final/skipped.json").read_text()).keys() == {"image"}


@pytest.mark.parametrize("method, used, lines", [
    ("mscgrec", ["collab", "text"], ["task mscgrec: history without image"]),
    ("macrec", ["text"], ["task seqimage: left out", "task item2image: left out",
                          "implicit loss: left out (needs text and image semantic IDs)"]),
])
def test_methods_train_and_evaluate_with_the_modalities_left(no_images, capsys, method, used,
                                                             lines):
    no_images["train"].update(method=method, epochs=1,
                              tasks=["seqrec", "seqimage", "item2image", "seqitem2image"])
    no_images["evaluate"].update(beam=12, users=40)
    params = params_from_dict(no_images)
    quantize.run(params)
    resolve.run(params)
    metrics = train.run(params)
    out = capsys.readouterr().out
    assert "train: image: no item has an image vector; modality skipped" in out
    for line in lines:
        assert any(line in left for left in metrics["left_out"]) and line in out
    assert metrics["modalities"] == used and metrics["epochs_run"] == 1
    tested = evaluate.run(params)
    assert tested["modalities"] == used and 0 <= tested["test/hr_10"] <= 1
    predictions = tables.read_table("data/evaluate/predictions.parquet",
                                    tables.predictions_schema(10))
    assert predictions.num_rows == 40


def test_tiger_on_a_missing_modality_stops_before_training_naming_the_key(no_images):
    no_images["train"].update(method="tiger", tiger_modality="image")
    params = params_from_dict(no_images)
    quantize.run(params)
    resolve.run(params)
    with pytest.raises(UserInputError, match="train.tiger_modality is image.*one of: collab, text"):
        train.run(params)
    assert not Path("data/model").exists()
