"""DVC stage `train`: unique semantic IDs + training sequences -> generative recommender.

Every prefix of every training sequence is a sample (history capped at `max_history`); the
alignment tasks add one sample per item. Modalities the dataset has no semantic IDs of are
left out of the method's tasks, each with a line in the log and in `left_out` of the metrics. Early stopping on the validation HR@10 of every
user (or of `valid_users` sampled users), decoded exactly as the test is (trie-constrained
beam search, modality fusion). Outputs: `<paths.model>/model.safetensors` + `model.json`
(weights, model config, train params and the semantic IDs, so the recommender rebuilds without
params.yaml; see `pipeline.genrec.checkpoint`), per-epoch curves in
`<paths.plots>/train/epochs.json`. An interrupted run resumes from its last finished epoch. Under `torchrun
--nproc_per_node N -m pipeline.stages.train` the stage trains data-parallel (DDP) on N
processes (GPUs, or gloo processes on the CPU).
"""
from __future__ import annotations

import sys
from pathlib import Path

from pipeline.config import Params
from pipeline.genrec.catalog import build_catalog, method_tasks, read_final_codes
from pipeline.genrec.checkpoint import save_model
from pipeline.genrec.fit import fit, model_config, training_samples, valid_sample
from pipeline.io import tables
from pipeline.models.genrec import GenRec
from pipeline.runtime import distributed
from pipeline.runtime.devices import resolve_device
from pipeline.runtime.memory import keep_freed_memory
from pipeline.runtime.seeding import seed_everything
from pipeline.runtime.stage import stage_main


def run(params: Params) -> dict:
    cfg = params.train
    # Model init and dropout draw from torch's global RNG.
    seed_everything(params.seed, cfg.deterministic)
    world = distributed.start(resolve_device(cfg.device))
    try:
        return _run(params, world)
    finally:
        distributed.stop(world)


def _run(params: Params, world: distributed.World) -> dict:
    cfg = params.train
    n_items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS).num_rows
    seqs = tables.read_table(Path(params.paths.ingest) / "sequences.parquet", tables.SEQUENCES)
    codes = read_final_codes(Path(params.paths.codes) / "final", cfg)
    final = Path(params.paths.codes) / "final"
    left_out = [f"{m}: {why}" for m, why in tables.read_skipped(final).items()]
    left_out += method_tasks(cfg, set(codes), {p.stem for p in final.glob("*.parquet")})[2]
    for line in left_out if world.main else ():
        print(f"train: {line}")
    catalog = build_catalog(codes, n_items, cfg)
    samples = training_samples(catalog, seqs.column("train_items"), cfg.max_history)
    valid = valid_sample(catalog, seqs, cfg, params.seed)
    model_cfg = model_config(cfg, catalog)
    model = GenRec(model_cfg).to(world.device)
    best_state, history, speed = fit(model, catalog, cfg, samples, valid, params.seed,
                                    Path(params.paths.work) / "train", world)
    best = max(history, key=lambda h: h["valid/hr_10"])
    if world.main:
        with tables.atomic_dir(params.paths.model) as folder:
            save_model(folder, best_state, model_cfg, cfg, n_items, codes)
        # The curve holds results only; the minutes go with the timings (stage_main).
        tables.write_json([{k: v for k, v in h.items() if k != "train_minutes"} for h in history],
                          Path(params.paths.plots) / "train" / "epochs.json")
    return {**{k: v for k, v in best.items() if k.startswith("valid/")},
            "best_epoch": best["epoch"], "epochs_run": len(history),
            "train/samples": sum(len(s.target) for s in samples.values()),
            "train/processes": world.size, "timing/samples_per_s": round(speed, 1),
            "left_out": left_out, "modalities": sorted(codes),
            "timing/epoch_minutes": [h["train_minutes"] for h in history],
            "params": sum(p.numel() for p in model.parameters())}


def main() -> int:
    keep_freed_memory()              # in the stage's own process (tests call run() in pytest's)
    return stage_main("train", run)


if __name__ == "__main__":
    sys.exit(main())
