import importlib.util

import pytest

from pipeline.sources import movielens100k


def test_atomic_files_parse(tmp_path):
    (tmp_path / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t5\t881250949\n2\t10\t3\n2\t11\t4\t881250950\n")
    (tmp_path / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation Children's Comedy\n11\tUntitled\t\tDrama\n")
    data = movielens100k.load(strict=False, folder=tmp_path)
    assert data.interactions.users == ["1", "2"]
    assert data.items["10"].title == "Toy Story (1995)"
    assert data.items["10"].categories == ("Animation", "Children's", "Comedy")
    assert data.items["11"].title == "Untitled"
    assert dict(data.skipped) == {"ml-100k.inter:wrong_column_count": 1}


@pytest.mark.skipif(importlib.util.find_spec("recbole") is None,
                    reason="recbole wheel not installed (make setup installs it)")
def test_installed_movielens_copy():
    data = movielens100k.load(strict=True)
    assert len(data.interactions) == 100_000
    assert len(set(data.interactions.users)) == 943
    assert len(data.items) == 1682
