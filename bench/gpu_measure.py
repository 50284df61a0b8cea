"""The measurements of bench/gpu_check.py (training and decoding speed, bf16 against float32,
the real train + evaluate stages), on the Instruments split that `gpu_check.py prepare`
writes. Each returns one JSON row."""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SIZES = {"cpu-size": None,        # params.yaml's train.model
         "paper-size": dict(d_model=128, d_ff=1024, layers=4, decoder_layers=4, heads=6,
                            d_kv=64, dropout=0.1, tie_head=False)}


class Options:
    """`run`'s sizes; a dry run on the CPU shrinks them (--device cpu --speed-samples ...)."""
    device = "cuda"
    speed_samples = 40_000        # samples per timed epoch (a seeded subset of Instruments')
    users = 0                     # decoded test users; 0: all


OPTS = Options()


def instruments(work: Path, **train) -> dict:
    """params.yaml on the prepared Instruments split, with these `train:` keys."""
    from instruments_genrec import base_params
    from pipeline.config import with_overrides
    raw = base_params(work / "iq")
    return with_overrides(raw, {f"train.{k}": v for k, v in train.items() if v is not None})


def loaded(work: Path, **train):
    """Instruments params with these `train:` keys, the mscgrec catalogue and the sequences."""
    from pipeline.config import params_from_dict
    from pipeline.genrec.catalog import build_catalog, read_final_codes
    from pipeline.io import tables
    params = params_from_dict(instruments(work, method="mscgrec", **train))
    n_items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS).num_rows
    seqs = tables.read_table(Path(params.paths.ingest) / "sequences.parquet", tables.SEQUENCES)
    codes = read_final_codes(Path(params.paths.codes) / "final", params.train)
    return params, build_catalog(codes, n_items, params.train), seqs


def speed(work: Path, size: str, batch: int, precision="float32", deterministic=True,
          compile=False, attention: str | None = None, profile: bool = False) -> dict:
    """Training samples/s of the real epoch loop over a seeded SPEED_SAMPLES subset, after a
    warm-up epoch over a tenth of it."""
    import torch
    from pipeline.genrec import fit
    from pipeline.genrec.tasks import Samples
    from pipeline.genrec.training import Throughput
    from pipeline.models.genrec import GenRec
    from pipeline.runtime import distributed
    from pipeline.runtime.seeding import seed_everything

    params, catalog, seqs = loaded(work, model=SIZES[size], batch_size=batch, precision=precision,
                                   deterministic=deterministic, compile=compile)
    cfg = params.train
    seed_everything(params.seed, deterministic)
    every = fit.training_samples(catalog, seqs.column("train_items"), cfg.max_history)
    total = len(every["mscgrec"].target)
    world = distributed.World(0, 1, torch.device(OPTS.device))
    model = GenRec(fit.model_config(cfg, catalog)).to(world.device)
    forward = torch.compile(model) if compile else model
    optimizer = torch.optim.AdamW(fit.optimizer_groups(model, cfg.weight_decay), lr=cfg.lr,
                                  fused=world.device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    rows = torch.randperm(total, generator=torch.Generator().manual_seed(0))
    timings = []
    for n in (OPTS.speed_samples // 10, OPTS.speed_samples):
        subset = {"mscgrec": Samples(*(x[rows[:n]] for x in every["mscgrec"]))}
        data = fit.TrainData.place(subset, catalog, world.device)
        gens = (torch.Generator().manual_seed(0), torch.Generator(world.device).manual_seed(0)
                if world.device.type == "cuda" else None)
        timer = Throughput()
        start = time.perf_counter()
        with _attention(attention), _profiler(profile and len(timings) == 1) as prof:
            sums = fit.train_epoch(forward, model, data, cfg, gens, optimizer, scheduler, None,
                                   world, timer, 1)
        timings.append((time.perf_counter() - start, timer.rate, sums["train/loss"]))
    seconds, rate, loss = timings[-1]
    extra = {"profile": _top(prof, -(-OPTS.speed_samples // batch))} if profile else {}
    return {"model": size, "batch_size": batch, "precision": precision, **extra,
            "attention": attention or "default",
            "deterministic": deterministic, "compile": compile, "samples_s": round(rate),
            "epoch_seconds": round(total / rate, 2), "epoch_samples": total,
            "warmup_seconds": round(timings[0][0], 1), "loss": round(loss, 4)}


def _attention(backend: str | None):
    """SDPA limited to one backend (`efficient`, `math`, `cudnn`, `flash`), or no limit."""
    from contextlib import nullcontext

    from torch.nn.attention import SDPBackend, sdpa_kernel
    names = {"efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH,
             "cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}
    return sdpa_kernel([names[backend]]) if backend else nullcontext()


def _profiler(on: bool):
    from contextlib import nullcontext

    import torch
    kinds = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    return torch.profiler.profile(activities=kinds) if on else nullcontext()


def _top(prof, steps: int, n: int = 25) -> dict:
    """Per-step host and device milliseconds of the profiled epoch, and its top ops by self
    host time."""
    events = prof.key_averages()
    host = sum(e.self_cpu_time_total for e in events) / 1e3 / steps
    device = sum(getattr(e, "self_device_time_total", 0) for e in events) / 1e3 / steps
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:n]
    return {"host_ms_per_step": round(host, 2), "device_ms_per_step": round(device, 2),
            "top": [(e.key, e.count // steps, round(e.self_cpu_time_total / 1e3 / steps, 3),
                     round(getattr(e, "self_device_time_total", 0) / 1e3 / steps, 3))
                    for e in top]}


def loss_check(work: Path) -> dict:
    """The constrained loss of one paper-size model on the same 8 batches of 1,024, under
    bf16 autocast and in float32."""
    import torch
    from pipeline.genrec import fit
    from pipeline.genrec.training import epoch_steps, train_step
    from pipeline.models.genrec import GenRec

    losses = {}
    for precision in ("bfloat16", "float32"):
        params, catalog, seqs = loaded(work, model=SIZES["paper-size"], precision=precision,
                                       modality_dropout=0.0)
        cfg, device = params.train, torch.device(OPTS.device)
        data = fit.TrainData.place(fit.training_samples(catalog, seqs.column("train_items"), 20),
                                   catalog, device)
        torch.manual_seed(0)
        model = GenRec(fit.model_config(cfg, catalog)).to(device).eval()
        steps = epoch_steps(data.lengths, data.catalog.train_tasks, 1024,
                            torch.Generator().manual_seed(0), device)[:8]
        with torch.no_grad():
            losses[precision] = torch.stack([
                train_step(model, data.catalog, cfg, s, data.samples["mscgrec"], None,
                           device)["loss"] for s in steps]).cpu()
    diff = (losses["bfloat16"] - losses["float32"]).abs() / losses["float32"]
    return {"loss_float32": round(float(losses["float32"].mean()), 5),
            "loss_bfloat16": round(float(losses["bfloat16"].mean()), 5),
            "max_relative_difference": round(float(diff.max()), 6)}


def decode_speed(work: Path, size: str, batch: int) -> dict:
    """Users/s of the fused, trie-constrained beam search (beam 20) over every test user, with
    a randomly initialised model (the search's work does not depend on the weights)."""
    import torch
    from pipeline.genrec.decoding import recommend_users
    from pipeline.genrec.fit import model_config
    from pipeline.genrec.tasks import history_samples
    from pipeline.models.genrec import GenRec

    params, catalog, seqs = loaded(work, model=SIZES[size])
    cfg, device, n_items = params.train, torch.device(OPTS.device), catalog.n_items
    samples = history_samples(seqs.column("test_history"), seqs.column("test_item").to_numpy(),
                              cfg.max_history, n_items)
    if OPTS.users:
        samples = type(samples)(samples.history[:OPTS.users], samples.target[:OPTS.users])
    torch.manual_seed(0)
    model = GenRec(model_config(cfg, catalog)).to(device)
    catalog = catalog.to(device)
    recommend_users(model, catalog, samples.history[:batch], 20, "trie", "mean", 20, batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    recommend_users(model, catalog, samples.history, 20, "trie", "mean", 20, batch)
    seconds = time.perf_counter() - start
    return {"model": size, "batch_size": batch, "users": len(samples.target),
            "decode_seconds": round(seconds, 2), "users_s": round(len(samples.target) / seconds)}


def stage_run(params_raw: dict) -> dict:
    """The real train and evaluate stages, timed (bench/stage_runs.py)."""
    from stage_runs import train_and_evaluate
    result = train_and_evaluate(params_raw)
    keys = ("hr_1", "hr_5", "hr_10", "ndcg_5", "ndcg_10")
    test = result["test"]
    return {**{k: round(test[f"test/{k}"], 4) for k in keys},
            **{f"{k}_masked": round(test[f"test_masked/{k}"], 4) for k in ("hr_10", "ndcg_10")},
            "sasrec_hr_10": round(test["sasrec/hr_10"], 4),
            "sasrec_ndcg_10": round(test["sasrec/ndcg_10"], 4),
            "train_minutes": result["train_minutes"],
            "evaluate_seconds": result["evaluate_seconds"],
            "samples_s": result["train"]["timing/samples_per_s"],
            "epochs_run": result["train"]["epochs_run"],
            "best_epoch": result["train"]["best_epoch"],
            "users": test["users"]}


