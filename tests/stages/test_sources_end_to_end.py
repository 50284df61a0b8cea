"""Every dataset source through every stage, by changing only the `dataset:` section of the
real params.yaml (shrunk as the other stage tests shrink it): a model is trained and
evaluated, and a modality the dataset lacks is reported as skipped. The Amazon formats are
written from one tiny generated shop; remote images come from a server on 127.0.0.1."""
import copy
import functools
import gzip
import http.server
import json
import threading
from pathlib import Path

import pytest

from pipeline.config import params_from_dict
from pipeline.sources.synthetic import generate
from pipeline.stages import (
    evaluate, image_features, ingest, quantize, resolve, sasrec, synthetic, text_features,
    train,
)

STAGES = (ingest, text_features, image_features, sasrec, quantize, resolve, train, evaluate)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A tiny shop in the Amazon 2018 format (reviews, metadata, PNGs): reviews and metadata
    as records, and the folder, also served over HTTP on 127.0.0.1 (yields base URL too)."""
    folder = tmp_path_factory.mktemp("shop")
    generate(folder, "Shop", n_items=120, n_users=150, min_len=5, max_len=12, image_size=16,
             seed=3)
    read = [[json.loads(line) for line in gzip.open(folder / f"{n}.json.gz", "rt")]
            for n in ("Shop", "meta_Shop")]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield folder, read[0], read[1], f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _lines(path: Path, records, dump=json.dumps) -> None:
    path.write_text("".join(dump(r) + "\n" for r in records))


def _amazon2018_remote(root, reviews, meta, base):
    _lines(root / "Shop.json", reviews)
    _lines(root / "meta_Shop.json", [{**m, "imageURLHighRes": [f"{base}/{u}" for u in
                                                               m.get("imageURLHighRes", [])]}
                                     for m in meta])
    return {"source": "amazon2018", "name": "Shop", "path": str(root)}


def _amazon2014(root, reviews, meta, base):
    _lines(root / "reviews_Shop_5.json", reviews)
    _lines(root / "meta_Shop.json", [
        {"asin": m["asin"], "title": m["title"], "brand": m["brand"],
         "categories": [m["category"]], "description": " ".join(m["description"]),
         **({"imUrl": f"{base}/{m['imageURLHighRes'][0]}"} if "imageURLHighRes" in m else {})}
        for m in meta], dump=repr)                              # Python literals, as in 2014
    return {"source": "amazon2014", "name": "Shop", "path": str(root)}


def _amazon2023(root, reviews, meta, base):
    _lines(root / "Shop.jsonl", [{"user_id": r["reviewerID"], "parent_asin": r["asin"],
                                  "asin": r["asin"], "rating": r["overall"],
                                  "timestamp": r["unixReviewTime"] * 1000} for r in reviews])
    _lines(root / "meta_Shop.jsonl", [
        {"parent_asin": m["asin"], "title": m["title"], "store": m["brand"],
         "categories": m["category"][1:], "main_category": m["category"][0],
         "description": m["description"],
         "images": [{"large": f"{base}/{u}", "hi_res": None} for u in m.get("imageURLHighRes", [])]}
        for m in meta])
    return {"source": "amazon2023", "name": "Shop", "path": str(root)}


def _prepared(root, reviews, meta, base, codes: bool = False):
    items = sorted({r["asin"] for r in reviews})
    users = sorted({r["reviewerID"] for r in reviews})
    index = {a: i for i, a in enumerate(items)}
    seqs = {}
    for r in sorted(reviews, key=lambda r: r["unixReviewTime"]):
        seqs.setdefault(str(users.index(r["reviewerID"])), []).append(index[r["asin"]])
    (root / "Shop.inter.json").write_text(json.dumps(seqs))
    (root / "Shop.item2id").write_text("".join(f"{a}\t{i}\n" for a, i in index.items()))
    (root / "Shop.user2id").write_text("".join(f"{u}\t{i}\n" for i, u in enumerate(users)))
    titles = {m["asin"]: m["title"] for m in meta}
    (root / "Shop.item.json").write_text(json.dumps(
        {str(i): {"title": titles.get(a, a)} for a, i in index.items()}))
    dataset = {"source": "prepared", "name": "Shop", "path": str(root), "prepared_codes": {}}
    if codes:                       # 3-level IDs, unique: i in base 8, a token per level
        (root / "Shop.index_lemb.json").write_text(json.dumps(
            {str(i): [f"<{'abc'[l]}_{i // 8 ** (2 - l) % 8}>" for l in range(3)]
             for i in index.values()}))
        dataset["prepared_codes"] = {"text": "lemb"}
    return dataset


DATASETS = {
    "synthetic": lambda *a: {"source": "synthetic"},
    "amazon2018_local": lambda root, *a: {"source": "amazon2018", "name": "Shop",
                                          "path": str(a[-1])},
    "amazon2018_remote": _amazon2018_remote,
    "amazon2014": _amazon2014,
    "amazon2023": _amazon2023,
    "movielens100k": lambda *a: {"source": "movielens100k"},
    "prepared": _prepared,
    "prepared_with_codes": functools.partial(_prepared, codes=True),
}


@pytest.mark.parametrize("name", DATASETS)
def test_a_source_runs_end_to_end_by_changing_only_the_dataset_section(
        name, shop, params_dict, tiny_t5, tmp_path, capsys):
    folder, reviews, meta, base = shop
    root = tmp_path / "raw"
    root.mkdir()
    maker = DATASETS[name]
    dataset = (maker(root, reviews, meta, folder) if name == "amazon2018_local"
               else maker(root, reviews, meta, base))
    raw = copy.deepcopy(params_dict)
    raw["dataset"] = {**raw["dataset"], "prepared_codes": {}, **dataset}
    raw["sasrec"].update(epochs=2, hidden=16)
    raw["quantize"].update(levels=3, codebook_size=8, methods={
        "text": "imported" if name == "prepared_with_codes" else "rqkmeans",
        "image": "rqkmeans", "collab": "rqkmeans"})
    raw["train"].update(epochs=1, batch_size=64, valid_users=40, beam=10, model=tiny_t5)
    raw["evaluate"].update(beam=10, users=50)
    params = params_from_dict(raw)
    stages = (synthetic, *STAGES) if name == "synthetic" else STAGES
    metrics = {stage.__name__.rsplit(".", 1)[-1]: stage.run(params) for stage in stages}
    assert metrics["train"]["epochs_run"] == 1 and Path("data/model/model.safetensors").is_file()
    assert 0 <= metrics["evaluate"]["test/hr_10"] <= 1 and metrics["evaluate"]["users"] == 50
    has_images = name not in ("movielens100k", "prepared", "prepared_with_codes")
    assert ("skipped/image" in metrics["quantize"]) is not has_images
    assert ("image" in metrics["evaluate"]["modalities"]) is has_images
    if not has_images:
        assert "quantize: image: no item has an image vector; modality skipped" in \
            capsys.readouterr().out
    if name in ("amazon2018_remote", "amazon2014", "amazon2023"):
        assert metrics["image_features"]["download/fetched"] > 50
