import json

import pytest

from pipeline.sources import prepared
from pipeline.sources.common import IngestError


def _folder(tmp_path, codes=None):
    (tmp_path / "Mini.inter.json").write_text(json.dumps({"1": [2, 0], "0": [0, 1, 2]}))
    (tmp_path / "Mini.item2id").write_text("ASIN0\t0\nASIN1\t1\nASIN2\t2\n")
    (tmp_path / "Mini.user2id").write_text("ALICE\t0\nBOB\t1\n")
    (tmp_path / "Mini.item.json").write_text(json.dumps(
        {"0": {"title": "Flute", "categories": [["Wind"]]}, "2": {"brand": "Ac&amp;me"}}))
    for suffix, tokens in (codes or {}).items():
        (tmp_path / f"Mini.index_{suffix}.json").write_text(json.dumps(tokens))
    return tmp_path


def test_prepared_reads_every_file(tmp_path):
    codes = {"lemb": {"0": ["<a_1>", "<b_2>"], "1": ["<a_1>", "<b_2>"], "2": ["<a_0>", "<b_255>"]}}
    data = prepared.load(_folder(tmp_path, codes), "Mini", {"text": "lemb", "image": "vitemb"})
    assert list(data.items) == ["ASIN0", "ASIN1", "ASIN2"]
    assert data.items["ASIN0"].title == "Flute" and data.items["ASIN0"].categories == ("Wind",)
    assert data.items["ASIN2"].brand == "Ac&me"
    assert data.interactions.users == ["ALICE"] * 3 + ["BOB"] * 2
    assert data.interactions.items == ["ASIN0", "ASIN1", "ASIN2", "ASIN2", "ASIN0"]
    assert data.interactions.timestamps == [0, 1, 2, 0, 1]
    assert data.codes == {"text": {"ASIN0": (1, 2), "ASIN1": (1, 2), "ASIN2": (0, 255)}}


@pytest.mark.parametrize("tokens, message", [
    (["<a_1>", "<c_2>"], "not of the form <b_N>"),
    (["<a_x>"], "not of the form <a_N>"),
    ([], "non-empty list"),
])
def test_prepared_rejects_bad_code_tokens(tmp_path, tokens, message):
    _folder(tmp_path, {"lemb": {"0": tokens}})
    with pytest.raises(IngestError, match=message):
        prepared.load(tmp_path, "Mini", {"text": "lemb"})


def test_prepared_rejects_ragged_codes(tmp_path):
    _folder(tmp_path, {"lemb": {"0": ["<a_1>", "<b_2>"], "1": ["<a_1>"]}})
    with pytest.raises(IngestError, match="has 1 levels, others 2"):
        prepared.load(tmp_path, "Mini", {"text": "lemb"})


def test_prepared_missing_interactions_file(tmp_path):
    with pytest.raises(IngestError, match="Mini.inter.json not found"):
        prepared.load(tmp_path, "Mini", {})


def test_shared_instruments_codes_parse(instruments_dir):
    text = prepared.parse_code_file(instruments_dir / "Instruments.index_lemb.json")
    image = prepared.parse_code_file(instruments_dir / "Instruments.index_vitemb.json")
    assert len(text) == len(image) == 6250
    assert {len(c) for c in text.values()} == {4}
    assert all(0 <= v < 256 for code in image.values() for v in code)
    # The published text codes collide: 262 groups hold 524 items (dataset README).
    assert len(text) - len(set(text.values())) == 262
    assert len(set(image.values())) == 6250


def test_prepared_reads_letter_index_file_for_an_empty_suffix(tmp_path):
    _folder(tmp_path)
    (tmp_path / "Mini.index.json").write_text(json.dumps({"1": ["<a_3>", "<b_4>"]}))
    data = prepared.load(tmp_path, "Mini", {"text": ""})
    assert data.codes == {"text": {"ASIN1": (3, 4)}}


def test_prepared_absent_code_file_is_skipped_unless_imported(tmp_path):
    _folder(tmp_path)
    assert prepared.load(tmp_path, "Mini", {"text": "lemb"}).codes == {}
    with pytest.raises(IngestError, match=r"quantize.methods.text is 'imported' but its code "
                                          r"file .*Mini.index_lemb.json does not exist"):
        prepared.load(tmp_path, "Mini", {"text": "lemb"}, required=["text"])
    with pytest.raises(IngestError, match="prepared_codes has no entry for image"):
        prepared.load(tmp_path, "Mini", {"text": "lemb"}, required=["image"])
