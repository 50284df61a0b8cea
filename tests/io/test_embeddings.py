"""Embedding tables: read a row group at a time into one array."""
import numpy as np
import pyarrow.parquet as pq

from pipeline.io.embeddings import read_embeddings, write_embeddings
from pipeline.io.tables import ROW_GROUP_ROWS


def test_a_table_of_several_row_groups_reads_back_whole(tmp_path):
    n = 3000
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, 3)).astype(np.float32)
    status = ["ok"] * n
    status[5] = status[n - 2] = "missing"
    path = tmp_path / "text.parquet"
    write_embeddings(path, vectors, status)
    pq.write_table(pq.read_table(path), path, row_group_size=1024)   # as a big table's writer
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    read, present = read_embeddings(path)
    assert read.shape == (n, 3) and read.dtype == np.float32 and read.flags.writeable
    assert present.sum() == n - 2 and not present[5] and not present[n - 2]
    assert np.isnan(read[[5, n - 2]]).all()
    assert np.array_equal(read[present], vectors[present])


def test_big_tables_are_written_in_row_groups_a_reader_can_take_one_at_a_time(tmp_path):
    """pyarrow's own default puts up to 1Mi rows in a group; a million 384-d vectors would then
    be read as one 1.5 GB piece."""
    n = ROW_GROUP_ROWS + 10
    path = tmp_path / "text.parquet"
    write_embeddings(path, np.zeros((n, 1), dtype=np.float32), ["ok"] * n)
    groups = pq.ParquetFile(path).metadata
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [ROW_GROUP_ROWS, 10]
