"""Running an encoder over many inputs: resumable batched extraction into a work folder of
chunks, which worker processes or machines can split between them (`--shard i/N`)."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pipeline.config import Params, load_params
from pipeline.runtime.errors import UserInputError
from pipeline.runtime.progress import bar
from pipeline.runtime.seeding import seed_everything


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
    progress = bar(total=mine, desc=desc, unit="item", mininterval=2.0)
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
        progress.update(stop - start)
    progress.close()


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
