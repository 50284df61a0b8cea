"""Progress bars that also work where nobody watches a terminal.

On a terminal, `bar` is tqdm as usual. Elsewhere (a stage under `dvc repro` in `make run`,
the Prefect run's logs, a log file) tqdm would either stay silent or write carriage returns;
there `bar` prints one plain line every `MMGENREC_PROGRESS_SECONDS` seconds (default 30) with
the count, the rate, the time spent and the ETA, and a last line when it ends.
"""
from __future__ import annotations

import os
import sys
from typing import IO

from tqdm import tqdm

ENV = "MMGENREC_PROGRESS_SECONDS"
DEFAULT_SECONDS = 30.0


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into separate lines."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> None:
        for part in text.replace("\r", "\n").split("\n"):
            part = part.strip()
            if part and part != self.last:
                self.stream.write(part + "\n")
                self.last = part

    def flush(self) -> None:
        self.stream.flush()


def interval() -> float:
    """Seconds between progress lines when not on a terminal."""
    raw = os.environ.get(ENV, "")
    try:
        return float(raw) if raw else DEFAULT_SECONDS
    except ValueError:
        raise ValueError(f"{ENV}={raw!r} is not a number of seconds") from None


def bar(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """tqdm over `iterable` (or with `total=`); `enabled=False` hides it (e.g. on the other
    processes of a data-parallel run)."""
    if not enabled:
        return tqdm(iterable, disable=True, **kwargs)
    stream = sys.stderr
    if stream.isatty():
        return tqdm(iterable, file=stream, **kwargs)
    every = interval()
    kwargs.update(file=_Lines(stream), ascii=True, dynamic_ncols=False, leave=True,
                  mininterval=every, miniters=1)
    return tqdm(iterable, **kwargs)
