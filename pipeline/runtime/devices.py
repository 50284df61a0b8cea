"""Device and dtype choice from params: `auto` means CUDA when torch sees one."""
from __future__ import annotations

import torch

from pipeline.runtime.errors import FeatureError


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when there is one; `cuda` without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FeatureError("device 'cuda' requested but torch sees no GPU; use 'auto' or 'cpu'")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """float32 | bfloat16 | float16 -> the torch dtype; float16 on the CPU is an error."""
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    if dtype is torch.float16 and device.type == "cpu":
        raise FeatureError("dtype float16 is not supported on the CPU; use float32 or bfloat16")
    return dtype
