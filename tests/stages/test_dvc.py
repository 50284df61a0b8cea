"""The real DVC pipeline in a throw-away repo: `dvc repro ingest`, then nothing it needs is
stale, and a params edit re-runs only the stages that read it."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _sh(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(cwd / ".dvc" / "tmp" / "site"),
           "PYTHONPATH": str(cwd)}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_dvc_repro_then_status_is_clean(params_dict, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("pipeline", "data", "dvc.yaml"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns(
                "__pycache__", "synthetic", "ingest"))
        else:
            shutil.copy(src, repo / name)
    (repo / "params.yaml").write_text(yaml.safe_dump(params_dict, sort_keys=False))
    _sh(["git", "init", "-q"], repo)
    _sh(["dvc", "init", "-q"], repo)
    out = _sh(["dvc", "repro", "ingest"], repo)
    assert "Running stage 'synthetic'" in out and "Running stage 'ingest'" in out
    assert (repo / "metrics" / "ingest.json").is_file()
    assert "up to date" in _sh(["dvc", "status", "ingest"], repo)

    params_dict["ingest"]["max_history"] = 5
    (repo / "params.yaml").write_text(yaml.safe_dump(params_dict, sort_keys=False))
    assert "ingest" in _sh(["dvc", "status", "ingest"], repo)
    out = _sh(["dvc", "repro", "ingest"], repo)
    assert "Running stage 'ingest'" in out
    assert "Running stage 'synthetic'" not in out
    assert "up to date" in _sh(["dvc", "status", "ingest"], repo)
