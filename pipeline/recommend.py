"""The recommend API and CLI: a history of items -> the trained model's top-K items.

    python -m pipeline.recommend 12 57 103 [-k 10] [--original-ids] [--params params.yaml]

Loads `<paths.model>/model.pt` (weights, model config, train config and semantic IDs: no
params.yaml section is needed to rebuild it) and `<paths.ingest>/items.parquet` (original ids
and titles). Histories are item ids (0..n_items-1, as in the pipeline's tables) or, with
`original_ids`, the catalogue's own ids; an unknown id is an error that names it.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from numbers import Integral
from pathlib import Path
from typing import NamedTuple

import torch

from pipeline import tables
from pipeline.config import Fusion, TrainConfig, load_params, section_from_dict
from pipeline.errors import UserInputError
from pipeline.features import resolve_device
from pipeline.genrec_data import history_samples
from pipeline.models.genrec import GenRec, GenRecConfig
from pipeline.recommender import Catalog, build_catalog, normalization, recommend_users


class Recommendation(NamedTuple):
    item_id: int
    original_id: str
    title: str
    score: float       # fused log-probability of the item's semantic ID (higher is better)


class Loaded(NamedTuple):
    model: GenRec
    catalog: Catalog
    cfg: TrainConfig


def load_model(path: str | Path, device: torch.device) -> Loaded:
    """Rebuild the trained recommender from its checkpoint alone."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"no trained model at {path}: run the train stage first "
                             f"(dvc repro train)")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    cfg = section_from_dict(TrainConfig, saved["train"], "train")
    model = GenRec(GenRecConfig(**saved["config"]))
    model.load_state_dict(saved["model"])
    catalog = build_catalog(saved["codes"], saved["n_items"], cfg)
    return Loaded(model.to(device).eval(), catalog, cfg)


class Recommender:
    """Top-K recommendations with titles from a trained model and its catalogue."""

    def __init__(self, model_path: str | Path, items_path: str | Path, device: str = "auto",
                 beam: int = 20, fusion: Fusion | str = Fusion.MEAN) -> None:
        self.device = resolve_device(device)
        self.loaded = load_model(model_path, self.device)
        items = tables.read_table(items_path, tables.ITEMS)
        self.original_ids = items.column("original_id").to_pylist()
        self.titles = items.column("title").to_pylist()
        if len(self.original_ids) != self.loaded.catalog.n_items:
            raise UserInputError(f"{items_path} has {len(self.original_ids)} items but the model "
                                 f"was trained on {self.loaded.catalog.n_items}: they come from "
                                 f"different pipeline runs")
        self.row_of_original = {o: i for i, o in enumerate(self.original_ids)}
        self.beam, self.fusion = beam, Fusion(fusion)

    def item_ids(self, history: Sequence[int | str], original_ids: bool = False) -> list[int]:
        """Validate a history; returns pipeline item ids. Raises UserInputError naming every
        unknown id."""
        n = self.loaded.catalog.n_items
        if original_ids:
            unknown = [h for h in history if str(h) not in self.row_of_original]
            if unknown:
                raise UserInputError(f"unknown original item id(s): {', '.join(map(str, unknown))} "
                                     f"(not in the catalogue of {n} items)")
            return [self.row_of_original[str(h)] for h in history]
        unknown = [h for h in history if isinstance(h, bool) or not isinstance(h, Integral)
                   or not 0 <= h < n]
        if unknown:
            raise UserInputError(f"unknown item id(s): {', '.join(map(str, unknown))} (item ids "
                                 f"are integers 0..{n - 1}; for the catalogue's own ids use original_ids=True, "
                                 f"--original-ids on the command line)")
        return [int(h) for h in history]

    def recommend_many(self, histories: Sequence[Sequence[int | str]], k: int = 10,
                       original_ids: bool = False) -> list[list[Recommendation]]:
        """Top-k of each history (at most `beam` per decoded modality; fewer only when the
        catalogue is smaller)."""
        if not 1 <= k <= self.beam:
            raise UserInputError(f"k must be between 1 and the beam width {self.beam}, got {k}")
        ids = [self.item_ids(h, original_ids) for h in histories]
        cat, cfg = self.loaded.catalog, self.loaded.cfg
        samples = history_samples(ids, [0] * len(ids), cfg.max_history, cat.n_items)
        top, scores = recommend_users(self.loaded.model, cat, samples.history, self.beam,
                                      normalization(cfg), self.fusion.value, k, self.device)
        return [[Recommendation(int(i), self.original_ids[i], self.titles[i], float(s))
                 for i, s in zip(row.tolist(), row_scores.tolist()) if i >= 0]
                for row, row_scores in zip(top.cpu(), scores.cpu())]

    def recommend(self, history: Sequence[int | str], k: int = 10,
                  original_ids: bool = False) -> list[Recommendation]:
        return self.recommend_many([history], k, original_ids)[0]


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
        recommender = Recommender(Path(params.paths.model) / "model.pt",
                                  Path(params.paths.ingest) / "items.parquet",
                                  params.evaluate.device.value, params.evaluate.beam,
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
