"""Multi-crop views of item images for RQ-DINO, and their trunk features.

Two global crops at the encoder's input size and `local_crops` small crops, each with a
horizontal flip and a brightness/contrast/saturation jitter. Hue is never jittered: a
product's colour is a property of the item, not noise to be invariant to. The crops of item
`i` in round `r` are a pure function of (seed, r, i), whatever the batching.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from pipeline.config import RQDINOParams
from pipeline.encoders.image import ImageEncoder

Views = Callable[[Image.Image, int], list[torch.Tensor]]


def multicrop(encoder: ImageEncoder, p: RQDINOParams) -> Views:
    """(image, seed) -> 2 global (3, size, size) crops then `local_crops` (3, local, local);
    a fixed-size trunk (ViT) gets its local crops at its input size."""
    def chain(size: int, scale: tuple[float, float]) -> transforms.Compose:
        jitter = transforms.ColorJitter(p.color_jitter, p.color_jitter, p.color_jitter, 0.0)
        return transforms.Compose([
            transforms.RandomResizedCrop(size, scale=scale), transforms.RandomHorizontalFlip(),
            transforms.RandomApply([jitter], p=0.8), transforms.ToTensor(), encoder.normalize])

    global_crop = chain(encoder.size, (p.global_scale_min, 1.0))
    local_size = encoder.size if encoder.fixed_size else p.local_size
    local_crop = chain(local_size, (p.local_scale_min, p.global_scale_min))

    def views(image: Image.Image, seed: int) -> list[torch.Tensor]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return [global_crop(image) for _ in range(2)] + \
                [local_crop(image) for _ in range(p.local_crops)]
    return views


def view_seed(seed: int, round_: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, round_, index]).generate_state(1)[0])


def load_rgb(path: str) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def view_batches(paths: Sequence[str], indices: Sequence[int], views: Views, seed: int,
                 round_: int) -> list[torch.Tensor]:
    """The views of a batch of images, stacked per view: V tensors (B, 3, H_v, W_v)."""
    per_item = [views(load_rgb(paths[i]), view_seed(seed, round_, i)) for i in indices]
    return [torch.stack(column) for column in zip(*per_item)]


@torch.inference_mode()
def view_features(encoder: ImageEncoder, paths: Sequence[str], indices: Sequence[int],
                  views: Views, seed: int, round_: int) -> np.ndarray:
    """Frozen-trunk features of every view: (B, V * D) float32, view-major per row."""
    stacks = view_batches(paths, indices, views, seed, round_)
    feats = [encoder.trunk(s.to(encoder.device, encoder.dtype)).float().cpu() for s in stacks]
    return torch.stack(feats, dim=1).reshape(len(indices), -1).numpy()
