"""The recommend API: a history of items -> the trained model's top-K items with titles.

`Recommender(model_dir, items_path)` loads the `<paths.model>` folder (weights, model config,
train params and semantic IDs, without unpickling: no params.yaml is needed to rebuild it) and
`<paths.ingest>/items.parquet` (original ids and titles). Histories are item ids
(0..n_items-1, as in the pipeline's tables) or, with `original_ids`, the catalogue's own ids;
an unknown id is an error that names it.
"""
from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from pathlib import Path
from typing import NamedTuple

from pipeline.config import Fusion
from pipeline.genrec.checkpoint import load_model
from pipeline.genrec.decoding import normalization, recommend_users
from pipeline.genrec.tasks import history_samples
from pipeline.io import tables
from pipeline.runtime.devices import resolve_device
from pipeline.runtime.errors import UserInputError


class Recommendation(NamedTuple):
    item_id: int
    original_id: str
    title: str
    score: float       # fused log-probability of the item's semantic ID (higher is better)


class Recommender:
    """Top-K recommendations with titles from a trained model and its catalogue."""

    def __init__(self, model_dir: str | Path, items_path: str | Path, device: str = "auto",
                 beam: int = 20, fusion: Fusion | str = Fusion.MEAN) -> None:
        self.device = resolve_device(device)
        self.loaded = load_model(model_dir, self.device)
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
                                 f"--original-ids in `python -m pipeline.serve.recommend`)")
        return [int(h) for h in history]

    def recommend_many(self, histories: Sequence[Sequence[int | str]], k: int = 10,
                       original_ids: bool = False) -> list[list[Recommendation]]:
        """Top-k of each history (at most `beam` per decoded modality; fewer only when the
        catalogue is smaller)."""
        if not 1 <= k <= self.beam:
            raise UserInputError(f"k must be between 1 and the beam width {self.beam}, got {k}")
        empty = [row for row, h in enumerate(histories) if len(h) == 0]
        if empty:
            raise UserInputError(f"history of row {empty[0]} is empty: give at least one item id")
        ids = [self.item_ids(h, original_ids) for h in histories]
        cat, cfg = self.loaded.catalog, self.loaded.cfg
        samples = history_samples(ids, [0] * len(ids), cfg.max_history, cat.n_items)
        top, scores = recommend_users(self.loaded.model, cat, samples.history, self.beam,
                                      normalization(cfg), self.fusion, k)
        return [[Recommendation(int(i), self.original_ids[i], self.titles[i], float(s))
                 for i, s in zip(row.tolist(), row_scores.tolist()) if i >= 0]
                for row, row_scores in zip(top, scores)]

    def recommend(self, history: Sequence[int | str], k: int = 10,
                  original_ids: bool = False) -> list[Recommendation]:
        return self.recommend_many([history], k, original_ids)[0]
