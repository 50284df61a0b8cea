"""What the bench scripts share: one training run through the real stages, timed."""
from __future__ import annotations

import time

from pipeline.config import params_from_dict
from pipeline.runtime.seeding import seed_everything
from pipeline.stages import evaluate, train


def train_and_evaluate(raw: dict) -> dict:
    """Seed, run the real `train` then `evaluate` stage on the params dict `raw`; returns
    their metrics and wall times."""
    params = params_from_dict(raw)
    seed_everything(params.seed)
    start = time.perf_counter()
    trained = train.run(params)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    tested = evaluate.run(params)
    return {"train": trained, "test": tested, "train_minutes": round(train_s / 60, 1),
            "evaluate_seconds": round(time.perf_counter() - start, 1)}
