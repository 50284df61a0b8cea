"""The trained recommender as an MLflow pyfunc model.

Input: a DataFrame with a `history` column (a list of item ids per row, oldest first).
Output: a DataFrame with `items` (top-K item ids) and `scores` (their fused log-probabilities);
`params={"k": K}` sets K (default 10). It wraps `pipeline.serve.recommender.Recommender`, so the
MLflow model answers exactly like the CLI.
"""
from __future__ import annotations

import contextlib
from numbers import Integral
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from pipeline.config import load_params
from pipeline.runtime.errors import UserInputError

REQUIREMENTS = ["torch", "transformers", "pyarrow", "numpy", "pandas", "pyyaml", "tqdm"]


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """Built by `pyfunc_code.py` when MLflow loads the model; `beam` and `fusion` come from
    the logged model config."""

    def load_context(self, context) -> None:
        from pipeline.serve.recommender import Recommender

        config = context.model_config or {}
        self.recommender = Recommender(context.artifacts["model"], context.artifacts["items"],
                                       "cpu", int(config.get("beam", 20)),
                                       str(config.get("fusion", "mean")))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        try:
            k = (params or {}).get("k", 10)
            if isinstance(k, bool) or not isinstance(k, Integral):
                raise UserInputError(f"k must be an integer, got {k!r}")
            histories = [_history(row, h) for row, h in enumerate(model_input["history"])]
            recs = self.recommender.recommend_many(histories, int(k))
        except UserInputError as exc:
            # The scoring server answers 400 with this message and goes on serving.
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        return pd.DataFrame({"items": [[r.item_id for r in row] for row in recs],
                             "scores": [[r.score for r in row] for row in recs]})


def _history(row: int, history) -> list:
    """One row's history as a list; anything but a list of ids is an error naming the row."""
    if isinstance(history, np.ndarray):
        history = history.tolist()
    if not isinstance(history, (list, tuple)):
        raise UserInputError(f"history of row {row} must be a list of item ids, "
                             f"got {type(history).__name__} {history!r}")
    return list(history)


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
        # "Models from code": MLflow stores and later runs pyfunc_code.py instead of
        # pickling a Python object, so loading the model unpickles nothing.
        info = mlflow.pyfunc.log_model(
            name="recommender", python_model=str(Path(__file__).with_name("pyfunc_code.py")),
            model_config={"beam": params.evaluate.beam, "fusion": str(params.evaluate.fusion)},
            artifacts={"model": str(repo / params.paths.model),
                       "items": str(repo / params.paths.ingest / "items.parquet")},
            code_paths=[str(Path(__file__).resolve().parents[1])], pip_requirements=REQUIREMENTS,
            signature=signature(), registered_model_name=name)
    return info.model_uri
