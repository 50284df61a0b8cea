"""DVC stage `evaluate`: trained model + test targets -> metrics, predictions, report.

Every test user (or a seeded sample of `users`) is decoded with the trie-constrained beam
search over all catalogue items' semantic IDs, the decoded modalities fused, and the test item
ranked in the fused top-K. Metrics: HR@{1,5,10}, NDCG@{5,10}, the invalid-output rate (top-K
slots that hold no catalogue item; 0 unless the catalogue has fewer than K items) and the
catalogue coverage of the top-10 lists. On the same users, two baselines: popularity (item
counts in the test histories) and the `sasrec` stage's model. Outputs:
`<paths.evaluate>/predictions.parquet` (user, target, top-K items and scores),
`<paths.reports>/evaluate.md` + `evaluate.png`, and the metrics file.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from pipeline import tables
from pipeline.config import Params
from pipeline.core.metrics import ranking_metrics, target_ranks
from pipeline.features import resolve_device
from pipeline.genrec_data import history_samples
from pipeline.models.sasrec import SASRec, SASRecConfig
from pipeline.recommend import load_model
from pipeline.recommender import normalization, recommend_users, topk_ranks
from pipeline.reports import write_report
from pipeline.runner import stage_main
from pipeline.stages.sasrec import evaluate as sasrec_metrics

def run(params: Params) -> dict:
    cfg = params.evaluate
    device = resolve_device(cfg.device.value)
    loaded = load_model(Path(params.paths.model) / "model.pt", device)
    seqs = tables.read_table(Path(params.paths.ingest) / "sequences.parquet", tables.SEQUENCES)
    rows = _users(len(seqs), cfg.users, params.seed)
    all_histories = seqs.column("test_history").to_pylist()
    histories = [all_histories[r] for r in rows]
    targets = seqs.column("test_item").to_numpy()[rows]
    users = seqs.column("user_id").to_numpy()[rows]
    samples = history_samples(histories, targets.tolist(), loaded.cfg.max_history,
                              loaded.catalog.n_items)
    top, scores = recommend_users(loaded.model, loaded.catalog, samples.history, cfg.beam,
                                  normalization(loaded.cfg), cfg.fusion.value, cfg.top_k, device,
                                  cfg.batch_size, progress="evaluate")
    n_items = loaded.catalog.n_items
    metrics = ranking_metrics(topk_ranks(top[:, :10], torch.from_numpy(targets)), "test")
    metrics |= output_checks(top, n_items)
    metrics |= popularity_metrics(all_histories, histories, targets, n_items)
    metrics |= _sasrec(params, histories, targets, device)
    metrics["users"] = len(rows)
    _write_predictions(Path(params.paths.evaluate) / "predictions.parquet", users, targets, top,
                       scores, cfg.top_k)
    write_report(Path(params.paths.reports), metrics, loaded.cfg, params.evaluate)
    return metrics


def _users(n: int, sample: int, seed: int) -> np.ndarray:
    if sample == 0 or sample >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:sample])


def output_checks(top: torch.Tensor, n_items: int) -> dict[str, float]:
    """Share of top-K slots holding no catalogue item, and the share of the catalogue that
    appears in some user's top-10."""
    valid = (top >= 0) & (top < n_items)
    shown = torch.unique(top[:, :10][valid[:, :10]])
    return {"test/invalid_rate": float(1.0 - valid.float().mean()),
            "test/coverage_10": len(shown) / n_items}


def popularity_metrics(all_histories: list[list[int]], histories: list[list[int]],
                       targets: np.ndarray, n_items: int) -> dict[str, float]:
    """Every user gets the items most frequent in the test histories (what is known at test
    time); ties rank against the target."""
    counts = np.bincount(np.concatenate([np.asarray(h, dtype=np.int64) for h in all_histories]),
                         minlength=n_items).astype(np.float32)
    scores = torch.from_numpy(counts)[None].expand(len(histories), -1)
    ranks = target_ranks(scores, torch.from_numpy(targets))
    return ranking_metrics(ranks.numpy(), "popularity")


def _sasrec(params: Params, histories: list[list[int]], targets: np.ndarray,
            device: torch.device) -> dict[str, float]:
    """The `sasrec` stage's model on the same users (its own history masking setting)."""
    saved = torch.load(Path(params.paths.sasrec) / "model.pt", map_location="cpu",
                       weights_only=False)
    model = SASRec(SASRecConfig(**saved["config"]))
    model.load_state_dict(saved["model"])
    return sasrec_metrics(model.to(device), histories, targets, params.sasrec.mask_history,
                          device, "sasrec")


def _write_predictions(path: Path, users: np.ndarray, targets: np.ndarray, top: torch.Tensor,
                       scores: torch.Tensor, k: int) -> None:
    schema = tables.predictions_schema(k)
    table = pa.table({
        "user_id": pa.array(users, pa.int64()),
        "target": pa.array(targets, pa.int64()),
        "items": pa.FixedSizeListArray.from_arrays(pa.array(top.reshape(-1).numpy(), pa.int64()), k),
        "scores": pa.FixedSizeListArray.from_arrays(
            pa.array(scores.reshape(-1).numpy().astype(np.float32), pa.float32()), k),
    }, schema=schema)
    tables.write_table(table, path, schema)


def main() -> int:
    return stage_main("evaluate", run)


if __name__ == "__main__":
    sys.exit(main())
