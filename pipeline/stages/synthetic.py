"""DVC stage `synthetic`: write the embedded default dataset (a generated shop) as Amazon 2018
raw files into `paths.synthetic`. It is read by `ingest` when `dataset.source: synthetic`."""
from __future__ import annotations

import sys

from pipeline.config import Params
from pipeline.runtime.stage import stage_main
from pipeline.sources import synthetic
from pipeline.io.tables import atomic_dir


def run(params: Params) -> dict:
    cfg = params.synthetic
    with atomic_dir(params.paths.synthetic) as tmp:
        counts = synthetic.generate(tmp, cfg.name, cfg.n_items, cfg.n_users, cfg.min_len,
                                    cfg.max_len, cfg.image_size, params.seed)
    return {f"written/{key}": value for key, value in counts.items()}


def main() -> int:
    return stage_main("synthetic", run)


if __name__ == "__main__":
    sys.exit(main())
