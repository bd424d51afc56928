"""Run statistics with constant memory (safe for months-long runs)."""

from __future__ import annotations

import collections
import os
import time
from typing import Optional

import numpy as np


class LatencyHistogram:
    """Fixed 1 ms bins up to ``max_ms`` (plus overflow): percentiles without keeping samples."""

    def __init__(self, max_ms: int = 10000):
        self.counts = np.zeros(max_ms + 1, np.int64)
        self.n = 0
        self.total_ms = 0.0

    def add(self, ms: float) -> None:
        self.counts[min(len(self.counts) - 1, max(0, int(ms)))] += 1
        self.n += 1
        self.total_ms += ms

    def percentile(self, q: float) -> float:
        if self.n == 0:
            return 0.0
        c = np.cumsum(self.counts)
        return float(np.searchsorted(c, q / 100.0 * self.n) + 0.5)


class RateMeter:
    """Events per second over the last ``window`` seconds."""

    def __init__(self, window: float = 2.0):
        self.window = window
        self._t: collections.deque = collections.deque()

    def tick(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._t.append(now)
        while self._t and now - self._t[0] > self.window:
            self._t.popleft()
        return self.rate(now)

    def rate(self, now: float | None = None) -> float:
        if len(self._t) < 2:
            return 0.0
        span = self._t[-1] - self._t[0]
        return (len(self._t) - 1) / span if span > 0 else 0.0


def process_age_s() -> Optional[float]:
    """Seconds since this process started (its exec, interpreter start-up and imports
    included), from Linux's /proc; None where that cannot be read. The pipeline's own clock
    starts after the models are loaded, which hides most of a launch from the user."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
        return max(0.0, up - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None
