"""One call that seeds every source of randomness the pipeline uses and makes torch pick
deterministic kernels."""
from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python's `random`, numpy's global generator and torch (CPU and CUDA), and ask
    torch for deterministic algorithms (or, with `deterministic=False`, let it pick the
    fastest kernels: the `train` stage's `train.deterministic`).

    The last matters on the CPU too: with more than one thread, the backward pass of an
    indexing lookup (an RQ-VAE's codebook rows, an embedding table) accumulates gradients in
    an order that varies from run to run, so a two-thread `quantize` gave other codes on every
    run; the deterministic kernels give the same bits as one thread, at the same speed
    (BENCHMARKS.md, "Re-runs"). `warn_only`: an op with no deterministic kernel (some CUDA
    ones) warns instead of stopping the stage."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    # cuBLAS is deterministic only with a fixed workspace, set before CUDA starts.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch  # imported here: stages that never touch torch should not pay for it at import

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
