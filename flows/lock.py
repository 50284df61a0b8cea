"""One retrain at a time per repository: a second `make run`, or a scheduled run that fires
during a manual one, waits for the first to end (saying so) or, asked not to wait, stops
with a clear message. Nothing is written before the lock is held, so two runs never
interleave their stages or their `dvc.lock` updates. The lock is an OS file lock: a killed
run releases it."""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class RepoBusy(RuntimeError):
    """Another retrain holds the repository and the caller chose not to wait."""


@contextlib.contextmanager
def repo_lock(repo: Path, wait: bool = True) -> Iterator[None]:
    """Hold `<repo>/.dvc/tmp/retrain.lock` for the block; wait for it (printing who holds
    it) or raise RepoBusy."""
    path = Path(repo) / ".dvc" / "tmp" / "retrain.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text(encoding="utf-8").strip() or "a process"
            if not wait:
                raise RepoBusy(f"another retrain ({holder}) is running in {repo}; "
                               f"run again when it has finished") from None
            print(f"retrain: another retrain ({holder}) is running in {repo}; waiting for "
                  f"it to finish", flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}, started {datetime.datetime.now():%Y-%m-%d %H:%M:%S}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh, fcntl.LOCK_UN)
