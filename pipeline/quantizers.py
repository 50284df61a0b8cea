"""Training of the learned quantizers: RQ-KMeans, RQ-VAE, MACRec's joint cross-modal RQ-VAEs
and MSCGRec's RQ-DINO.

Each returns the codes of its inputs as a `QuantizeOutput` and one record per epoch.
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipeline.config import CheckpointChoice, QuantizeConfig, RQDINOParams
from pipeline.core.contrastive import info_nce, pseudo_label_nce
from pipeline.core.dino import dino_loss, ema_update, teacher_momentum, update_center
from pipeline.core.kmeans import QuantizeOutput, kmeans, residual_assign, residual_kmeans
from pipeline.core.resolve import code_stats
from pipeline.dino_views import load_rgb, multicrop, view_batches, view_features
from pipeline.encoders.image import ImageEncoder
from pipeline.errors import UserInputError
from pipeline.features import extract_resumable, resolve_device
from pipeline.models.rqdino import RQDINO, RQDINOConfig, RQDINOHead
from pipeline.models.rqvae import RQVAE, RQVAEConfig


def rqkmeans(x: torch.Tensor, cfg: QuantizeConfig, generator: torch.Generator,
              name: str) -> tuple[QuantizeOutput, list[dict]]:
    books = residual_kmeans(x, cfg.levels, cfg.codebook_size, generator, cfg.kmeans_iters)
    return residual_assign(x, books), []


def rqvae(x: torch.Tensor, cfg: QuantizeConfig, generator: torch.Generator,
           name: str) -> tuple[QuantizeOutput, list[dict]]:
    """Train an RQ-VAE; keep the epoch with the fewest raw collisions, or the last one.
    Returns the codes and one record per epoch (losses, collision rate, code usage)."""
    p = cfg.rqvae
    device = resolve_device(p.device.value)
    model = RQVAE(RQVAEConfig(x.shape[1], p.hidden, p.latent_dim, cfg.levels,
                              cfg.codebook_size, p.beta)).to(device)
    x = x.to(device)
    first = torch.randperm(len(x), generator=generator)[:p.batch_size].to(device)
    model.init_codebooks(x[first], generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr)
    best, best_rate, history = None, float("inf"), []
    for epoch in tqdm(range(p.epochs), desc=f"quantize {name}", unit="epoch", disable=None):
        model.train()
        recon_sum = quant_sum = 0.0
        for batch in torch.randperm(len(x), generator=generator).split(p.batch_size):
            out = model(x[batch.to(device)])
            recon = (out.recon - x[batch.to(device)]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            (recon + out.quant_loss).backward()
            optimizer.step()
            recon_sum += recon.item() * len(batch)
            quant_sum += out.quant_loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            stats = code_stats(model(x).codes.cpu().numpy(), cfg.codebook_size)
        rate = stats["collision_rate"]
        history.append({"epoch": epoch + 1, "recon_loss": recon_sum / len(x),
                        "quant_loss": quant_sum / len(x), **stats})
        if rate < best_rate or p.checkpoint is CheckpointChoice.LAST:
            best_rate = rate
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best)
    model.eval()
    with torch.no_grad():
        out = model(x)
        return QuantizeOutput(out.codes.cpu(), out.quantized.cpu(), model.distances(x).cpu()), history


def macrec(inputs: dict[str, tuple[torch.Tensor, np.ndarray]], cfg: QuantizeConfig,
           generator: torch.Generator) -> dict[str, tuple[QuantizeOutput, list[dict]]]:
    """MACRec (AAAI 2026) §3.2: two RQ-VAEs (text, image) trained jointly.

    inputs: modality -> ((N_m, D_m) standardised vectors, (N_m,) item ids). Besides each
    RQ-VAE's own loss, items present in both modalities add (a) from level
    `contrast_from_level` on, an InfoNCE on each modality's L2-normalised residuals whose
    positives are the in-batch items in the same k-means cluster of the *other* modality, both
    directions, weight `contrast_weight`; (b) a symmetric InfoNCE aligning the two quantized
    latents of the same item, weight `align_weight`. The checkpoint is chosen on the mean raw
    collision rate of the two modalities.
    """
    if len(inputs) != 2:
        raise UserInputError("quantize.methods: macrec quantizes two modalities jointly (text and "
                             f"image); it is set for {sorted(inputs)}")
    m, p = cfg.macrec, cfg.rqvae
    device = resolve_device(p.device.value)
    names = sorted(inputs)
    xs = {n: inputs[n][0].to(device) for n in names}
    both = np.intersect1d(inputs[names[0]][1], inputs[names[1]][1])
    rows = {n: torch.from_numpy(np.searchsorted(inputs[n][1], both)).to(device) for n in names}
    if len(both) < 2:
        raise UserInputError("macrec needs items that have both modalities; fewer than 2 do")
    labels = {}
    for n in names:  # pseudo-labels: k-means on each modality's input vectors
        centroids = kmeans(xs[n], min(m.clusters, len(xs[n])), generator, cfg.kmeans_iters)
        labels[n] = torch.cdist(xs[n], centroids).argmin(dim=1)
    models = {n: RQVAE(RQVAEConfig(xs[n].shape[1], p.hidden, p.latent_dim, cfg.levels,
                                   cfg.codebook_size, p.beta)).to(device) for n in names}
    for n in names:
        models[n].init_codebooks(xs[n][torch.randperm(len(xs[n]), generator=generator)[:p.batch_size]
                                       .to(device)], generator)
    params = [w for model in models.values() for w in model.parameters()]
    optimizer = torch.optim.AdamW(params, lr=p.lr)
    a, b = names
    best, best_rate, history = None, float("inf"), {n: [] for n in names}
    for epoch in tqdm(range(p.epochs), desc="quantize macrec", unit="epoch", disable=None):
        for model in models.values():
            model.train()
        sums = {"recon": 0.0, "contrast": 0.0, "align": 0.0}
        for batch in torch.randperm(len(both), generator=generator).split(p.batch_size):
            batch = batch.to(device)
            outs = {n: models[n](xs[n][rows[n][batch]]) for n in names}
            recon = sum((outs[n].recon - xs[n][rows[n][batch]]).pow(2).mean() + outs[n].quant_loss
                        for n in names)
            contrast = sum(
                pseudo_label_nce(outs[a].residuals[level], labels[b][rows[b][batch]], m.tau)
                + pseudo_label_nce(outs[b].residuals[level], labels[a][rows[a][batch]], m.tau)
                for level in range(m.contrast_from_level - 1, cfg.levels))
            align = info_nce(outs[a].quantized, outs[b].quantized, m.tau)
            loss = recon + m.contrast_weight * contrast + m.align_weight * align
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for key, value in (("recon", recon), ("contrast", contrast), ("align", align)):
                sums[key] += float(value.detach()) * len(batch)
        rates = []
        for n in names:
            models[n].eval()
            with torch.no_grad():
                stats = code_stats(models[n](xs[n]).codes.cpu().numpy(), cfg.codebook_size)
            rates.append(stats["collision_rate"])
            history[n].append({"epoch": epoch + 1, **{f"{k}_loss": v / len(both)
                                                      for k, v in sums.items()}, **stats})
        if np.mean(rates) < best_rate or p.checkpoint is CheckpointChoice.LAST:
            best_rate = float(np.mean(rates))
            best = {n: {k: v.detach().clone() for k, v in models[n].state_dict().items()}
                    for n in names}
    out = {}
    for n in names:
        models[n].load_state_dict(best[n])
        models[n].eval()
        with torch.no_grad():
            res = models[n](xs[n])
            out[n] = (QuantizeOutput(res.codes.cpu(), res.quantized.cpu(),
                                     models[n].distances(xs[n]).cpu()), history[n])
    return out


def rqdino(paths: list[str], plain: torch.Tensor, encoder: ImageEncoder, cfg: QuantizeConfig,
           seed: int, work: Path) -> tuple[QuantizeOutput, list[dict]]:
    """MSCGRec §3.2 RQ-DINO: train the quantizing head (and the trunk unless frozen) by DINO
    self-distillation between multi-crop views; the EMA teacher gives the codes.

    paths: N image files; plain: (N, D) trunk features of the un-augmented images (the
    `image_features` table, same encoder). With `freeze_trunk`, `rounds` sets of crops are
    encoded once (resumably, under `work`) and cycled over the epochs.
    """
    p = cfg.rqdino
    device = resolve_device(p.device.value)
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
    for epoch in tqdm(range(p.epochs), desc="quantize rqdino", unit="epoch", disable=None):
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
        return QuantizeOutput(out.codes.cpu(), teacher.head.quantized(features).cpu(),
                              teacher.head.distances(features).cpu()), history


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
