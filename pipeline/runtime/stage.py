"""The shared `main()` of every stage: load params, seed, run, write the metrics file.

A stage's `run` returns its metrics; keys under `timing/` (seconds, throughput, minutes per
epoch) change on every run, so they go to `<paths.costs>/<stage>.json`, outside git and
`dvc.lock`, and the DVC metrics file holds results only."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.config import Params, load_params
from pipeline.io.tables import write_json
from pipeline.runtime.errors import UserInputError
from pipeline.runtime.seeding import seed_everything

# Errors that mean "the input or the params are wrong": shown as one line, no traceback.
USER_ERRORS = (UserInputError, FileNotFoundError)
TIMING = "timing/"


def split_timings(metrics: dict) -> tuple[dict, dict]:
    """(results, timings): the `timing/` keys apart from the rest."""
    timings = {k: v for k, v in metrics.items() if k.startswith(TIMING)}
    return {k: v for k, v in metrics.items() if k not in timings}, timings


def stage_main(name: str, run: Callable[[Params], dict], params_path: str = "params.yaml") -> int:
    """Run stage `name`; its results go to `<paths.metrics>/<name>.json`, its timings to
    `<paths.costs>/<name>.json` (written by rank 0 only under torchrun). Returns an exit code."""
    try:
        params = load_params(params_path)
        seed_everything(params.seed)
        metrics = run(params)
    except USER_ERRORS as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") != "0":
        return 0                       # under torchrun only the first process writes
    results, timings = split_timings(metrics)
    write_json(results, Path(params.paths.metrics) / f"{name}.json")
    write_json(timings, Path(params.paths.costs) / f"{name}.json")
    print(f"{name}: done; metrics in {Path(params.paths.metrics) / f'{name}.json'}, timings in "
          f"{Path(params.paths.costs) / f'{name}.json'}")
    return 0
