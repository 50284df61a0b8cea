"""PNG figures written next to the metrics: codebook usage per modality and level."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def codebook_usage_plots(codes: np.ndarray, size: int, modality: str, folder: Path) -> list[Path]:
    """One bar chart per level of how many items use each code, sorted by count.

    codes: (N, L) integer codes. Returns the paths written (`<modality>_level_<l>.png`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for level in range(codes.shape[1]):
        counts = np.sort(np.bincount(codes[:, level], minlength=size))[::-1]
        fig, ax = plt.subplots(figsize=(6, 2.5), dpi=100)
        ax.bar(np.arange(len(counts)), counts, width=1.0, color="#4c72b0")
        ax.set_title(f"{modality}: level {level + 1} — {int((counts > 0).sum())}/{size} codes used")
        ax.set_xlabel("code (sorted by use)")
        ax.set_ylabel("items")
        fig.tight_layout()
        path = folder / f"{modality}_level_{level + 1}.png"
        fig.savefig(path, metadata={"Software": None})
        plt.close(fig)
        paths.append(path)
    return paths
