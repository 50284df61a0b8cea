"""keep_freed_memory: large tensors come from glibc's heap, which keeps freed memory, instead of
mmap regions that are unmapped on free (and page-faulted in again on the next step)."""
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, torch
from pipeline.runtime.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
x = torch.ones(16_000_000)                                  # 64 MB
for line in open("/proc/self/maps"):
    start, end = (int(a, 16) for a in line.split()[0].split("-"))
    if start <= x.data_ptr() < end:
        print(line.split()[-1] == "[heap]")
"""


def _in_heap(mode: str) -> bool:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return out.stdout.split()[-1] == "True"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_large_tensors_come_from_the_heap_once_freed_memory_is_kept():
    assert not _in_heap("default")                 # glibc's own mmap region, unmapped on free
    assert _in_heap("keep")
