"""The training methods, registered by `train.method`: what each trains on, what it decodes
and what it adds to the model or the loss.

To add a method: its word in `TrainMethod` (pipeline/config/enums.py), a function returning
its (trained, decoded) tasks (new tasks go in `tasks.task`), and one `METHODS` line.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from pipeline.config import TrainMethod, TrainParams
from pipeline.genrec.alignment import IMPLICIT, ExtraLoss
from pipeline.genrec.tasks import Task, task


class Method(NamedTuple):
    tasks: Callable[[TrainParams], tuple[list[Task], list[Task]]]   # (trained, decoded)
    extra_loss: ExtraLoss | None = None  # a loss term added to every step's objective
    modality_dropout: bool = False       # train.modality_dropout hides history modalities
    dual_positions: bool = False         # train.dual_positions: item and slot embeddings


def tiger_tasks(cfg: TrainParams) -> tuple[list[Task], list[Task]]:
    """TIGER: next item's codes from the history's, in one modality (`train.tiger_modality`)."""
    one = [task(f"tiger_{cfg.tiger_modality}")]
    return one, one


def listed_tasks(cfg: TrainParams) -> tuple[list[Task], list[Task]]:
    """MQL4GRec / MACRec: the `train.tasks` list; the next-item tasks are decoded and fused."""
    train = [task(t) for t in cfg.tasks]
    return train, [t for t in train if t.name in ("seqrec", "seqimage")]


def mscgrec_tasks(cfg: TrainParams) -> tuple[list[Task], list[Task]]:
    """MSCGRec: every `train.modalities` code of the history -> the next item's collab codes."""
    one = [task("mscgrec", tuple(str(m) for m in cfg.modalities))]
    return one, one


METHODS: dict[TrainMethod, Method] = {
    TrainMethod.TIGER: Method(tiger_tasks),
    TrainMethod.MQL4GREC: Method(listed_tasks),
    TrainMethod.MACREC: Method(listed_tasks, extra_loss=IMPLICIT),
    TrainMethod.MSCGREC: Method(mscgrec_tasks, modality_dropout=True, dual_positions=True),
}
