"""The synthetic and ingest stages on a tiny shop and on hand-made raw files, in tmp_path."""
import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from pipeline.io import tables
from pipeline.config import params_from_dict
from pipeline.sources.common import IngestError
from pipeline.sources import synthetic as synthetic_source
from pipeline.stages import ingest, synthetic

OUTPUTS = ("items.parquet", "users.parquet", "interactions.parquet", "sequences.parquet")


def _run_both(raw: dict) -> dict:
    params = params_from_dict(raw)
    synthetic.run(params)
    return ingest.run(params)


def test_synthetic_shop_ingests_into_valid_tables(params_dict):
    metrics = _run_both(params_dict)
    out = Path(params_dict["paths"]["ingest"])
    items = tables.read_table(out / "items.parquet", tables.ITEMS).to_pylist()
    seqs = tables.read_table(out / "sequences.parquet", tables.SEQUENCES).to_pylist()
    inter = pl.from_arrow(tables.read_table(out / "interactions.parquet", tables.INTERACTIONS))
    assert metrics["final/items"] == len(items) and metrics["final/users"] == len(seqs)
    assert [it["item_id"] for it in items] == list(range(len(items)))
    assert all(it["text"] for it in items)
    # About a third of the titles name the colour; the pattern stays the picture's own.
    named = sum(any(c.lower() in it["title"].lower() for c in synthetic_source.COLOUR_NAMES)
                for it in items)
    assert 0.15 * len(items) < named < 0.6 * len(items)
    assert not any(p in it["text"].lower() for it in items for p in ("stripes", "checker"))
    assert {it["image_status"] for it in items} <= set(tables.IMAGE_STATUSES)
    assert metrics["images/local"] > 0.9 * len(items)
    # The k-core holds on the final interactions.
    assert inter.group_by("user_id").len()["len"].min() >= 5
    assert inter.group_by("item_id").len()["len"].min() >= 5
    # Leave-one-out: the last two interactions of each user are test and validation targets.
    for row in seqs:
        history = inter.filter(pl.col("user_id") == row["user_id"])["item_id"].to_list()
        assert history == row["train_items"] + [row["valid_item"], row["test_item"]]
        assert row["test_history"] == (row["train_items"] + [row["valid_item"]])[-20:]
        assert row["valid_history"] == row["train_items"][-20:]
    # Planted flaws are visible in the metrics.
    assert metrics["dedup/interactions"] < metrics["metadata/interactions"]


def test_same_seed_gives_byte_identical_outputs(params_dict, tmp_path, monkeypatch):
    outputs = {}
    for run, seed in (("a", 42), ("b", 42), ("c", 7)):
        (tmp_path / run).mkdir()
        monkeypatch.chdir(tmp_path / run)   # same relative paths, different folders
        params_dict["seed"] = seed
        _run_both(params_dict)
        ingested = Path(params_dict["paths"]["ingest"])
        outputs[run] = {name: (ingested / name).read_bytes() for name in OUTPUTS}
        outputs[run]["raw"] = (Path(params_dict["paths"]["synthetic"]) / "Shop.json.gz").read_bytes()
    assert outputs["a"] == outputs["b"]
    assert outputs["c"]["raw"] != outputs["a"]["raw"]


def _amazon_files(folder: Path, reviews: list[tuple[str, str, int]], meta: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "Toys.json.gz", "wt") as fh:
        for user, asin, t in reviews:
            fh.write(json.dumps({"reviewerID": user, "asin": asin, "unixReviewTime": t}) + "\n")
    with (folder / "meta_Toys.json").open("w") as fh:
        for asin, record in meta.items():
            fh.write(json.dumps({"asin": asin, **record}) + "\n")


def _amazon_params(params_dict, **ingest_overrides):
    params_dict["dataset"].update(source="amazon2018", name="Toys", path="raw")
    params_dict["ingest"].update(ingest_overrides)
    return params_from_dict(params_dict)


def test_dedup_kcore_and_split_hand_computed(params_dict, tmp_path):
    # u1 buys A,B,C,D (B twice: the earlier one at t=2 is kept; the tie at t=3 keeps file
    # order). u2 buys A,B,C. u3 buys only A and D -> removed by user_k=3, after which D has
    # one buyer (u1) -> removed by item_k=2 in the next pass; then u1 keeps A,B,C.
    reviews = [("u1", "A", 1), ("u1", "B", 2), ("u1", "C", 3), ("u1", "D", 3), ("u1", "B", 9),
               ("u2", "C", 7), ("u2", "A", 5), ("u2", "B", 6), ("u3", "A", 1), ("u3", "D", 2)]
    meta = {asin: {"title": f"Toy {asin}"} for asin in "ABCD"}
    _amazon_files(tmp_path / "raw", reviews, meta)
    metrics = ingest.run(_amazon_params(params_dict, user_k=3, item_k=2, max_history=1))
    assert metrics["dedup/interactions"] == 9
    assert metrics["kcore/interactions"] == 6 and metrics["kcore/iterations"] == 3
    out = tmp_path / params_dict["paths"]["ingest"]
    users = tables.read_table(out / "users.parquet", tables.USERS).to_pylist()
    assert [u["original_id"] for u in users] == ["u1", "u2"]   # order of first interaction
    items = tables.read_table(out / "items.parquet", tables.ITEMS).column("original_id")
    assert items.to_pylist() == ["A", "B", "C"]                # catalogue order
    seqs = tables.read_table(out / "sequences.parquet", tables.SEQUENCES).to_pylist()
    assert seqs == [
        {"user_id": 0, "train_items": [0], "valid_history": [0], "valid_item": 1,
         "test_history": [1], "test_item": 2},
        {"user_id": 1, "train_items": [0], "valid_history": [0], "valid_item": 1,
         "test_history": [1], "test_item": 2},
    ]


def test_missing_metadata_drop_or_keep(params_dict, tmp_path):
    reviews = [(u, a, t) for u in ("u1", "u2", "u3") for t, a in enumerate("ABC")]
    _amazon_files(tmp_path / "raw", reviews, {"A": {"title": "a"}, "B": {"title": "b"}})
    with pytest.raises(IngestError, match=r"k-core filter \(ingest.user_k=3, ingest.item_k=1\)"):
        ingest.run(_amazon_params(params_dict, user_k=3, item_k=1))
    metrics = ingest.run(_amazon_params(params_dict, user_k=3, item_k=1, missing_metadata="keep"))
    assert metrics["metadata/items_without_metadata"] == 1
    assert metrics["final/items"] == 3 and metrics["items/empty_text"] == 1


def test_missing_and_corrupt_images_keep_the_item(params_dict, tmp_path):
    from PIL import Image

    (tmp_path / "raw").mkdir()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "raw" / "ok.png")
    (tmp_path / "raw" / "bad.png").write_bytes(b"\x89PNG garbage")
    meta = {"A": {"title": "a", "imageURLHighRes": ["ok.png"]},
            "B": {"title": "b", "imageURLHighRes": ["bad.png"]},
            "C": {"title": "c", "imageURLHighRes": ["gone.png"]},
            "D": {"title": "d", "imageURL": ["https://example.invalid/d.jpg"]},
            "E": {"title": "e"}}
    reviews = [(u, a, t) for u in ("u1", "u2", "u3") for t, a in enumerate("ABCDE")]
    _amazon_files(tmp_path / "raw", reviews, meta)
    metrics = ingest.run(_amazon_params(params_dict, user_k=3, item_k=1))
    items = tables.read_table(tmp_path / "data/ingest/items.parquet", tables.ITEMS).to_pylist()
    status = {it["original_id"]: (it["image_status"], it["image_ref"]) for it in items}
    assert status == {"A": ("local", "raw/ok.png"), "B": ("unreadable", "raw/bad.png"),
                      "C": ("missing", "raw/gone.png"),
                      "D": ("remote", "https://example.invalid/d.jpg"), "E": ("absent", None)}
    assert metrics["final/items"] == 5
    index = json.loads((tmp_path / "data/ingest/codes/index.json").read_text())
    assert index == {"modalities": {}}          # no imported codes, but the folder is not empty


def test_prepared_shared_instruments_counts(params_dict, instruments_dir):
    params_dict["dataset"].update(source="prepared", name="Instruments", path=str(instruments_dir))
    metrics = ingest.run(params_from_dict(params_dict))
    assert (metrics["final/users"], metrics["final/items"], metrics["final/interactions"]) == (
        17_112, 6_250, 136_226)
    codes = tables.read_table("data/ingest/codes/text.parquet", tables.codes_schema(4))
    assert codes.num_rows == 6_250
    index = json.loads(Path("data/ingest/codes/index.json").read_text())
    assert index["modalities"]["text"] == {"items": 6_250, "levels": 4}
    seqs = tables.read_table("data/ingest/sequences.parquet", tables.SEQUENCES)
    assert seqs.num_rows == 17_112
    assert max(len(h) for h in seqs.column("test_history").to_pylist()) == 20


def test_main_reports_a_typo_in_one_line(params_dict, tmp_path, capsys):
    text = (Path(__file__).resolve().parents[2] / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text.replace("user_k:", "user_kk:"))
    assert ingest.main() == 2
    err = capsys.readouterr().err
    assert "unknown key 'ingest.user_kk'" in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()


def test_prepared_imported_modality_without_its_code_file_stops_ingest(params_dict, tmp_path):
    folder = tmp_path / "letter"
    folder.mkdir()
    (folder / "Mini.inter.json").write_text(json.dumps({str(u): [0, 1, 2, 3, 4, 5]
                                                        for u in range(6)}))
    params_dict["dataset"].update(source="prepared", name="Mini", path=str(folder),
                                  prepared_codes={"text": ""})
    params_dict["quantize"]["methods"] = {"text": "imported"}
    with pytest.raises(IngestError, match=r"code file .*letter/Mini.index.json does not exist"):
        ingest.run(params_from_dict(params_dict))
    assert not Path(params_dict["paths"]["ingest"]).exists()
    # LETTER's file name, read for the empty suffix.
    (folder / "Mini.index.json").write_text(json.dumps(
        {str(i): ["<a_1>", f"<b_{i}>"] for i in range(6)}))
    metrics = ingest.run(params_from_dict(params_dict))
    assert metrics["codes/text_items"] == 6
