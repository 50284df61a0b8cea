"""DVC stage `sasrec`: SASRec trained with full-softmax cross-entropy on the training split.

Only `train_items` enter training: the validation target drives early stopping (NDCG@10) and
the test target is used once, for the reported baseline. Outputs: the checkpoint
(`<paths.sasrec>/model.safetensors` + `model.json`, config included) and the learned item table as the collaborative
modality (`<paths.features>/collab.parquet`). Training resumes from `<paths.work>/sasrec`
after an interruption.
"""
from __future__ import annotations

import sys
from pathlib import Path


from pipeline.baselines.sasrec import evaluate, fit, save
from pipeline.config import Params
from pipeline.io import tables
from pipeline.io.embeddings import load_precomputed, write_embeddings
from pipeline.models.sasrec import SASRec, SASRecConfig
from pipeline.runtime.devices import resolve_device
from pipeline.runtime.stage import stage_main


def run(params: Params) -> dict:
    cfg = params.sasrec
    seqs = tables.read_table(Path(params.paths.ingest) / "sequences.parquet", tables.SEQUENCES)
    items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS)
    n_items = items.num_rows
    train = seqs.column("train_items").to_pylist()
    valid_item = seqs.column("valid_item").to_numpy()
    test_hist = [t + [v] for t, v in zip(train, valid_item.tolist())]
    device = resolve_device(cfg.device)
    model_cfg = SASRecConfig(n_items, cfg.hidden, cfg.layers, cfg.heads, cfg.dropout, cfg.max_len)
    model = SASRec(model_cfg).to(device)
    best_state, history = fit(model, train, valid_item, cfg, device, params.seed,
                              Path(params.paths.work) / "sasrec")
    model.load_state_dict(best_state)
    metrics = evaluate(model, test_hist, seqs.column("test_item").to_numpy(), cfg.mask_history,
                       device, "test")
    metrics |= {"best_epoch": history["best_epoch"], "epochs_run": history["epochs_run"],
                "valid/ndcg_10": history["best_ndcg"]}
    with tables.atomic_dir(params.paths.sasrec) as folder:
        save(folder, best_state, model_cfg, metrics)
    if cfg.precomputed is not None:
        vectors, status = load_precomputed(cfg.precomputed, cfg.precomputed_ids,
                                           items.column("original_id").to_pylist(),
                                           tables.read_source_rows(params.paths.ingest))
    else:
        vectors, status = model.item_embeddings().cpu().numpy(), ["ok"] * n_items
    write_embeddings(Path(params.paths.features) / "collab.parquet", vectors, status)
    return metrics


def main() -> int:
    return stage_main("sasrec", run)


if __name__ == "__main__":
    sys.exit(main())
