"""What the feature stages share: device choice, resumable batched extraction (also split
across worker processes or machines: `--shard i/N`), precomputed embeddings, and the
embedding table writer."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from pipeline import tables
from pipeline.config import Params, load_params
from pipeline.errors import UserInputError
from pipeline.seeding import seed_everything


class FeatureError(UserInputError):
    """A feature extractor cannot run as configured (model not available, bad file)."""


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when there is one; `cuda` without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FeatureError("device 'cuda' requested but torch sees no GPU; use 'auto' or 'cpu'")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    if dtype is torch.float16 and device.type == "cpu":
        raise FeatureError("dtype float16 is not supported on the CPU; use float32 or bfloat16")
    return dtype


def fingerprint(*parts: object) -> str:
    """A short stable hash of the config and the inputs: names the resumable work folder."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


class Shard(NamedTuple):
    index: int     # 0-based
    count: int     # shards in all

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`i/N` (1-based i, as a user types it) -> Shard(i - 1, N)."""
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected i/N, e.g. 1/4") from None
        if not 1 <= i <= n:
            raise argparse.ArgumentTypeError(f"{text!r}: i must be between 1 and N")
        return cls(i - 1, n)


ALL = Shard(0, 1)


class Extraction(NamedTuple):
    """What a feature stage encodes: the arguments of `encode_chunks` / `extract_resumable`."""
    inputs: Sequence
    encode: Callable[[Sequence], np.ndarray]
    dim: int
    work_dir: Path
    batch_size: int
    desc: str


def shard_argument(argv: list[str] | None) -> Shard | None:
    """`--shard i/N` of a feature stage's command line; None runs the whole stage."""
    parser = argparse.ArgumentParser(description="Without --shard: the whole DVC stage. With "
                                     "it: encode only shard i of N into the stage's work "
                                     "folder; a later run of the stage assembles them.")
    parser.add_argument("--shard", type=Shard.parse, help="i/N, 1-based, e.g. 2/4")
    return parser.parse_args(argv).shard


def shard_main(name: str, plan: Callable[[Params], Extraction | None], shard: Shard,
               params_path: str = "params.yaml") -> int:
    """Worker mode of feature stage `name`: encode shard `shard` of what `plan` returns into
    the stage's work folder (shared by every worker: same params, same inputs, same folder)
    and write nothing else. `dvc repro <name>` afterwards loads the finished chunks, computes
    any that are missing, and writes the stage's outputs. Returns an exit code."""
    try:
        params = load_params(params_path)
        seed_everything(params.seed)
        job = plan(params)
        if job is None:
            print(f"{name}: nothing to extract (precomputed embeddings)")
            return 0
        encode_chunks(*job._replace(desc=f"{name} {shard.index + 1}/{shard.count}"), shard=shard)
    except (UserInputError, FileNotFoundError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    print(f"{name}: shard {shard.index + 1}/{shard.count} done in {job.work_dir}")
    return 0


def encode_chunks(inputs: Sequence, encode: Callable[[Sequence], np.ndarray], dim: int,
                  work_dir: Path, batch_size: int, desc: str, shard: Shard = ALL) -> None:
    """Encode this shard's chunks of `inputs` (every `shard.count`-th chunk of `batch_size * 8`
    inputs, from `shard.index`) into `work_dir/chunk_<n>.npy`, skipping chunks already there.

    Each chunk is written atomically as soon as it is done, so an interrupted run resumes,
    and workers that share `work_dir` (a shared filesystem) split the inputs between them.
    `work_dir` must be unique to the config and inputs (see `fingerprint`)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    chunk = batch_size * 8
    starts = list(range(0, len(inputs), chunk))[shard.index::shard.count]
    mine = sum(min(start + chunk, len(inputs)) - start for start in starts)
    bar = tqdm(total=mine, desc=desc, unit="item", disable=None, mininterval=2.0)
    for start in starts:
        stop = min(start + chunk, len(inputs))
        path = work_dir / f"chunk_{start // chunk:06d}.npy"
        if not path.is_file():
            out = np.empty((stop - start, dim), dtype=np.float32)
            for b in range(start, stop, batch_size):
                out[b - start:min(b + batch_size, stop) - start] = encode(
                    inputs[b:min(b + batch_size, stop)])
            tmp = work_dir / f"{path.stem}.{os.getpid()}.tmp.npy"
            np.save(tmp, out)
            os.replace(tmp, path)
        bar.update(stop - start)
    bar.close()


def extract_resumable(inputs: Sequence, encode: Callable[[Sequence], np.ndarray], dim: int,
                      work_dir: Path, batch_size: int, desc: str) -> np.ndarray:
    """Encode `inputs` in batches into an (N, dim) float32 array, resumably: chunks already in
    `work_dir` (from an interrupted run, or from shard workers, see `encode_chunks`) are
    loaded, the others computed. `work_dir` is deleted once everything is encoded."""
    encode_chunks(inputs, encode, dim, work_dir, batch_size, desc)
    chunk = batch_size * 8
    out = np.empty((len(inputs), dim), dtype=np.float32)
    for index, start in enumerate(range(0, len(inputs), chunk)):
        out[start:min(start + chunk, len(inputs))] = np.load(work_dir / f"chunk_{index:06d}.npy")
    shutil.rmtree(work_dir)
    return out


def load_precomputed(npy: str, ids_file: str | None, original_ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """Embeddings a user computed elsewhere: `npy` rows in the order of `ids_file` (one
    original item id per line; without it, rows must follow the items table order)."""
    matrix = np.load(npy, mmap_mode="r")
    if matrix.ndim != 2:
        raise FeatureError(f"{npy}: expected a 2-D array (items x dim), got shape {matrix.shape}")
    if ids_file is None:
        if len(matrix) != len(original_ids):
            raise FeatureError(f"{npy}: {len(matrix)} rows but {len(original_ids)} items; give "
                               "an ids file (precomputed_ids) to align them")
        return np.asarray(matrix, dtype=np.float32), ["ok"] * len(original_ids)
    ids = Path(ids_file).read_text(encoding="utf-8").split()
    if len(ids) != len(matrix):
        raise FeatureError(f"{ids_file}: {len(ids)} ids for {len(matrix)} rows of {npy}")
    row_of = {item: row for row, item in enumerate(ids)}
    out = np.full((len(original_ids), matrix.shape[1]), np.nan, dtype=np.float32)
    status = []
    for i, item in enumerate(original_ids):
        if item in row_of:
            out[i] = matrix[row_of[item]]
            status.append("ok")
        else:
            status.append("not_in_precomputed")
    return out, status


def coverage_metrics(status: list[str], dim: int, seconds: float) -> dict:
    """Items covered / missing (by reason), the dimension and the throughput."""
    covered = sum(s == "ok" for s in status)
    out = {"items": len(status), "covered": covered, "missing": len(status) - covered,
           "dim": dim, "seconds": round(seconds, 3),
           "items_per_s": round(covered / seconds, 2) if seconds > 0 else 0.0}
    for reason in sorted(set(status) - {"ok"}):
        out[f"missing/{reason}"] = status.count(reason)
    return out


def write_embeddings(path: Path, vectors: np.ndarray, status: list[str]) -> None:
    """(N, D) vectors, row i = item i; rows whose status is not "ok" are stored as NaN."""
    n, dim = vectors.shape
    valid = np.array([s == "ok" for s in status], dtype=bool)
    if not np.isfinite(vectors[valid]).all():
        raise FeatureError(f"{path}: non-finite values in computed embeddings")
    vectors = np.where(valid[:, None], vectors, np.nan).astype(np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)
    table = pa.table({"item_id": pa.array(np.arange(n), pa.int64()), "embedding": column,
                      "status": status})
    tables.write_table(table, path, tables.embeddings_schema(dim))


def read_embeddings(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 vectors (NaN rows where missing) and the (N,) bool mask of present rows."""
    dim = pq.read_schema(path).field("embedding").type.list_size
    table = tables.read_table(path, tables.embeddings_schema(dim))
    flat = table.column("embedding").combine_chunks().flatten().to_numpy()
    present = np.array([s == "ok" for s in table.column("status").to_pylist()], dtype=bool)
    return flat.astype(np.float32).reshape(table.num_rows, dim), present
