"""The recommend CLI: item ids in, the trained model's top-K items out (tab-separated).

    python -m pipeline.serve.recommend 12 57 103 [-k 10] [--original-ids] [--params params.yaml]

Reads the model and items table from params.yaml's `paths`, the beam and fusion from its
`evaluate` section. Exit status 2, with the reason, on an unknown id or a missing model.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.config import load_params
from pipeline.runtime.errors import UserInputError
from pipeline.serve.recommender import Recommender


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Top-K items for a history, from the trained "
                                                 "generative recommender.")
    parser.add_argument("history", nargs="+", help="item ids, oldest first")
    parser.add_argument("-k", type=int, default=10, help="items to return (default 10)")
    parser.add_argument("--original-ids", action="store_true",
                        help="the history holds the catalogue's original item ids")
    parser.add_argument("--params", default="params.yaml",
                        help="params file whose paths and evaluate section are used")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        history = args.history if args.original_ids else [_int(h) for h in args.history]
        recommender = Recommender(params.paths.model,
                                  Path(params.paths.ingest) / "items.parquet",
                                  params.evaluate.device, params.evaluate.beam,
                                  params.evaluate.fusion)
        recs = recommender.recommend(history, args.k, args.original_ids)
    except (UserInputError, FileNotFoundError) as exc:
        print(f"recommend: error: {exc}", file=sys.stderr)
        return 2
    print("rank\titem_id\toriginal_id\tscore\ttitle")
    for rank, r in enumerate(recs, 1):
        print(f"{rank}\t{r.item_id}\t{r.original_id}\t{r.score:.4f}\t{r.title}")
    return 0


def _int(text: str) -> int | str:
    """An item id from the command line; a non-integer stays text and is reported unknown."""
    try:
        return int(text)
    except ValueError:
        return text


if __name__ == "__main__":
    sys.exit(main())
