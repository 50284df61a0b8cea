"""The shared `main()` of every stage: load params, seed, run, write the metrics file."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.config import Params, load_params
from pipeline.runtime.errors import UserInputError
from pipeline.runtime.seeding import seed_everything
from pipeline.io.tables import write_json

# Errors that mean "the input or the params are wrong": shown as one line, no traceback.
USER_ERRORS = (UserInputError, FileNotFoundError)


def stage_main(name: str, run: Callable[[Params], dict], params_path: str = "params.yaml") -> int:
    """Run stage `name`; its metrics go to `<paths.metrics>/<name>.json` (written by rank 0 only
    under torchrun). Returns an exit code."""
    try:
        params = load_params(params_path)
        seed_everything(params.seed)
        metrics = run(params)
    except USER_ERRORS as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") != "0":
        return 0                       # under torchrun only the first process writes
    write_json(metrics, Path(params.paths.metrics) / f"{name}.json")
    print(f"{name}: done; metrics in {Path(params.paths.metrics) / f'{name}.json'}")
    return 0
