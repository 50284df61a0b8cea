"""What `make run` shows while a stage runs: its lines as they are written, and on failure the
stage's name and last lines."""
import sys
import time

import pytest

from flows.retrain import StageFailed, _streamed

# Prints a line, then waits a second before the next; no flush: PYTHONUNBUFFERED must do it.
SLOW = "import time; print('first'); time.sleep(1.0); print('second')"


def test_stage_lines_arrive_while_the_stage_runs(tmp_path):
    seen = []
    start = time.perf_counter()
    out, seconds, peak = _streamed([sys.executable, "-c", SLOW], tmp_path, "train",
                                   log=lambda line: seen.append((time.perf_counter(), line)))
    assert [line for _, line in seen] == ["[train] first", "[train] second"]
    assert seen[0][0] - start < seen[1][0] - start - 0.5      # 'first' came before the sleep
    assert out == "first\nsecond" and seconds >= 1.0 and peak > 0


def test_a_failing_stage_names_itself_and_ends_with_its_error(tmp_path):
    fail = "import sys; print('loading'); sys.exit('train.batch_size must be positive')"
    seen = []
    with pytest.raises(StageFailed) as info:
        _streamed([sys.executable, "-c", fail], tmp_path, "train", log=seen.append)
    message = str(info.value)
    assert message.startswith("stage 'train' failed (exit 1)")
    assert message.splitlines()[-1] == "train.batch_size must be positive"
    assert info.value.stage == "train" and seen[-1] == "[train] train.batch_size must be positive"
