"""Fake analyzers for batch tests: importable by worker processes (tests/ is on their sys.path).

The fake reads a command from the image itself: the colour of pixel (0, 0) (BGR) decides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from streamer.core.analyze import Analysis
from streamer.types import Attributes, FaceResult

CRASH = (0, 0, 255)  # the worker process dies (as a segfault in a decoder would)
FAIL = (0, 255, 0)  # raises every time
FLAKY = (255, 0, 0)  # raises the first time in the whole run, then works
NO_FACE = (255, 255, 255)


@dataclass(frozen=True)
class FakeFactory:
    """Picklable ``make_analyzer``: ``FakeFactory(state_dir)(cfg) -> FakeAnalyzer``."""

    state_dir: str

    def __call__(self, cfg):
        return FakeAnalyzer(Path(self.state_dir))


class FakeAnalyzer:
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir

    def analyze(self, image, conf=None) -> Analysis:
        colour = tuple(int(v) for v in image[0, 0])
        self._count(colour)
        if colour == CRASH:
            os._exit(3)
        if colour == FAIL:
            raise RuntimeError("fake analyzer failure")
        if colour == FLAKY and self._count(colour, peek=True) == 1:
            raise RuntimeError("fake transient failure")
        if colour == NO_FACE:
            return Analysis(())
        h, w = image.shape[:2]
        attrs = Attributes("female", 0.9, 30.0, 25.0, 35.0, 0.5, 1)
        return Analysis((FaceResult((w * 0.25, h * 0.25, w * 0.5, h * 0.75), 0.95, attrs),))

    def _count(self, colour, peek=False) -> int:
        """Calls per colour across all processes of the run (one file line per call)."""
        p = self.state_dir / ("calls_" + "_".join(map(str, colour)))
        if not peek:
            with open(p, "a") as f:
                f.write("x\n")
        return len(p.read_text().splitlines())


@dataclass(frozen=True)
class BrokenInWorkers:
    """Works in the parent (its start-up probe) but not in worker processes: ``exit`` makes the
    worker die outright, otherwise the factory raises."""

    parent_pid: int
    exit: bool = False

    def __call__(self, cfg):
        if os.getpid() != self.parent_pid:
            if self.exit:
                os._exit(5)
            raise RuntimeError("model file vanished")
        return FakeAnalyzer(Path("."))
