"""Training samples/s of one Instruments epoch of the real `train` stage, for this checkout or
another one (`--root`), so that two code versions compare on the same data and machine.

    python bench/cpu_train_speed.py [--root /path/to/checkout]
        [--runs tiger:tiger_modality=image,mscgrec] [--work /tmp/mmgenrec-instruments]
        [--dataset instruments|default] [--out bench/results/cpu_train_speed.json]

With `--dataset default` the runs read the default shop that this checkout's `make run`
wrote under data/ (every checkout trains on the same semantic IDs).

The Instruments split must be prepared in --work first (every run of
bench/instruments_genrec.py or bench/instruments_quality.py with that --work prepares it).
Each run trains one epoch at batch 64 on the CPU in a fresh process (validation on 200 users, not timed) and reports the stage's
`timing/samples_per_s`. Exits 0 with a message when the dataset is absent.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE = """
import json, sys, yaml
from pathlib import Path
sys.path[:0] = [{root!r}, {bench!r}]
from instruments_genrec import base_params
import pipeline
assert pipeline.__file__.startswith({root!r}), pipeline.__file__
from pipeline.config import params_from_dict, with_overrides
from pipeline.runtime.seeding import seed_everything
from pipeline.stages import train
keys = {keys!r}
if {default!r}:     # the default shop of this checkout's data/ (run `make run` first)
    base = yaml.safe_load((Path({root!r}) / "params.yaml").read_text())
    base["paths"].update(ingest={data!r} + "/ingest", codes={data!r} + "/codes")
else:
    base = base_params(Path({work!r}))
raw = with_overrides(base, {{k: yaml.safe_load(v) for k, v in keys.items()}})
params = params_from_dict(raw)
seed_everything(params.seed)
print(json.dumps(train.run(params)))
"""


def one(root: Path, run: str, work: Path, default: bool) -> dict:
    method, *overrides = run.split(":")
    folder = Path("/tmp/cpu_train_speed") / f"{root.name}_{run.replace(':', '_')}"
    keys = {"train.method": method, "train.epochs": "1", "train.valid_users": "200",
            "train.device": "cpu", "train.resume": "never",
            **{f"paths.{k}": str(folder / k) for k in ("model", "work", "plots")}}
    keys |= {f"train.{k}": v for k, v in (o.split("=", 1) for o in overrides)}
    # The checkout's own bench/ too: its instruments_genrec puts its own root on sys.path.
    code = ONE.format(root=str(root), bench=str(root / "bench"), keys=keys, work=str(work),
                      default=default, data=str(ROOT / "data"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{run} at {root} failed:\n{out.stderr[-3000:]}")
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                            capture_output=True, text=True).stdout.strip()
    return {"root": str(root), "commit": commit, "run": run, "batch_size": 64,
            "dataset": "default" if default else "instruments",
            "samples_s": metrics["timing/samples_per_s"], "samples": metrics["train/samples"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(ROOT))
    parser.add_argument("--runs", default="tiger:tiger_modality=image,mscgrec")
    parser.add_argument("--work", default="/tmp/mmgenrec-instruments")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cpu_train_speed.json"))
    parser.add_argument("--dataset", choices=["instruments", "default"], default="instruments",
                        help="default: the default shop this checkout's `make run` wrote")
    args = parser.parse_args()
    default = args.dataset == "default"
    if not default and not (Path(args.work) / "common" / "codes" / "final").is_dir():
        print(f"skipped: the Instruments split is not prepared in {args.work}")
        return 0
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.is_file() else []
    for run in args.runs.split(","):
        rows.append(one(Path(args.root).resolve(), run, Path(args.work), default))
        print(json.dumps(rows[-1]))
        out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
