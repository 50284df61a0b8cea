"""The `evaluate` stage's report: a markdown table and a bar chart that put the generative
model beside the popularity and SASRec baselines, on the same test users."""
from __future__ import annotations

from pathlib import Path

from pipeline.config import EvaluateParams, TrainParams
from pipeline.io.tables import atomic_path

COLUMNS = (("HR@1", "hr_1"), ("HR@5", "hr_5"), ("HR@10", "hr_10"), ("NDCG@5", "ndcg_5"),
           ("NDCG@10", "ndcg_10"))


def write_report(folder: Path, metrics: dict[str, float], train: TrainParams,
                 cfg: EvaluateParams) -> None:
    """`<folder>/evaluate.md` and `<folder>/evaluate.png` from the stage's metrics."""
    rows = {f"generative ({train.method})": "test", "popularity": "popularity",
            "SASRec": "sasrec"}
    lines = [
        f"# Evaluation on {metrics['users']:,} test users", "",
        f"Full-catalogue ranking, one held-out item per user, every model given the user's "
        f"last {metrics['history_items']} items. Generative model: `{train.method}`, "
        f"trie-constrained beam {cfg.beam} per decoded modality, `{cfg.fusion}` fusion; "
        f"popularity: item counts in the test histories; SASRec: the `sasrec` stage's model.",
        "", "## History items not masked (the headline protocol)", "",
        "Everything is ranked, as the generative papers' evaluation code ranks the beam's "
        "output.", "", *_table(metrics, rows, ""),
        "", "## History items masked", "",
        f"Each user's history items are removed from their ranking first (for the generative "
        f"model: from the best {cfg.beam} items of its fused beam lists, then cut to 10).",
        "", *_table(metrics, rows, "_masked"),
    ]
    lines += ["", f"Invalid outputs (top-{cfg.top_k} slots without a catalogue item): "
                  f"{metrics['test/invalid_rate']:.4f}. Catalogue coverage of the top-10 lists: "
                  f"{metrics['test/coverage_10']:.4f}.", "", "![metrics](evaluate.png)", ""]
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "evaluate.md") as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    _chart(folder / "evaluate.png", metrics, rows)


def _table(metrics: dict[str, float], rows: dict[str, str], suffix: str) -> list[str]:
    lines = ["| model | " + " | ".join(name for name, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for label, prefix in rows.items():
        values = " | ".join(f"{metrics[f'{prefix}{suffix}/{key}']:.4f}" for _, key in COLUMNS)
        lines.append(f"| {label} | {values} |")
    return lines


def _chart(path: Path, metrics: dict[str, float], rows: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    x = np.arange(len(COLUMNS))
    width = 0.8 / len(rows)
    for i, (label, prefix) in enumerate(rows.items()):
        ax.bar(x + i * width, [metrics[f"{prefix}/{key}"] for _, key in COLUMNS], width,
               label=label)
    ax.set_xticks(x + width * (len(rows) - 1) / 2, [name for name, _ in COLUMNS])
    ax.set_ylabel("test score")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
