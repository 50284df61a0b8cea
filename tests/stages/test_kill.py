"""SIGKILL at any point: a stage killed mid-run leaves no output that passes for finished,
and running it again ends with exactly the outputs of an uninterrupted run."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# The stages that run for more than a moment, with what makes them do real work here.
KILLED = {
    "text_features": {},
    "image_features": {},
    "sasrec": {"sasrec": {"epochs": 6, "patience": 6}},
    "quantize": {"quantize": {"methods": {"text": "rqvae", "image": "rqkmeans",
                                          "collab": "rqkmeans"},
                              "rqvae": {"epochs": 40}}},
    "train": {"train": {"epochs": 4, "patience": 4}},
    "evaluate": {},
}
NEEDS = {"evaluate": "train"}      # the shared fixture's data ends with resolve


def _outputs(stage: str, raw: dict) -> list[Path]:
    """The stage's declared outs and metrics file, with `${paths.*}` filled in."""
    entry = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    names = [next(iter(o)) if isinstance(o, dict) else o
             for o in entry["outs"] + entry["metrics"] + entry.get("plots", [])]
    out = []
    for name in names:
        for key, value in raw["paths"].items():
            name = name.replace(f"${{paths.{key}}}", value)
        out.append(Path(name))
    return out


def _snapshot(paths: list[Path]) -> dict[str, bytes]:
    files = {}
    for path in paths:
        for f in sorted([path] if path.is_file() else path.rglob("*") if path.is_dir() else []):
            if f.is_file():
                files[str(f)] = f.read_bytes()
    return files


def _run(stage: str, kill_after: float | None = None) -> float:
    """Run the stage in its own process (one thread, so runs are bit-comparable); with
    `kill_after`, SIGKILL it after that many seconds. Returns the seconds it ran."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", f"pipeline.stages.{stage}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        return time.perf_counter() - start
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    return time.perf_counter() - start


def _merge(raw: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict) and key != "methods":
            _merge(raw[key], value)
        else:
            raw[key] = value


@pytest.mark.parametrize("stage", list(KILLED))
def test_a_killed_stage_reruns_to_the_uninterrupted_outputs(coded, stage):
    _merge(coded, KILLED[stage])
    coded["train"]["model"]["dropout"] = 0.1                 # dropout draws must resume too
    Path("params.yaml").write_text(yaml.safe_dump(coded))
    if stage in NEEDS:
        _run(NEEDS[stage])
    outputs = _outputs(stage, coded)
    for path in outputs:                                      # the stage writes them afresh
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    seconds = _run(stage)
    reference = _snapshot(outputs)
    assert reference
    for path in outputs:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    ran = _run(stage, kill_after=0.6 * seconds)
    assert ran < seconds, "the stage ended before it was killed: nothing was tested"
    partial = {f for f, data in _snapshot(outputs).items() if reference.get(f) != data}
    assert not partial, f"a killed {stage} left outputs that pass for finished: {partial}"
    _run(stage)
    assert _snapshot(outputs) == reference
    stale = [p for p in Path(".").rglob("*.tmp*") if ".tmp" in p.name]
    assert not stale, f"temporary files left behind: {stale}"
