"""Fake stages for the threaded pipeline: a scripted source, detector, tracker and sinks."""

import threading
import time

import numpy as np

from streamer import config
from streamer.core.events import EventBuilder
from streamer.core.processor import Processor
from streamer.media.output import OutputStage
from streamer.media.sources import EndOfStream, SourceLost
from streamer.runtime.pipeline import Pipeline
from streamer.sinks.basic import SinkSet
from streamer.types import Detection, Frame, Track


class FakeSource:
    def __init__(self, n=50, live=False, block=False, lose_at=None, fps=0, period=0.0):
        self.n, self.live, self.block, self.lose_at = n, live, block, lose_at
        self.period = period  # a camera delivers frames at its own pace
        self.fps, self.size, self.uri = fps, (64, 48), "fake://source"
        self.i = 0
        self.opens = 0
        self.release = threading.Event()

    def open(self):
        self.opens += 1

    def rewind(self):
        return False

    def read(self):
        if self.block:  # a camera that hangs (the pipeline must still stop)
            self.release.wait(30)
        if self.lose_at is not None and self.i == self.lose_at:
            self.lose_at = None
            raise SourceLost("gone")
        if self.i >= self.n:
            raise EndOfStream()
        time.sleep(self.period)
        self.i += 1
        return Frame(self.i - 1, time.time(), time.monotonic(), np.zeros((48, 64, 3), np.uint8))

    def close(self):
        pass


class FakeDetector:
    score_threshold = 0.5

    def __init__(self, fail_on=()):
        self.fail_on = set(fail_on)
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        if self.calls in self.fail_on:
            raise RuntimeError("boom")
        return [Detection((10, 10, 30, 30), 0.9)]


class FakeTracker:
    """Every detection is track 1, confirmed from the 2nd frame."""

    def __init__(self):
        self.n = 0

    def update(self, dets, frame_id):
        self.n += 1
        return [Track(1, d.box, d.score, self.n >= 2, self.n, 0, 0, frame_id) for d in dets]

    def reset(self):
        self.n = 0


class ListSink:
    name = "list"

    def __init__(self, delay=0.0):
        self.events, self.delay = [], delay

    def emit(self, ev):
        time.sleep(self.delay)
        self.events.append(ev)

    def close(self):
        pass


class FailingSink:
    name = "broken"

    def emit(self, ev):
        raise OSError(28, "No space left on device")

    def close(self):
        pass


def make(source, cfgd=None, detector=None, sinks=None):
    cfg = config.from_dict(cfgd or {})
    proc = Processor(detector or FakeDetector(), FakeTracker(), EventBuilder("test"))
    sink = sinks or [ListSink()]
    return Pipeline(cfg, source, proc, SinkSet(sink), OutputStage()), sink
