"""`rqdino` (images only): MSCGRec §3.2 RQ-DINO, a DINO student/teacher over the image
encoder's trunk with residual quantization inside (no reconstruction loss)."""
from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path

import torch
from torch import nn

from pipeline.config import CheckpointChoice, Params, QuantizeParams, RQDINOParams
from pipeline.core.dino import dino_loss, ema_update, teacher_momentum, update_center
from pipeline.core.resolve import code_stats
from pipeline.encoders import image as image_encoders
from pipeline.encoders.extraction import extract_resumable
from pipeline.encoders.image import ImageEncoder
from pipeline.io import tables
from pipeline.io.images import image_path
from pipeline.models.rqdino import RQDINO, RQDINOConfig, RQDINOHead
from pipeline.quantize.base import (
    Coded, Quantized, distances_of, item_vectors, quantized, with_dists,
)
from pipeline.quantize.views import load_rgb, multicrop, view_batches, view_features
from pipeline.runtime.checkpoint import fingerprint
from pipeline.runtime.devices import resolve_device, resolve_dtype
from pipeline.runtime.errors import UserInputError
from pipeline.runtime.progress import bar


def rqdino(paths: list[str], plain: torch.Tensor, encoder: ImageEncoder, cfg: QuantizeParams,
           seed: int, work: Path) -> tuple[Coded, list[dict]]:
    """MSCGRec §3.2 RQ-DINO: train the quantizing head (and the trunk unless frozen) by DINO
    self-distillation between multi-crop views; the EMA teacher gives the codes.

    paths: N image files; plain: (N, D) trunk features of the un-augmented images (the
    `image_features` table, same encoder). With `freeze_trunk`, `rounds` sets of crops are
    encoded once (resumably, under `work`) and cycled over the epochs.
    """
    p = cfg.rqdino
    device = resolve_device(p.device)
    generator = torch.Generator().manual_seed(seed)
    views = multicrop(encoder, p)
    head = RQDINOHead(RQDINOConfig(encoder.dim, p.hidden, p.latent_dim, cfg.levels,
                                   cfg.codebook_size, p.beta, p.projector_dim, p.prototypes))
    n_views = 2 + p.local_crops
    if p.freeze_trunk:
        bank = [torch.from_numpy(extract_resumable(
            list(range(len(paths))), lambda idx, r=r: view_features(encoder, paths, idx, views, seed, r),
            n_views * encoder.dim, work / f"round_{r}", 32, f"rqdino crops {r + 1}/{p.rounds}"))
            .view(len(paths), n_views, encoder.dim) for r in range(p.rounds)]
        shutil.rmtree(work, ignore_errors=True)     # the rounds' folders are gone; drop the parent
        student = RQDINO(nn.Identity(), head)
    else:
        student = RQDINO(encoder.trunk, head)
        student.trunk.requires_grad_(True)
    plain = plain.to(device)
    student.to(device)
    head.init(plain[torch.randperm(len(plain), generator=generator)[:p.batch_size].to(device)],
              generator)
    teacher = copy.deepcopy(student).requires_grad_(False)
    optimizer = torch.optim.AdamW([w for w in student.parameters() if w.requires_grad], lr=p.lr)
    center = torch.zeros(p.prototypes, device=device)
    total, step = p.epochs * -(-len(paths) // p.batch_size), 0
    best, best_rate, history = None, float("inf"), []
    for epoch in bar(range(p.epochs), desc="quantize rqdino", unit="epoch"):
        student.train()
        sums = {"dino_loss": 0.0, "quant_loss": 0.0}
        for batch in torch.randperm(len(paths), generator=generator).split(p.batch_size):
            if p.freeze_trunk:
                crops = list(bank[epoch % p.rounds][batch].to(device).unbind(dim=1))
            else:
                crops = [v.to(device) for v in view_batches(paths, batch.tolist(), views, seed, epoch)]
            dino, quant, targets = rqdino_step(student, teacher, crops, center, optimizer, p)
            ema_update(teacher, student, teacher_momentum(step, total, p.teacher_momentum))
            center = update_center(center, targets, p.center_momentum)
            step += 1
            sums["dino_loss"] += dino * len(batch)
            sums["quant_loss"] += quant * len(batch)
        features = plain if p.freeze_trunk else _trunk_features(teacher.trunk, encoder, paths, device)
        with torch.no_grad():
            stats = code_stats(teacher.head(features).codes.cpu().numpy(), cfg.codebook_size)
        history.append({"epoch": epoch + 1, **{k: v / len(paths) for k, v in sums.items()}, **stats})
        if stats["collision_rate"] < best_rate or p.checkpoint is CheckpointChoice.LAST:
            best_rate = stats["collision_rate"]
            best = {k: v.detach().clone() for k, v in teacher.state_dict().items()}
    teacher.load_state_dict(best)
    features = plain if p.freeze_trunk else _trunk_features(teacher.trunk, encoder, paths, device)
    with torch.no_grad():
        out = teacher.head(features)
    return with_dists(out.codes, distances_of(teacher.head, features, out.codes)), history


def rqdino_step(student: RQDINO, teacher: RQDINO, crops: list[torch.Tensor], center: torch.Tensor,
                optimizer: torch.optim.Optimizer, p: RQDINOParams) -> tuple[float, float, torch.Tensor]:
    """One optimizer step on V crops (the first two global): the student sees every crop, the
    teacher the global ones. Returns (DINO loss, quantization loss, teacher logits (2, B, P))."""
    outs = [student(v) for v in crops]
    with torch.no_grad():
        targets = torch.stack([teacher(v).logits for v in crops[:2]])
    dino = dino_loss(torch.stack([o.logits for o in outs]), targets, center,
                     p.tau_student, p.tau_teacher)
    quant = torch.stack([o.quant_loss for o in outs]).mean()
    optimizer.zero_grad(set_to_none=True)
    (dino + quant).backward()
    optimizer.step()
    return float(dino.detach()), float(quant.detach()), targets


@torch.no_grad()
def _trunk_features(trunk: nn.Module, encoder: ImageEncoder, paths: list[str],
                    device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """(N, D) trunk features of the un-augmented images (the encoder's own transform)."""
    trunk.eval()
    out = [trunk(torch.stack([encoder.transform(load_rgb(path)) for path in paths[i:i + batch_size]])
                 .to(device, encoder.dtype)).float() for i in range(0, len(paths), batch_size)]
    return torch.cat(out)


def fit(names: list[str], params: Params) -> dict[str, Quantized]:
    """RQ-DINO over the images of the items that have an image vector (rows of items.parquet),
    with the trunk of the `image_features` encoder."""
    (name,) = names
    feat = params.image_features
    if feat.precomputed is not None:
        raise UserInputError("quantize.methods.image is rqdino, which trains on the images "
                             "through the image encoder, but image_features.precomputed is set: "
                             "use rqvae or rqkmeans on precomputed vectors")
    plain, rows = item_vectors(params, name)
    items = tables.read_table(Path(params.paths.ingest) / "items.parquet", tables.ITEMS)
    refs, status = items.column("image_ref").to_pylist(), items.column("image_status").to_pylist()
    cache = Path(params.paths.image_cache)
    paths = [str(image_path(refs[row], status[row], cache)[0]) for row in rows]
    device = resolve_device(params.quantize.rqdino.device)
    encoder = image_encoders.build(feat.encoder, feat.model, feat.pretrained, feat.revision,
                                   device, resolve_dtype(feat.dtype, device))
    work = Path(params.paths.work) / "quantize" / fingerprint(
        dataclasses.asdict(params.quantize.rqdino), dataclasses.asdict(feat), params.seed, paths)
    out, history = rqdino(paths, torch.from_numpy(plain), encoder, params.quantize,
                          params.seed, work)
    return {name: quantized(rows, out, history)}
