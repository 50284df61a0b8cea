"""The trained recommender as an MLflow pyfunc model.

Input: a DataFrame with a `history` column (a list of item ids per row, oldest first).
Output: a DataFrame with `items` (top-K item ids) and `scores` (their fused log-probabilities);
`params={"k": K}` sets K (default 10). It wraps `pipeline.serve.recommender.Recommender`, so the
MLflow model answers exactly like the CLI.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from pipeline.config import load_params

REQUIREMENTS = ["torch", "transformers", "pyarrow", "numpy", "pandas", "pyyaml", "tqdm"]


class RecommenderModel(mlflow.pyfunc.PythonModel):
    def __init__(self, beam: int = 20, fusion: str = "mean") -> None:
        self.beam, self.fusion = beam, fusion

    def load_context(self, context) -> None:
        from pipeline.serve.recommender import Recommender

        self.recommender = Recommender(context.artifacts["model"], context.artifacts["items"],
                                       "cpu", self.beam, self.fusion)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        k = int((params or {}).get("k", 10))
        histories = [[int(i) for i in h] for h in model_input["history"]]
        recs = self.recommender.recommend_many(histories, k)
        return pd.DataFrame({"items": [[r.item_id for r in row] for row in recs],
                             "scores": [[r.score for r in row] for row in recs]})


def signature():
    """Input `history` (list of item ids), output `items` + `scores`, param `k` (default 10)."""
    from mlflow.models import infer_signature

    return infer_signature(pd.DataFrame({"history": [[3, 1, 4]]}),
                           pd.DataFrame({"items": [[5, 9]], "scores": [[-1.5, -2.5]]}),
                           params={"k": 10})


def log_recommender(mlflow, run_id: str, repo: Path, name: str = "mmgenrec") -> str:
    """Log the `<paths.model>` folder + the items table as a pyfunc model in run `run_id` and
    register it as `name`. Returns the model URI."""
    params = load_params(repo / "params.yaml")
    active = mlflow.active_run()
    context = contextlib.nullcontext() if active and active.info.run_id == run_id \
        else mlflow.start_run(run_id=run_id)
    with context:
        info = mlflow.pyfunc.log_model(
            name="recommender", python_model=RecommenderModel(params.evaluate.beam,
                                                              str(params.evaluate.fusion)),
            artifacts={"model": str(repo / params.paths.model),
                       "items": str(repo / params.paths.ingest / "items.parquet")},
            code_paths=[str(Path(__file__).resolve().parents[1])], pip_requirements=REQUIREMENTS,
            signature=signature(), registered_model_name=name)
    return info.model_uri
