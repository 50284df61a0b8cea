"""Constrained beam-search decoding speed: this pipeline's decoder vs HF `generate` with a
trie `prefix_allowed_tokens_fn`, on the same trained model, users and beam, in one run.

    python bench/decode_speed.py [--users 512] [--beam 20] [--batch 64]
        [--out bench/results/decode_speed.json]

Reads the trained model (the `<paths.model>` folder) and the test histories under params.yaml's
paths (run `make run` first). Both decoders score with the full-vocabulary softmax (HF's
semantics), decode the method's first decoded task, and are timed over the same users after
one untimed warm-up batch each. Reports users/s, the ratio, and how many users get an
identical top-10 list.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.io import tables  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.genrec.tasks import history_samples  # noqa: E402
from pipeline.genrec.hf_reference import hf_decode, prefix_table  # noqa: E402
from pipeline.serve.recommender import load_model  # noqa: E402
from pipeline.genrec.decoding import decode  # noqa: E402


def timed(fn, batches) -> tuple[float, torch.Tensor]:
    """Seconds over all batches but the first (warm-up), and the concatenated top items."""
    out, seconds = [], 0.0
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        items, _ = fn(batch)
        if i:
            seconds += time.perf_counter() - start
        out.append(items.cpu())
    return seconds, torch.cat(out)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=512)
    parser.add_argument("--beam", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "decode_speed.json"))
    args = parser.parse_args()
    os.chdir(ROOT)
    params = load_params("params.yaml")
    device = torch.device("cpu")
    loaded = load_model(Path(params.paths.model), device)
    cat = loaded.catalog
    seqs = tables.read_table(Path(params.paths.ingest) / "sequences.parquet", tables.SEQUENCES)
    histories = seqs.column("test_history").to_pylist()[:args.users + args.batch]
    samples = history_samples(histories, [0] * len(histories), loaded.cfg.max_history, cat.n_items)
    batches = list(samples.history.split(args.batch))   # batch 0 is the warm-up
    t = cat.decode_tasks[0]
    table = prefix_table(cat, t.target)
    ours_s, ours = timed(lambda h: decode(loaded.model, cat, h, t, args.beam, "full"),
                         batches)
    hf_s, hf = timed(lambda h: hf_decode(loaded.model, cat, h, t, args.beam, device, table),
                     batches)
    users = sum(len(b) for b in batches[1:])
    same = (ours[args.batch:, :10] == hf[args.batch:, :10]).all(dim=1)
    result = {"task": t.name, "method": loaded.cfg.method, "beam": args.beam,
              "batch": args.batch, "users": users, "catalogue": cat.n_items,
              "ours_users_per_s": round(users / ours_s, 1), "hf_users_per_s": round(users / hf_s, 1),
              "ratio": round(hf_s / ours_s, 1),
              "identical_top10_share": round(float(same.float().mean()), 4),
              "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                         f"torch {torch.__version__}"}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
