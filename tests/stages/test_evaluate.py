"""The `evaluate` stage, its baselines and checks, and the recommend API and CLI."""
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.serve import recommend, recommender
from pipeline.io import tables
from pipeline.config import params_from_dict
from pipeline.runtime.errors import UserInputError
from pipeline.stages import evaluate
from pipeline.baselines.popularity import popularity_metrics
from pipeline.stages.evaluate import output_checks


def test_evaluate_writes_metrics_predictions_and_report(trained):
    params = params_from_dict(trained)
    metrics = evaluate.run(params)
    assert metrics["users"] == 60
    assert metrics["test/invalid_rate"] == 0.0
    assert 0 < metrics["test/coverage_10"] <= 1
    for prefix in ("test", "popularity", "sasrec"):
        for protocol in (prefix, f"{prefix}_masked"):
            assert 0 <= metrics[f"{protocol}/ndcg_10"] <= metrics[f"{protocol}/hr_10"] <= 1
    # Masking never hides the target, so it can only help a ranking of every item...
    assert metrics["popularity_masked/hr_10"] >= metrics["popularity/hr_10"]
    assert metrics["sasrec_masked/hr_10"] >= metrics["sasrec/hr_10"]
    assert metrics["history_items"] == 20
    predictions = tables.read_table("data/evaluate/predictions.parquet", tables.predictions_schema(10))
    top = np.array(predictions.column("items").to_pylist())
    targets = predictions.column("target").to_numpy()
    assert top.shape == (60, 10) and ((top >= 0) & (top < 120)).all()
    hits = (top == targets[:, None]).any(axis=1)
    assert metrics["test/hr_10"] == pytest.approx(hits.mean())        # metrics match the file
    seqs = tables.read_table("data/ingest/sequences.parquet", tables.SEQUENCES).to_pylist()
    history_of = {row["user_id"]: set(row["test_history"]) for row in seqs}
    users = predictions.column("user_id").to_pylist()
    unseen_hits = [t in [i for i in row if i not in history_of[u]][:10]
                   for u, t, row in zip(users, targets, top)]
    # ...and the masked top-10 holds at least the unseen items of the unmasked top-10.
    assert metrics["test_masked/hr_10"] >= np.mean(unseen_hits)
    scores = np.array(predictions.column("scores").to_pylist())
    assert (np.diff(scores, axis=1) <= 0).all()                        # best first
    report = Path("reports/evaluate.md").read_text()
    assert "| popularity |" in report and "| SASRec |" in report and "tiger" in report
    assert "## History items masked" in report and "last 20 items" in report
    assert Path("reports/evaluate.png").stat().st_size > 0


def test_recommend_api_matches_the_stage_and_names_unknown_items(trained):
    params = params_from_dict(trained)
    evaluate.run(params)
    predictions = pq.read_table("data/evaluate/predictions.parquet").to_pylist()
    seqs = tables.read_table("data/ingest/sequences.parquet", tables.SEQUENCES).to_pylist()
    history_of = {row["user_id"]: row["test_history"] for row in seqs}
    rec = recommender.Recommender("data/model", "data/ingest/items.parquet", "cpu", beam=12)
    first = predictions[0]
    got = rec.recommend(history_of[first["user_id"]], k=10)
    assert [r.item_id for r in got] == first["items"]
    items = tables.read_table("data/ingest/items.parquet", tables.ITEMS)
    assert got[0].title == items.column("title")[got[0].item_id].as_py()
    originals = [items.column("original_id")[i].as_py() for i in history_of[first["user_id"]]]
    assert rec.recommend(originals, k=10, original_ids=True) == got
    with pytest.raises(UserInputError, match="unknown item id.*999"):
        rec.recommend([3, 999])
    with pytest.raises(UserInputError, match="unknown original item id.*nope"):
        rec.recommend(["nope"], original_ids=True)


def test_recommend_cli_prints_titles_and_rejects_unknown_ids(trained, capsys):
    Path("params.yaml").write_text(json.dumps(trained))        # JSON is YAML
    assert recommend.main(["3", "17", "-k", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("rank\titem_id") and len(lines) == 6
    assert recommend.main(["3", "x7"]) == 2
    assert "unknown item id(s): x7" in capsys.readouterr().err


def test_masked_popularity_skips_each_users_history():
    histories = [[1, 2], [0]]                            # counts: 1, 1, 1 for items 0, 1, 2
    unmasked = masked = popularity_metrics(histories, histories, np.array([0, 2]), 3)
    # user 0: items 1, 2 hidden, target 0 first; user 1: item 0 hidden, target 2 ties with 1
    assert masked["popularity_masked/hr_1"] == pytest.approx(1 / 2)
    assert unmasked["popularity/hr_1"] == 0.0             # ties count against the target


def test_popularity_baseline_against_hand_counts():
    histories = [[0, 1, 1], [1, 2], [2, 1]]              # counts: item 1: 4, item 2: 2, item 0: 1
    metrics = popularity_metrics(histories, histories, np.array([1, 0, 3]), 4)
    # target 1 ranks 0, target 0 ranks 2, target 3 (count 0) ranks 3
    assert metrics["popularity/hr_1"] == pytest.approx(1 / 3)
    assert metrics["popularity/hr_5"] == pytest.approx(1.0)
    assert metrics["popularity/ndcg_5"] == pytest.approx((1 + 1 / np.log2(4) + 1 / np.log2(5)) / 3)


def test_output_checks_count_empty_slots_and_coverage():
    top = torch.tensor([[0, 1, -1], [1, 2, 3]])
    checks = output_checks(top, 10)
    assert checks["test/invalid_rate"] == pytest.approx(1 / 6)
    assert checks["test/coverage_10"] == pytest.approx(4 / 10)
