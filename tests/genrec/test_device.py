"""Device cleanliness of training, checked without a GPU.

On torch's `meta` device a tensor has a shape and no data: reading one on the host
(`.item()`, `float()`, a `nonzero`) raises, and so does mixing it with a tensor made on the
CPU. A training step that runs there places everything on the model's device and never
waits for it, which is what a CUDA step needs. The function-mode test counts the host reads
the issue names on a plain CPU run as a second, independent check."""
import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from pipeline.config import params_from_dict
from pipeline.genrec.catalog import build_catalog
from pipeline.genrec.fit import TrainData, model_config, training_samples
from pipeline.genrec.training import epoch_steps, train_step
from pipeline.models.genrec import GenRec

META = torch.device("meta")
HOST_READS = {"item", "tolist", "cpu", "numpy", "nonzero", "unique", "__bool__", "__int__",
              "__float__", "__index__", "masked_select", "argwhere"}


def _setup(real_params, tiny_t5, method: str):
    raw = {**real_params, "train": {**real_params["train"], "method": method,
                                    "tasks": ["seqrec", "seqimage", "item2image"],
                                    "implicit_weight": 0.5, "modality_dropout": 0.3,
                                    "model": {**tiny_t5, "dropout": 0.1}}}
    cfg = params_from_dict(raw).train
    rng = np.random.default_rng(0)
    items = np.arange(40)
    codes = {m: (items, rng.permutation(64)[:40, None] // [16, 4, 1] % 4)
             for m in ("text", "image", "collab")}
    catalog = build_catalog(codes, 40, cfg)
    samples = training_samples(catalog, [rng.integers(0, 40, 9).tolist() for _ in range(12)], 20)
    return cfg, catalog, samples


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def test_a_catalog_moved_to_a_device_has_every_tensor_on_it(real_params, tiny_t5):
    _, catalog, samples = _setup(real_params, tiny_t5, "mscgrec")
    moved = catalog.to(META)
    found = list(_tensors(tuple(moved)))
    assert len(found) > 3 * 4 and all(t.device == META for t in found)
    assert moved.device == META and catalog.device.type == "cpu"      # the original stays
    data = TrainData.place(samples, catalog, META)
    assert all(t.device == META for t in _tensors([tuple(s) for s in data.samples.values()]))
    assert all(t.device.type == "cpu" for t in data.lengths.values())  # batches planned on host


@pytest.mark.parametrize("method", ["mscgrec", "macrec", "mql4grec", "tiger"])
def test_training_steps_run_on_a_device_whose_data_the_host_cannot_read(real_params, tiny_t5,
                                                                         method):
    cfg, catalog, samples = _setup(real_params, tiny_t5, method)
    data = TrainData.place(samples, catalog, META)
    model = GenRec(model_config(cfg, catalog)).to(META)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    steps = epoch_steps(data.lengths, data.catalog.train_tasks, 8,
                        torch.Generator().manual_seed(0), META)
    assert {s.index.device for s in steps} == {META} and all(s.width > 0 for s in steps)
    for step in steps[:4]:
        terms = train_step(model, data.catalog, cfg, step, data.samples[step.task.name], None,
                           META)
        terms["objective"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    assert terms["loss"].device == META and ("implicit" in terms) is (method == "macrec")


class _HostReads(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READS:
            self.seen.append(name)
        if name == "__getitem__" and any(isinstance(a, torch.Tensor) and a.dtype == torch.bool
                                         for a in _tensors(args[1:])):
            self.seen.append("boolean index")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("method", ["mscgrec", "macrec"])
def test_a_training_step_reads_nothing_back_from_its_tensors(real_params, tiny_t5, method):
    cfg, catalog, samples = _setup(real_params, tiny_t5, method)
    cpu = torch.device("cpu")
    data = TrainData.place(samples, catalog, cpu)
    model = GenRec(model_config(cfg, catalog))
    steps = epoch_steps(data.lengths, data.catalog.train_tasks, 8,
                        torch.Generator().manual_seed(0), cpu)
    generator = torch.Generator().manual_seed(0)
    with _HostReads() as reads:
        for step in steps[:4]:
            terms = train_step(model, data.catalog, cfg, step, data.samples[step.task.name],
                               generator, cpu)
            terms["objective"].backward()
    assert reads.seen == []
    with _HostReads() as reads:                  # the mode does see such reads
        float(terms["loss"].detach())
        terms["loss"].detach().item()
    assert reads.seen == ["__float__", "item"]
