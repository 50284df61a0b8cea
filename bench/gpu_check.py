"""Issue 33: the GPU path measured from a plain copy of the repository, in one command.

Here, on the CPU machine with the project's venv (the GPU machine lacks polars, faiss, DVC,
MLflow, Prefect and the packaged encoders), once:

    python bench/gpu_check.py prepare --work .gpu

writes into .gpu/ (git-ignored through .git/info/exclude; a few MB plus the 19 MB faiss-cpu
wheel for Python 3.12): the Instruments split prepared as bench/instruments_genrec.py
prepares it (ingest tables, SASRec model, final semantic IDs), the stage tests' tiny shop
(tests/stages/conftest.py, MMGENREC_CODED_DATA) and the default run's ingest tables, codes
and SASRec model when `make run` has been run. Copy .gpu/ along with the repository (the
device tool's `carry`). On the GPU machine (torch, transformers, pyarrow, numpy,
safetensors, PyYAML, tqdm, pytest), with no network and no installation:

    python bench/gpu_check.py run --work .gpu --out OUT.json [--budget 480]

unpacks the faiss wheel into .gpu/site (a wheel is a zip), runs the CUDA stage tests, then
measures and writes, after each step: training samples/s and seconds per Instruments epoch
(mscgrec, CPU-size and paper-size T5 at batch 64 and 1024; bf16 against float32,
deterministic kernels on and off, torch.compile on), bf16 against float32 on the constrained
loss, decoding users/s of all 17,112 test users at beam 20, the default shop's train +
evaluate, and the papers' recipe on Instruments for what is left of --budget seconds.
`python bench/gpu_check.py table --out bench/results/gpu.json` prints the BENCHMARKS rows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gpu_measure import (  # noqa: E402
    OPTS, SIZES, decode_speed, instruments, loss_check, speed, stage_run,
)

RECIPE = {"method": "mscgrec", "model": SIZES["paper-size"], "batch_size": 1024, "lr": 0.003,
          "warmup_ratio": 0.05, "patience": 10, "valid_users": 0, "deterministic": False,
          "precision": "bfloat16"}


def prepare(work: Path) -> None:
    from instruments_genrec import base_params
    from instruments_genrec import prepare as prepare_instruments
    (work / "iq" / "common").mkdir(parents=True, exist_ok=True)
    prepare_instruments(base_params(work / "iq"), work / "iq")
    for name in ("work", "plots", "features"):          # not needed there
        shutil.rmtree(work / "iq" / "common" / name, ignore_errors=True)
    env = {"MMGENREC_CODED_DATA": str(work / "coded")}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/stages/test_cuda.py"],
                   cwd=ROOT, env={**os.environ, **env}, check=True)
    if (ROOT / "data" / "codes" / "final").is_dir():
        for name in ("ingest", "codes/final", "sasrec"):
            shutil.copytree(ROOT / "data" / name, work / "default" / name, dirs_exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--platform", "manylinux_2_28_x86_64",
                    "-d", str(work / "whl"), "faiss-cpu==1.15.1"], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    (work / "commit.txt").write_text(commit + "\n")


class Report:
    """The JSON of the run, rewritten after every row (a killed run keeps what it measured)."""

    def __init__(self, out: Path, env: dict) -> None:
        self.out, self.data = out, {"env": env, "rows": []}
        self.write()

    def add(self, kind: str, **row) -> None:
        self.data["rows"].append({"kind": kind, **row})
        print(json.dumps({"kind": kind, **row}), flush=True)
        self.write()

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.data, indent=2) + "\n")


def isolated(raw: dict, folder: Path) -> dict:
    """`raw` with every output path of train and evaluate inside `folder`."""
    from pipeline.config import with_overrides
    keys = ("model", "evaluate", "reports", "work", "metrics", "plots", "costs")
    return with_overrides(raw, {f"paths.{k}": str(folder / k) for k in keys})


def cuda_tests(env: dict, timeout: float) -> dict:
    """pytest -m cuda over tests/stages/test_cuda.py, on the prebuilt tiny shop."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p",
                           "no:cacheprovider", "tests/stages/test_cuda.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return {"returncode": done.returncode, "summary": done.stdout.strip().splitlines()[-1:],
            "output": (done.stdout + done.stderr)[-3000:]}


def run(work: Path, out: Path, budget: float) -> None:
    import torch
    import transformers
    deadline = time.monotonic() + budget
    site = work / "site"
    if not site.is_dir():                       # faiss for quantize's k-means, without pip
        for wheel in (work / "whl").glob("*.whl"):
            zipfile.ZipFile(wheel).extractall(site)
    commit = (work / "commit.txt").read_text().strip() if (work / "commit.txt").is_file() else "?"
    name = torch.cuda.get_device_name() if OPTS.device == "cuda" else platform.processor()
    report = Report(out, {"device": name, "torch": torch.__version__,
                          "cuda": torch.version.cuda, "transformers": transformers.__version__,
                          "python": platform.python_version(), "commit": commit})

    def left() -> float:
        return deadline - time.monotonic()

    def step(kind: str, fn, *args, **kwargs) -> None:
        """One measurement; a failure is a row too, and the run goes on."""
        start = time.perf_counter()
        try:
            row = fn(*args, **kwargs)
        except Exception as exc:            # noqa: BLE001 (recorded, then the next step)
            row = {"error": f"{type(exc).__name__}: {exc}"[:2000], "args": repr((args[1:], kwargs))}
        seconds = round(time.perf_counter() - start, 1)
        report.add(kind, device=OPTS.device, commit=commit, wall_seconds=seconds, **row)

    env = {**os.environ, "MMGENREC_CODED_DATA": str(work / "coded"),
           "PYTHONPATH": f"{site}:{ROOT}", "HF_HUB_OFFLINE": "1"}
    step("tests", cuda_tests, env, max(60, min(240, left() - 240)))
    for size, batch in (("cpu-size", 64), ("cpu-size", 1024), ("paper-size", 64),
                        ("paper-size", 1024)):
        step("train_speed", speed, work, size, batch)
    for size, batch in (("cpu-size", 64), ("paper-size", 1024)):
        if left() > 330:
            step("train_speed", speed, work, size, batch, compile=True)
        step("train_speed", speed, work, size, batch, deterministic=False)
        step("train_speed", speed, work, size, batch, precision="bfloat16")
        step("train_speed", speed, work, size, batch, precision="bfloat16", deterministic=False)
    step("loss_check", loss_check, work)
    for size in SIZES:
        step("decode_speed", decode_speed, work, size, 128)
    step("decode_speed", decode_speed, work, "paper-size", 512)
    if (work / "default" / "codes").is_dir() and left() > 240:
        import yaml
        raw = yaml.safe_load((ROOT / "params.yaml").read_text())
        raw["paths"].update({k: str(work / "default" / k) for k in ("ingest", "codes", "sasrec")})
        step("default_run", stage_run, isolated(raw, Path("/tmp/gpu_default")))
    epoch = next((r for r in report.data["rows"] if r.get("model") == "paper-size"
                  and r.get("batch_size") == 1024 and "samples_s" in r), None)
    valid = next((r for r in report.data["rows"] if r.get("kind") == "decode_speed"
                  and r.get("model") == "paper-size" and "decode_seconds" in r), None)
    if epoch and valid and left() > 90:
        # Epochs that fit what is left: each costs its training plus a validation of every
        # user; the cosine schedule then ends with the run.
        per_epoch = epoch["epoch_seconds"] + valid["decode_seconds"]
        epochs = int(min(200, (left() - 60) / (per_epoch * 1.1)))
        if epochs >= 3:
            step("recipe", stage_run, isolated(instruments(work, epochs=epochs, **RECIPE),
                                               Path("/tmp/gpu_recipe")))
    print(f"done, {left():.0f} s of the budget left")


def profile(work: Path, out: Path, budget: float) -> None:
    """Where a training step's time goes (torch.profiler over a short epoch: host and device
    milliseconds per step, top ops), then torch.compile measured while --budget lasts."""
    deadline = time.monotonic() + budget
    report = Report(out, {"commit": (work / "commit.txt").read_text().strip()})
    for size, batch in (("cpu-size", 64), ("paper-size", 1024)):
        report.add("profile", **speed(work, size, batch, profile=True))
    for size, batch in (("cpu-size", 64), ("paper-size", 1024)):
        if time.monotonic() < deadline:
            try:
                report.add("train_speed", **speed(work, size, batch, compile=True))
            except Exception as exc:        # noqa: BLE001 (recorded)
                report.add("train_speed", model=size, compile=True, error=repr(exc)[:1000])


def table(out: Path) -> None:
    data = json.loads(out.read_text())
    print(f"{data['env']}\n")
    for row in data["rows"]:
        print(" | ".join(f"{k}={v}" for k, v in row.items() if k not in ("output", "commit")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["prepare", "run", "profile", "table"])
    parser.add_argument("--work", default=str(ROOT / ".gpu"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu.json"))
    parser.add_argument("--budget", type=float, default=480.0,
                        help="seconds for `run`; the papers' recipe gets what is left")
    parser.add_argument("--device", default=OPTS.device, help="cpu: a dry run of `run`")
    parser.add_argument("--speed-samples", type=int, default=OPTS.speed_samples)
    parser.add_argument("--users", type=int, default=OPTS.users)
    args = parser.parse_args()
    OPTS.device, OPTS.speed_samples, OPTS.users = args.device, args.speed_samples, args.users
    work = Path(args.work).resolve()
    if args.what == "prepare":
        prepare(work)
    elif args.what in ("run", "profile"):
        import torch
        if OPTS.device == "cuda" and not torch.cuda.is_available():
            print("gpu_check run: torch sees no CUDA GPU")
            return 1
        (run if args.what == "run" else profile)(work, Path(args.out), args.budget)
    else:
        table(Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
