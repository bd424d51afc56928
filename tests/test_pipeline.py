"""Queue policy, shutdown and fault handling of the threaded pipeline, with fake stages."""

import threading
import time

import numpy as np
import pytest

from streamer import config
from streamer.core.events import EventBuilder
from streamer.media.output import OutputStage
from streamer.runtime.pipeline import Pipeline
from streamer.runtime.queues import EOS, BoundedQueue
from streamer.core.processor import Processor
from streamer.sinks.basic import SinkSet
from streamer.media.sources import EndOfStream, SourceLost
from streamer.types import Detection, Frame, Track
from streamer.errors import SourceError


# ---- BoundedQueue -------------------------------------------------------------------------

def test_drop_oldest_keeps_newest_and_counts():
    q = BoundedQueue(3, drop_oldest=True)
    stop = threading.Event()
    for i in range(10):
        assert q.put(i, stop)
    assert q.dropped == 7
    assert [q.get(0) for _ in range(3)] == [7, 8, 9]
    assert q.get(0.01) is None


def test_blocking_put_waits_for_space_and_never_drops():
    q = BoundedQueue(2, drop_oldest=False, poll=0.01)
    stop = threading.Event()
    q.put(1, stop), q.put(2, stop)
    done = threading.Event()

    def producer():
        q.put(3, stop)
        done.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not done.wait(0.1)  # blocked: the queue is full
    assert q.get(1) == 1
    assert done.wait(HANG_S)
    assert [q.get(0), q.get(0)] == [2, 3] and q.dropped == 0


def test_stop_releases_a_blocked_producer():
    q = BoundedQueue(1, drop_oldest=False, poll=0.05)
    stop = threading.Event()
    q.put(0, stop)
    result = []
    t = threading.Thread(target=lambda: result.append(q.put(1, stop)), daemon=True)
    t.start()
    time.sleep(0.05)
    assert t.is_alive() and result == []  # blocked: the queue is full
    stop.set()
    t.join(HANG_S)  # released within a poll interval; only a hang reaches HANG_S
    assert not t.is_alive() and result == [False] and q.dropped == 0


def test_control_items_always_get_in_and_never_evict_a_frame():
    q = BoundedQueue(1, drop_oldest=False)
    q.put("frame", threading.Event())
    q.put_control(EOS)
    assert q.get(0) == "frame" and q.get(0) is EOS and q.dropped == 0


# ---- Pipeline with fakes ------------------------------------------------------------------

from helpers.waiting import wait_until
from helpers.pipeline_fakes import FailingSink, FakeDetector, FakeSource, FakeTracker, ListSink, make

# Bound that only a hang trips. The shutdown contract (stop -> run() returns within 2 s) is
# measured, not asserted: `python run.py bench --only live` (bench/live.py).
HANG_S = 10.0


def run_in_thread(p: Pipeline) -> tuple[threading.Thread, dict]:
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(p.run()), daemon=True)
    t.start()
    return t, out


def test_file_source_processes_every_frame_and_ends_cleanly():
    p, (sink,) = make(FakeSource(40))
    s = p.run()
    assert s["frames_processed"] == 40 and s["frames_dropped"] == 0
    assert [e.type for e in sink.events] == ["start", "end"]


def test_max_frames_limits_reads():
    p, _ = make(FakeSource(40), {"output": {"max_frames": 7}})
    assert p.run()["frames_processed"] == 7


def test_stop_returns_even_when_the_source_hangs():
    src = FakeSource(10**6, live=True, block=True)  # read() blocks for 30 s
    p, (sink,) = make(src)
    t, summary = run_in_thread(p)
    time.sleep(0.3)
    assert t.is_alive()
    p.stop()
    t.join(HANG_S)  # well before the hung read would return on its own (30 s)
    try:
        assert not t.is_alive(), "run() did not return after stop() with the source hung"
        assert summary["hung_calls"] == 0 and summary["frames_processed"] == 0
    finally:
        src.release.set()


def test_stage_exception_skips_the_frame_and_goes_on():
    p, _ = make(FakeSource(20), detector=FakeDetector(fail_on={3, 7}))
    s = p.run()
    assert s["stage_errors"] == 2 and s["frames_processed"] == 18


def test_failing_sink_is_counted_and_does_not_stop_others():
    good = ListSink()
    p, _ = make(FakeSource(10), sinks=[FailingSink(), good])
    s = p.run()
    assert s["frames_processed"] == 10
    assert s["sink_errors"]["broken"] == 2 and len(good.events) == 2


class BlockedSink(ListSink):
    """Blocks in emit() until ``release`` is set: a sink stuck on a full disk or a slow broker."""

    name = "blocked"

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def emit(self, ev):
        self.entered.set()
        assert self.release.wait(HANG_S), "never released"
        self.events.append(ev)


def test_slow_sink_does_not_slow_inference():
    """Inference progress is measured while the sink is held: all 30 frames get processed
    while the sink is still stuck on the first event (sinks run off the inference thread)."""
    stuck = BlockedSink()
    p, _ = make(FakeSource(30), sinks=[stuck])
    t, summary = run_in_thread(p)
    try:
        assert stuck.entered.wait(HANG_S), "no event reached the sink"
        deadline = time.monotonic() + HANG_S
        while p.frames_processed < 30 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert p.frames_processed == 30 and not stuck.release.is_set() and stuck.events == []
    finally:
        stuck.release.set()
    t.join(HANG_S)
    assert not t.is_alive()
    # ... and once released, every event still reaches it, in order.
    assert summary["frames_processed"] == 30
    assert [e.type for e in stuck.events] == ["start", "end"]


def test_live_source_lost_reconnects_and_reports_outage():
    src = FakeSource(30, live=True, lose_at=10, period=0.01)
    p, (sink,) = make(src, {"source": {"backoff_initial_s": 0.05}})
    s = p.run()
    types = [e.type for e in sink.events]
    assert s["reconnects"] == 1 and src.opens == 1
    assert types == ["start", "end", "source_down", "source_up", "start", "end"]
    up = [e for e in sink.events if e.type == "source_up"][0]
    assert up.payload["outage_s"] > 0


def test_reconnect_backoff_grows_and_stop_interrupts_it():
    class Dead(FakeSource):
        def open(self):
            self.opens += 1
            raise SourceError("refused")

    src = Dead(30, live=True, lose_at=0)
    p, _ = make(src, {"source": {"backoff_initial_s": 0.05, "backoff_max_s": 0.4}})
    backoffs = []  # the step in force at each open attempt (taken after the wait)
    real_open = src.open
    src.open = lambda: (backoffs.append(p.capture._backoff), real_open())
    t, _ = run_in_thread(p)
    wait_until(lambda: src.opens >= 3, HANG_S, "3 open attempts")
    p.stop()  # interrupts a backoff wait
    t.join(HANG_S)
    assert not t.is_alive()
    # 0.05 doubling to the 0.4 cap (jitter in [0.5, 1]x shortens the waits, not the steps)
    assert src.opens >= 3 and backoffs[:3] == [0.1, 0.2, 0.4]
    assert all(b == 0.4 for b in backoffs[3:]) and src.opens <= 12


def test_stale_live_frames_are_dropped():
    class Slow(FakeDetector):
        def detect(self, image):
            time.sleep(0.03)
            return super().detect(image)

    src = FakeSource(60, live=True)
    p, _ = make(src, {"source": {"max_frame_age_s": 0.05, "queue_size": 8}}, detector=Slow())
    s = p.run()
    assert s["frames_stale"] > 0
    # One definition: dropped = never processed = capture-queue drops + stale drops; every
    # frame read is processed or dropped (this source ends, so nothing is left queued).
    assert s["frames_dropped"] == s["frames_dropped_queue"] + s["frames_stale"]
    assert s["frames_processed"] + s["frames_dropped"] == s["frames_in"] == 60
    assert p.stats.frames_dropped <= s["frames_dropped"]  # the overlay's figure is the same count
