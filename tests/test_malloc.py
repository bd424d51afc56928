"""glibc allocator tuning (streamer/runtime/malloc.py): ``trim`` hands freed arena memory back
to the kernel, at most once per interval; checked in a real child process on real glibc."""

import subprocess
import sys

import pytest

from streamer.runtime import malloc
from conftest import ROOT

CHILD = r"""
import sys, threading
sys.path.insert(0, %r)
import numpy as np
from streamer.runtime import malloc

def rss():
    return [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")][0] / 1024

held = []
def work():
    np.ones(1 << 21, np.uint8)  # a freed mapped chunk raises glibc's mmap threshold
    frames = [np.ones(1 << 21, np.uint8) for _ in range(60)]  # 2 MB "frames" in this thread's arena
    held.append(frames.pop())  # the last one stays: the arena cannot shrink from its top
    frames.clear()
t = threading.Thread(target=work); t.start(); t.join()
before = rss()
assert malloc.trim(1000.0)
print(before, rss())
"""


def test_trim_returns_freed_frames_to_the_kernel():
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's malloc_trim: Linux only")
    r = subprocess.run([sys.executable, "-c", CHILD % str(ROOT)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    before, after = map(float, r.stdout.split())
    assert before - after > 60, (before, after)  # ~118 MB freed below a held top chunk


def test_trim_runs_at_most_once_per_interval(monkeypatch):
    monkeypatch.setattr(malloc, "_next_trim", 0.0)
    assert malloc.trim(100.0) is True
    assert malloc.trim(100.0 + malloc.TRIM_EVERY_S / 2) is False
    assert malloc.trim(100.0 + malloc.TRIM_EVERY_S) is True
