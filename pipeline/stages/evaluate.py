"""DVC stage `evaluate`: trained model + test targets -> metrics, predictions, report.

Every test user (or a seeded sample of `users`) is decoded with the trie-constrained beam
search over all catalogue items' semantic IDs, the decoded modalities fused, and the test item
ranked in the fused top-K. On the same users, two baselines: popularity (item counts in the
test histories) and the `sasrec` stage's model. Every model is scored under two protocols:
`<model>/...` ranks everything, as the generative papers' evaluation code does with the beam's
output (the headline protocol); `<model>_masked/...` first removes each user's history items
from the ranking (the generative model's masked top-10 comes from its whole fused beam list).
Every model sees the same history: the last `history_items` items. Metrics: HR@{1,5,10},
NDCG@{5,10}, the invalid-output rate (top-K slots that hold no catalogue item; 0 unless the
catalogue has fewer than K items) and the catalogue coverage of the top-10 lists. Outputs:
`<paths.evaluate>/predictions.parquet` (user, target, top-K items and scores),
`<paths.reports>/evaluate.md` + `evaluate.png`, and the metrics file.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from pipeline.baselines import sasrec
from pipeline.baselines.popularity import popularity_metrics
from pipeline.config import Params
from pipeline.core.metrics import drop_seen, evaluated_rows, padded_histories, ranking_metrics
from pipeline.genrec.checkpoint import load_model
from pipeline.genrec.decoding import normalization, recommend_users, topk_ranks
from pipeline.genrec.tasks import history_samples
from pipeline.io import tables
from pipeline.io.reports import write_report
from pipeline.runtime.devices import resolve_device
from pipeline.runtime.stage import stage_main


def run(params: Params) -> dict:
    cfg = params.evaluate
    device = resolve_device(cfg.device)
    loaded = load_model(Path(params.paths.model), device)
    seqs = tables.read_table(Path(params.paths.ingest) / "sequences.parquet", tables.SEQUENCES)
    rows = evaluated_rows(len(seqs), cfg.users, params.seed)
    all_histories = seqs.column("test_history").to_pylist()
    histories = [all_histories[r] for r in rows]
    targets = seqs.column("test_item").to_numpy()[rows]
    users = seqs.column("user_id").to_numpy()[rows]
    samples = history_samples(histories, targets.tolist(), loaded.cfg.max_history,
                              loaded.catalog.n_items)
    # The beam's whole fused list (beam >= top_k), so the history-masked top-10 has
    # candidates left.
    top, scores = recommend_users(loaded.model, loaded.catalog, samples.history, cfg.beam,
                                  normalization(loaded.cfg), cfg.fusion, cfg.beam,
                                  cfg.batch_size, progress="evaluate")
    n_items = loaded.catalog.n_items
    target_t = torch.from_numpy(targets)
    metrics = ranking_metrics(topk_ranks(top[:, :10], target_t), "test")
    masked = drop_seen(top, padded_histories(histories), target_t, 10)
    metrics |= ranking_metrics(topk_ranks(masked, target_t), "test_masked")
    metrics |= output_checks(top[:, :cfg.top_k], n_items)
    metrics |= popularity_metrics(all_histories, histories, targets, n_items)
    baseline = sasrec.load(Path(params.paths.sasrec), device)
    for mask in (False, True):
        metrics |= sasrec.evaluate(baseline, histories, targets, mask, device,
                                   "sasrec_masked" if mask else "sasrec")
    # The history every model of the table saw: the test histories are cut to
    # ingest.max_history, each model reads its own last max_history / max_len of them.
    metrics |= {"users": len(rows), "history_items": min(
        params.ingest.max_history, loaded.cfg.max_history, baseline.cfg.max_len),
        "modalities": sorted(loaded.catalog.tables)}     # the ones the dataset had codes of
    _write_predictions(Path(params.paths.evaluate) / "predictions.parquet", users, targets,
                       top[:, :cfg.top_k], scores[:, :cfg.top_k], cfg.top_k)
    write_report(Path(params.paths.reports), metrics, loaded.cfg, params.evaluate)
    return metrics


def output_checks(top: torch.Tensor, n_items: int) -> dict[str, float]:
    """Share of top-K slots holding no catalogue item, and the share of the catalogue that
    appears in some user's top-10."""
    valid = (top >= 0) & (top < n_items)
    shown = torch.unique(top[:, :10][valid[:, :10]])
    return {"test/invalid_rate": float(1.0 - valid.float().mean()),
            "test/coverage_10": len(shown) / n_items}


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
