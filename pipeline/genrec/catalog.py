"""The catalogue of semantic IDs the generative recommender reads and writes: vocabulary,
token tables and tries of each modality, and the method's tasks. Training, evaluation and
the recommend API build it the same way, from the `resolve` stage's codes."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from pipeline.config import TrainMethod, TrainParams
from pipeline.core.trie import Trie, build_trie
from pipeline.genrec.methods import METHODS
from pipeline.genrec.tasks import Task
from pipeline.genrec.vocab import MODALITY_ORDER, Vocab, build_vocab, token_table
from pipeline.io import tables
from pipeline.runtime.errors import UserInputError


class Catalog(NamedTuple):
    n_items: int
    vocab: Vocab
    tables: dict[str, torch.Tensor]     # modality -> (n_items + 1, L) token ids
    tries: dict[str, Trie]              # modality -> trie over its codes table rows
    item_of_row: dict[str, torch.Tensor]  # modality -> (rows,) item id of each trie leaf
    row_of_item: dict[str, torch.Tensor]  # modality -> (n_items,) trie leaf of each item, -1
    train_tasks: list[Task]
    decode_tasks: list[Task]

    def has_codes(self, modality: str, items: torch.Tensor) -> torch.Tensor:
        """(N,) bool: which of the items (N,) have semantic IDs of `modality`."""
        return (self.tables[modality][items] != 0).all(dim=1)

    @property
    def device(self) -> torch.device:
        return next(iter(self.tables.values())).device

    def to(self, device: torch.device) -> Catalog:
        """The catalogue with every tensor (token tables, tries, row maps) on `device`: placed
        once, so that nothing a training step or a decoder reads crosses to the device."""
        def move(d: dict) -> dict:
            return {m: v.to(device) for m, v in d.items()}
        return self._replace(tables=move(self.tables), tries=move(self.tries),
                             item_of_row=move(self.item_of_row),
                             row_of_item=move(self.row_of_item))


def read_final_codes(codes_dir: Path, cfg: TrainParams) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """modality -> (item ids, codes) of the `resolve` stage, for the modalities the method uses
    and the dataset has (those `quantize` left out are absent; see `method_tasks`)."""
    train_tasks, _ = METHODS[cfg.method].tasks(cfg)
    needed = sorted({m for t in train_tasks for m in (*t.sources, t.target)},
                    key=MODALITY_ORDER.index)
    skipped = tables.read_skipped(codes_dir)
    codes = {}
    for m in needed:
        path = codes_dir / f"{m}.parquet"
        if m in skipped:
            continue
        if not path.is_file():
            raise UserInputError(f"train.method {cfg.method} needs {m} semantic IDs but "
                                 f"{path} does not exist: add {m} to quantize.methods")
        codes[m] = tables.read_codes(path)
    return codes


def method_tasks(cfg: TrainParams, modalities: set[str], dataset: set[str] | None = None
                 ) -> tuple[list[Task], list[Task], list[str]]:
    """The method's (trained, decoded) tasks over the modalities that have semantic IDs, and
    a line for each thing left out: a task drops the history modalities that have none, and
    is dropped itself when its target or its whole history has none; MACRec's implicit loss
    needs text and image. Raises UserInputError, before any training, when no decoded task
    is left, naming the modalities the `dataset` has semantic IDs of (default: `modalities`)."""
    train, decode = METHODS[cfg.method].tasks(cfg)
    notes = []

    def fit(t: Task) -> Task | None:
        sources = tuple(m for m in t.sources if m in modalities)
        if t.target not in modalities or not sources:
            missing = sorted({t.target, *t.sources} - modalities)
            notes.append(f"task {t.name}: left out (no {', '.join(missing)} semantic IDs)")
            return None
        if sources != t.sources:
            gone = ", ".join(m for m in t.sources if m not in modalities)
            notes.append(f"task {t.name}: history without {gone} (no semantic IDs)")
        return t._replace(sources=sources)
    kept = {t.name: fit(t) for t in train}
    extra = METHODS[cfg.method].extra_loss
    if extra is not None and extra.weight(cfg) > 0 and not set(extra.needs) <= modalities:
        notes.append(f"{extra.name} loss: left out (needs {' and '.join(extra.needs)} "
                     f"semantic IDs)")
    decode = [kept[t.name] for t in decode if kept[t.name] is not None]
    if not decode:
        have = ", ".join(sorted(modalities if dataset is None else dataset)) or "none"
        if cfg.method is TrainMethod.TIGER:
            raise UserInputError(f"train.tiger_modality is {cfg.tiger_modality}, but the dataset "
                                 f"has no {cfg.tiger_modality} semantic IDs; set it to one "
                                 f"of: {have}")
        raise UserInputError(f"train.method {cfg.method}: none of the tasks it decodes can run "
                             f"with the semantic IDs the dataset has ({have})")
    return [t for t in kept.values() if t is not None], decode, notes


def build_catalog(codes: dict[str, tuple[np.ndarray, np.ndarray]], n_items: int,
                  cfg: TrainParams) -> Catalog:
    """Vocabulary, token tables and tries from each modality's (item ids, unique codes); the
    method's tasks over these modalities (`method_tasks`)."""
    train_tasks, decode_tasks, _ = method_tasks(cfg, set(codes))
    sizes = {m: tuple(int(k) for k in c.max(axis=0) + 1) for m, (_, c) in codes.items()}
    vocab = build_vocab(sizes, [t.name for t in train_tasks])
    return Catalog(
        n_items, vocab,
        {m: token_table(ids, c, n_items, vocab.offsets[m]) for m, (ids, c) in codes.items()},
        {m: build_trie(c, sizes[m]) for m, (_, c) in codes.items()},
        {m: torch.from_numpy(np.array(ids, dtype=np.int64)) for m, (ids, _) in codes.items()},
        {m: _inverse(ids, n_items) for m, (ids, _) in codes.items()},
        train_tasks, decode_tasks)


def _inverse(item_ids: np.ndarray, n_items: int) -> torch.Tensor:
    """(n_items,) row of each item in a codes table; -1 for items without codes."""
    rows = torch.full((n_items,), -1, dtype=torch.long)
    rows[torch.from_numpy(np.array(item_ids, dtype=np.int64))] = torch.arange(len(item_ids))
    return rows
