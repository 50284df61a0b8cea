"""Progress bars where nobody watches a terminal: plain lines with the count and an ETA."""
import io

import pytest

from pipeline.runtime import progress


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_off_a_terminal_the_bar_writes_whole_lines_with_count_and_eta(monkeypatch):
    stream = _Pipe()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setenv(progress.ENV, "0")
    for _ in progress.bar(range(4), desc="train epoch 1", unit="batch", leave=False):
        pass
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0].startswith("train epoch 1:") and "0/4" in lines[0]
    assert "4/4" in lines[-1]                          # the last state stays, even with leave=False
    assert all("<" in line for line in lines)          # tqdm's [elapsed<remaining]
    assert len(lines) >= 4                             # one line per update at a 0 s interval


def test_the_interval_limits_the_lines(monkeypatch):
    stream = _Pipe()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setenv(progress.ENV, "3600")
    for _ in progress.bar(range(1000), desc="encode"):
        pass
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("encode:") and "1000/1000" in lines[-1] and len(lines) <= 3


def test_disabled_bar_writes_nothing(monkeypatch):
    stream = _Pipe()
    monkeypatch.setattr("sys.stderr", stream)
    assert list(progress.bar(range(3), enabled=False)) == [0, 1, 2]
    assert stream.getvalue() == ""


def test_a_bad_interval_is_named(monkeypatch):
    monkeypatch.setenv(progress.ENV, "often")
    with pytest.raises(ValueError, match="MMGENREC_PROGRESS_SECONDS='often'"):
        progress.interval()
