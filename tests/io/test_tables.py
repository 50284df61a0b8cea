import os

import pyarrow as pa
import pytest

from pipeline.io import tables


def _users(ids, names):
    return pa.table({"user_id": pa.array(ids, pa.int64()), "original_id": names})


def test_round_trip_and_no_temp_files(tmp_path):
    path = tmp_path / "users.parquet"
    tables.write_table(_users([0, 1], ["a", "b"]), path, tables.USERS)
    assert tables.read_table(path, tables.USERS).column("original_id").to_pylist() == ["a", "b"]
    assert os.listdir(tmp_path) == ["users.parquet"]


def test_write_rejects_nulls_and_wrong_columns(tmp_path):
    with pytest.raises(tables.SchemaError, match="original_id.*1 nulls"):
        tables.write_table(_users([0, 1], ["a", None]), tmp_path / "u.parquet", tables.USERS)
    with pytest.raises(tables.SchemaError, match="columns"):
        tables.write_table(pa.table({"user_id": [0]}), tmp_path / "u.parquet", tables.USERS)
    assert not list(tmp_path.iterdir())


def test_read_rejects_a_table_of_another_schema(tmp_path):
    path = tmp_path / "u.parquet"
    tables.write_table(_users([0], ["a"]), path, tables.USERS)
    with pytest.raises(tables.SchemaError):
        tables.read_table(path, tables.INTERACTIONS)


def test_codes_schema_is_fixed_length(tmp_path):
    schema = tables.codes_schema(3)
    table = pa.table({"item_id": pa.array([0], pa.int64()),
                      "codes": pa.array([[1, 2, 3]], pa.list_(pa.int32(), 3))})
    tables.write_table(table, tmp_path / "c.parquet", schema)
    with pytest.raises(tables.SchemaError, match="codes"):
        tables.read_table(tmp_path / "c.parquet", tables.codes_schema(4))


def test_atomic_dir_keeps_old_folder_on_error(tmp_path):
    out = tmp_path / "out"
    with tables.atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError):
        with tables.atomic_dir(out) as tmp:
            (tmp / "a.txt").write_text("second")
            raise RuntimeError("crash")
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
