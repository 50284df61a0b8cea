"""One call that seeds every source of randomness the pipeline uses."""
from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    import torch  # imported here: stages that never touch torch should not pay for it at import

    torch.manual_seed(seed)
