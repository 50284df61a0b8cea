"""DVC stage `resolve`: raw semantic IDs -> unique semantic IDs per modality.

Reads `<paths.codes>/raw/<modality>.parquet` (and the colliding items' distances quantize
saved) and writes `<paths.codes>/final/<modality>.parquet`; the modalities quantize left out
(no item had a vector) stay out, listed again in `final/skipped.json`. The stage raises if
any two items still share an ID.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pipeline.io import tables
from pipeline.config import Params, ResolveStrategy
from pipeline.core.resolve import (
    Resolved, ResolveDists, append, code_stats, collision_groups, reassign, sinkhorn,
)
from pipeline.runtime.stage import stage_main


def run(params: Params) -> dict:
    raw_dir = Path(params.paths.codes) / "raw"
    size = params.quantize.codebook_size
    skipped = tables.read_skipped(raw_dir)
    metrics: dict = {f"skipped/{m}": why for m, why in skipped.items()}
    with tables.atomic_dir(Path(params.paths.codes) / "final") as tmp:
        tables.write_json(skipped, tmp / tables.SKIPPED)
        for modality in sorted(set(params.quantize.methods) - set(skipped)):
            item_ids, codes = tables.read_codes(raw_dir / f"{modality}.parquet")
            levels = codes.shape[1]
            saved = tables.read_resolve_dists(raw_dir, modality, item_ids)
            dists = None if saved is None else ResolveDists(*saved)
            sizes = [max(size, int(codes[:, l].max()) + 1) for l in range(levels)]
            result = resolve_codes(codes, dists, sizes, params.resolve.strategy)
            tables.write_codes(tmp / f"{modality}.parquet", item_ids, result.codes)
            groups = collision_groups(codes)
            metrics |= {
                f"{modality}/collision_rate_before": code_stats(codes, size)["collision_rate"],
                f"{modality}/collision_rate_after": code_stats(result.codes, size)["collision_rate"],
                f"{modality}/colliding_groups": len(groups),
                f"{modality}/largest_group": max((len(g) for g in groups), default=1),
                f"{modality}/items_moved": result.moved,
                f"{modality}/levels": int(result.codes.shape[1]),
                **{f"{modality}/level_{l + 1}/used": int(len(np.unique(result.codes[:, l])))
                   for l in range(result.codes.shape[1])},
            }
    return metrics


def resolve_codes(codes: np.ndarray, dists: ResolveDists | None, sizes: list[int],
                  strategy: ResolveStrategy) -> Resolved:
    """Apply `strategy`; dists: the colliding items' distances, None for imported codes."""
    if strategy is ResolveStrategy.APPEND:
        return append(codes)
    if strategy is ResolveStrategy.REASSIGN:
        return reassign(codes, dists, sizes)
    return sinkhorn(codes, dists, sizes[-1])


def main() -> int:
    return stage_main("resolve", run)


if __name__ == "__main__":
    sys.exit(main())
