"""Each Amazon reader on small files written here in the real formats, gz and plain."""
import gzip
import json

import pytest

from pipeline.sources import amazon2014, amazon2018, amazon2023
from pipeline.sources.common import IngestError


def _write(path, lines, gz):
    text = "".join(line + "\n" for line in lines)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _review(user, asin, t):
    return json.dumps({"reviewerID": user, "asin": asin, "overall": 5.0, "unixReviewTime": t})


@pytest.mark.parametrize("gz", [False, True])
def test_amazon2018_json_reviews_meta_and_skips(tmp_path, gz):
    _write(tmp_path / "Toys.json", [
        _review("U1", "A1", 100),
        "{not json",
        json.dumps({"asin": "A2", "unixReviewTime": 5}),           # no reviewer
        json.dumps({"reviewerID": "U1", "asin": "A2", "unixReviewTime": "soon"}),
        "[1, 2]",
        "",
        _review("U2", "A2", 50),
    ], gz)
    _write(tmp_path / "meta_Toys.json", [
        json.dumps({"asin": "A1", "title": "Kazoo &amp; case", "description": ["<p>Loud.</p>"],
                    "brand": "Zümmer", "category": ["Toys", "Music"],
                    "imageURLHighRes": ["https://img/x.jpg"]}),
        json.dumps({"asin": "A1", "title": "again"}),
        json.dumps({"title": "no id"}),
        json.dumps({"asin": "A2", "title": "Drum", "imageURL": ["https://img/y.jpg"]}),
    ], gz)
    data = amazon2018.load(tmp_path, "Toys", strict=False)
    assert data.interactions.users == ["U1", "U2"]
    assert data.interactions.timestamps == [100, 50]
    item = data.items["A1"]
    assert (item.title, item.description, item.brand) == ("Kazoo & case", "Loud.", "Zümmer")
    assert item.categories == ("Toys", "Music") and item.image_ref == "https://img/x.jpg"
    assert data.items["A2"].image_ref == "https://img/y.jpg"
    name = "Toys.json.gz" if gz else "Toys.json"
    meta = "meta_" + name
    assert dict(data.skipped) == {
        f"{name}:malformed": 1, f"{name}:missing_user_or_item": 1, f"{name}:bad_timestamp": 1,
        f"{name}:not_an_object": 1, f"{meta}:duplicate_item": 1, f"{meta}:missing_item_id": 1}


def test_amazon2018_strict_stops_with_file_and_line(tmp_path):
    _write(tmp_path / "Toys.json", [_review("U1", "A1", 1), "{broken"], gz=False)
    _write(tmp_path / "meta_Toys.json", [json.dumps({"asin": "A1"})], gz=False)
    with pytest.raises(IngestError, match=r"Toys.json:2: malformed"):
        amazon2018.load(tmp_path, "Toys", strict=True)


def test_amazon2018_ratings_csv(tmp_path):
    _write(tmp_path / "Toys.csv", ["A1,U1,5.0,100", "A2,U1,4.0", "A2,U2,3.0,x", "A2,U2,3.0,7"],
           gz=True)
    _write(tmp_path / "meta_Toys.json", [json.dumps({"asin": "A1"})], gz=True)
    data = amazon2018.load(tmp_path, "Toys", strict=False)
    assert list(zip(data.interactions.users, data.interactions.items,
                    data.interactions.timestamps)) == [("U1", "A1", 100), ("U2", "A2", 7)]
    assert dict(data.skipped) == {"Toys.csv.gz:wrong_column_count": 1,
                                  "Toys.csv.gz:bad_timestamp": 1}


def test_amazon2018_missing_files_are_named(tmp_path):
    with pytest.raises(IngestError, match=r"Toys.json, Toys.json.gz"):
        amazon2018.load(tmp_path, "Toys", strict=False)


@pytest.mark.parametrize("gz", [False, True])
def test_amazon2014_python_literal_meta_is_never_evaluated(tmp_path, gz):
    canary = tmp_path / "pwned"
    _write(tmp_path / "reviews_Toys_5.json", [_review("U1", "A1", 3)], gz)
    _write(tmp_path / "meta_Toys.json", [
        "{'asin': 'A1', 'title': u'Caf\\xe9 drum', 'categories': [['Toys', 'Drums'], ['Toys']],"
        " 'imUrl': 'http://img/a.jpg', 'description': 'Big &quot;boom&quot;'}",
        f"__import__('pathlib').Path({str(canary)!r}).touch()",
        "{'asin': 'A2', 'title': 'ok'",
    ], gz)
    data = amazon2014.load(tmp_path, "Toys", strict=False)
    assert not canary.exists()
    item = data.items["A1"]
    assert item.title == "Café drum" and item.description == 'Big "boom"'
    assert item.categories == ("Toys", "Drums") and item.image_ref == "http://img/a.jpg"
    meta = "meta_Toys.json.gz" if gz else "meta_Toys.json"
    assert data.skipped[f"{meta}:malformed"] == 2


def test_amazon2023_parent_asin_and_milliseconds(tmp_path):
    _write(tmp_path / "Toys.jsonl", [
        json.dumps({"user_id": "U1", "parent_asin": "P1", "asin": "C9", "timestamp": 1_600_000_000_123}),
    ], gz=True)
    _write(tmp_path / "meta_Toys.jsonl", [json.dumps({
        "parent_asin": "P1", "title": "Ukulele", "store": "Kala", "description": ["Soprano", "size"],
        "categories": [], "main_category": "Musical Instruments",
        "images": [{"thumb": "t.jpg", "large": "https://l.jpg", "hi_res": None}]})], gz=False)
    data = amazon2023.load(tmp_path, "Toys", strict=False)
    assert data.interactions.items == ["P1"]
    assert data.interactions.timestamps == [1_600_000_000]
    item = data.items["P1"]
    assert (item.brand, item.description) == ("Kala", "Soprano size")
    assert item.categories == ("Musical Instruments",) and item.image_ref == "https://l.jpg"
