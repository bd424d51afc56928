"""Threads, queues and the stop event: the only module that knows about concurrency.

    capture thread ──► FrameQueue ──► inference thread ──► ResultQueue ──► output (main thread)
                                            └──► EventQueue ──► event thread ──► sinks

Rules kept here:
- every queue is bounded; live sources (and files paced with ``realtime``) drop the oldest
  frame when full and count it, plain files block the reader instead (nothing is skipped);
- every blocking call has a timeout and checks the one ``stop`` event;
- end-of-stream sentinels are sent in ``finally`` so downstream always finishes;
- a stage exception is logged with the frame id and the run goes on; a thread that dies anyway
  is restarted by the watchdog in the main loop and counted;
- live frames older than ``source.max_frame_age_s`` at inference are dropped (lag never grows);
- a lost live source is reopened with exponential backoff and jitter, forever by default; the
  outage ends every track and emits ``source_down`` / ``source_up``.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .config import Config
from .errors import SourceError
from .output import OutputStage
from .processor import Processed, Processor
from .sinks import SinkSet
from .sources import EndOfStream, SourceLost, redact
from .stats import LatencyHistogram, RateMeter
from .types import Event, Frame, Stats

log = logging.getLogger(__name__)

EOS = object()  # end-of-stream sentinel


@dataclass(frozen=True)
class SourceChange:
    """Control item in the frame queue: the source went down or came back."""

    up: bool
    ts: float
    outage_s: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class Result:
    frame: Frame
    processed: Processed
    stats: Stats


class BoundedQueue:
    """A bounded FIFO with a full-queue policy: ``drop_oldest`` (live) or block (files).

    ``put`` blocks at most until ``stop`` is set (checked every ``poll`` seconds). Control items
    (end of stream, source down/up) sent with ``put_control`` are never refused and never evict
    a frame: they may exceed the bound by the few control items in flight.
    """

    def __init__(self, maxsize: int, drop_oldest: bool, poll: float = 0.1):
        self.maxsize = max(1, maxsize)
        self.drop_oldest = drop_oldest
        self.poll = poll
        self.dropped = 0
        self._q: collections.deque = collections.deque()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self._q)

    def put(self, item: Any, stop: threading.Event) -> bool:
        with self._cond:
            while len(self._q) >= self.maxsize:
                if self.drop_oldest:
                    self._q.popleft()
                    self.dropped += 1
                    break
                if stop.is_set():
                    return False
                self._cond.wait(self.poll)
            self._q.append(item)
            self._cond.notify_all()
            return True

    def put_control(self, item: Any) -> None:
        with self._cond:
            self._q.append(item)
            self._cond.notify_all()

    def get(self, timeout: float) -> Any:
        """The oldest item, or None after ``timeout`` seconds with nothing to get."""
        with self._cond:
            if not self._q and not self._cond.wait_for(lambda: bool(self._q), timeout):
                return None
            item = self._q.popleft()
            self._cond.notify_all()
            return item


class Pipeline:
    """Runs one camera. ``run()`` blocks in the calling (main) thread until the source ends,
    ``max_frames`` is reached, the user quits the window, or ``stop()`` is called (signals)."""

    SHUTDOWN_S = 1.5

    def __init__(self, cfg: Config, source, processor: Processor, sinks: SinkSet,
                 output: OutputStage, on_result: Optional[Callable[[Result], None]] = None):
        self.cfg = cfg
        self.source = source
        self.processor = processor
        self.sinks = sinks
        self.output = output
        self.on_result = on_result
        self.stop_event = threading.Event()
        self.live = bool(source.live)
        drop = self.live or cfg.source.realtime
        self.frames = BoundedQueue(cfg.source.queue_size, drop_oldest=drop)
        self.results = BoundedQueue(max(2, cfg.source.queue_size), drop_oldest=drop)
        self.event_q = BoundedQueue(100_000, drop_oldest=True)
        self.frames_in = 0
        self.frames_processed = 0
        self.frames_stale = 0
        self.decode_errors = 0
        self.stage_errors = 0
        self.reconnects = 0
        self.thread_restarts = 0
        self.source_up = True
        self.faces_seen_max = 0
        self.latency = LatencyHistogram()
        self.frame_age = LatencyHistogram()
        self.fps_meter = RateMeter()
        self.started = time.monotonic()
        self.first_frame_at: Optional[float] = None
        self.last_frame_mono: Optional[float] = None
        self._last_frame_id = -1
        self._stats = Stats()
        self._threads: dict[str, threading.Thread] = {}
        self._done: set[str] = set()
        self._targets = {"capture": self._capture, "inference": self._infer, "events": self._dispatch}

    # ---- control -------------------------------------------------------------------------
    def stop(self) -> None:
        self.stop_event.set()

    @property
    def stats(self) -> Stats:
        return self._stats

    def _spawn(self, name: str) -> None:
        t = threading.Thread(target=self._guard, args=(name,), name=name, daemon=True)
        self._threads[name] = t
        t.start()

    def _guard(self, name: str) -> None:
        try:
            self._targets[name]()
            self._done.add(name)
        except Exception:
            log.exception("%s thread crashed; the watchdog will restart it", name)

    def _watchdog(self) -> None:
        for name, t in list(self._threads.items()):
            if not t.is_alive() and name not in self._done and not self.stop_event.is_set():
                self.thread_restarts += 1
                log.error("restarting %s thread (restart %d)", name, self.thread_restarts)
                self._spawn(name)

    # ---- capture -------------------------------------------------------------------------
    def _capture(self) -> None:
        cfg = self.cfg.source
        src = self.source
        fps = src.fps or 25.0
        pace = cfg.realtime and not self.live
        limit = self.cfg.output.max_frames
        t0, n = time.monotonic(), 0
        try:
            while not self.stop_event.is_set():
                if limit and self.frames_in >= limit:
                    break
                if pace:
                    wait = t0 + n / fps - time.monotonic()
                    n += 1
                    if wait > 0 and self.stop_event.wait(wait):
                        break
                try:
                    frame = src.read()
                except EndOfStream:
                    if cfg.loop and src.rewind():
                        t0, n = time.monotonic(), 0
                        continue
                    break
                except SourceLost as e:
                    if not (self.live and cfg.reconnect):
                        log.error("source lost: %s", e)
                        break
                    if not self._reconnect(str(e)):
                        break
                    continue
                except Exception as e:  # a decode error skips the frame, never the run
                    self.decode_errors += 1
                    log.warning("skipping undecodable frame: %s", e)
                    continue
                self.frames_in += 1
                self.frames.put(frame, self.stop_event)
        finally:
            self.frames.put_control(EOS)

    def _reconnect(self, reason: str) -> bool:
        cfg = self.cfg.source
        down_mono, down_ts = time.monotonic(), time.time()
        self.source_up = False
        log.warning("source %s lost (%s); reconnecting", redact(self.source.uri), reason)
        self.frames.put_control(SourceChange(False, down_ts, reason=reason))
        delay, attempts = cfg.backoff_initial_s, 0
        while not self.stop_event.is_set():
            self.source.close()
            # Full jitter around the current delay so many cameras do not retry in lockstep.
            if self.stop_event.wait(delay * random.uniform(0.5, 1.0)):
                return False
            attempts += 1
            try:
                self.source.open()
            except SourceError as e:
                log.info("reconnect attempt %d failed: %s", attempts, e)
                if cfg.max_reconnects and attempts >= cfg.max_reconnects:
                    log.error("giving up after %d reconnect attempts", attempts)
                    return False
                delay = min(delay * 2, cfg.backoff_max_s)
                continue
            outage = time.monotonic() - down_mono
            self.reconnects += 1
            self.source_up = True
            log.warning("source %s back after %.1f s", redact(self.source.uri), outage)
            self.frames.put_control(SourceChange(True, time.time(), outage))
            return True
        return False

    # ---- inference -----------------------------------------------------------------------
    def _emit(self, events) -> None:
        for ev in events:
            self.event_q.put(ev, self.stop_event)  # never blocks: drop-oldest past 100k

    def _infer(self) -> None:
        max_age = self.cfg.source.max_frame_age_s
        try:
            while True:
                item = self.frames.get(timeout=0.1)
                if self.stop_event.is_set() or item is EOS:
                    break
                if item is None:
                    self._emit(self.processor.tick(time.time(), self._last_frame_id))
                    continue
                if isinstance(item, SourceChange):
                    self._source_change(item)
                    continue
                frame: Frame = item
                age = time.monotonic() - frame.mono
                self.frame_age.add(age * 1000)
                if self.live and age > max_age:
                    self.frames_stale += 1
                    continue
                try:
                    p = self.processor.process(frame)
                except Exception:
                    self.stage_errors += 1
                    log.exception("inference failed on frame %d; skipping it", frame.id)
                    continue
                self._last_frame_id = frame.id
                self._emit(p.events)
                self._emit(self.processor.tick(frame.ts, frame.id))
                self.frames_processed += 1
                if self.first_frame_at is None:
                    self.first_frame_at = time.monotonic()
                self.last_frame_mono = time.monotonic()
                self.faces_seen_max = max(self.faces_seen_max, p.faces)
                self._stats = Stats(
                    frames_in=self.frames_in, frames_processed=self.frames_processed,
                    frames_dropped=self.frames.dropped + self.results.dropped,
                    frames_stale=self.frames_stale, fps=self.fps_meter.tick(),
                    latency_ms=self._stats.latency_ms, faces=p.faces,
                    tracks=sum(1 for t in p.tracks if t.confirmed), reconnects=self.reconnects,
                    source_up=self.source_up, counts=p.counts)
                self.results.put(Result(frame, p, self._stats), self.stop_event)
        finally:
            self._emit(self.processor.finish(time.time(), self._last_frame_id))
            self.event_q.put_control(EOS)
            self.results.put_control(EOS)

    def _source_change(self, ch: SourceChange) -> None:
        bld = self.processor.events
        if ch.up:
            self._emit([bld.make("source_up", ch.ts, self._last_frame_id,
                                 {"outage_s": round(ch.outage_s, 3),
                                  "source": redact(self.source.uri)})])
        else:
            self._emit(self.processor.outage(ch.ts, self._last_frame_id))
            self._emit([bld.make("source_down", ch.ts, self._last_frame_id,
                                 {"reason": redact(ch.reason), "source": redact(self.source.uri)})])

    # ---- events --------------------------------------------------------------------------
    def _dispatch(self) -> None:
        while True:
            ev = self.event_q.get(timeout=0.2)
            if ev is EOS:
                return
            if ev is not None:
                self.sinks.emit(ev)

    # ---- main loop (output stage) --------------------------------------------------------
    def run(self) -> dict:
        for name in ("events", "inference", "capture"):
            self._spawn(name)
        stop_deadline = None
        try:
            while True:
                if self.stop_event.is_set() and stop_deadline is None:
                    stop_deadline = time.monotonic() + self.SHUTDOWN_S
                if stop_deadline is not None and time.monotonic() > stop_deadline:
                    log.warning("shutdown deadline reached; leaving stuck threads behind")
                    break
                r = self.results.get(timeout=0.05)
                if r is EOS:
                    break
                if r is None:
                    self._watchdog()
                    if not self.output.poll():
                        self.stop()
                    continue
                try:
                    keep = self.output.show(r.frame.image, r.processed.tracks, r.processed.attrs, r.stats)
                except Exception:
                    self.stage_errors += 1
                    log.exception("output failed on frame %d", r.frame.id)
                    keep = True
                ms = (time.monotonic() - r.frame.mono) * 1000
                self.latency.add(ms)
                self._stats = _with_latency(self._stats, ms)
                if self.on_result:
                    self.on_result(r)
                if not keep:
                    self.stop()
        finally:
            self.stop_event.set()
            self._finish()
        return self.summary()

    def _finish(self) -> None:
        deadline = time.monotonic() + self.SHUTDOWN_S
        for name in ("inference", "events", "capture"):
            t = self._threads.get(name)
            if t is not None:
                t.join(max(0.0, deadline - time.monotonic()))
        # Events the dispatcher did not reach before the deadline are still written.
        while True:
            ev = self.event_q.get(timeout=0)
            if ev is None or ev is EOS:
                break
            self.sinks.emit(ev)
        self.sinks.close()
        self.output.close()
        try:
            self.source.close()
        except Exception:
            pass

    def summary(self) -> dict:
        wall = time.monotonic() - self.started
        busy = (self.last_frame_mono or time.monotonic()) - (self.first_frame_at or self.started)
        n = self.frames_processed
        return {
            "frames_in": self.frames_in,
            "frames_processed": n,
            "frames_dropped": self.frames.dropped + self.results.dropped,
            "frames_stale": self.frames_stale,
            "processing_fps": round((n - 1) / busy, 1) if n > 1 and busy > 0 else 0.0,
            "wall_s": round(wall, 2),
            "startup_s": round((self.first_frame_at or self.started) - self.started, 3),
            "faces_max_in_frame": self.faces_seen_max,
            "people": self.processor.events.people_started,
            "events": dict(self.sinks.by_type),
            "sink_errors": {k: v for k, v in self.sinks.errors.items() if v},
            "attribute_calls": self.processor.attr_calls,
            "attribute_calls_per_frame": round(self.processor.attr_calls / n, 3) if n else 0.0,
            "scene_cuts": self.processor.scene_cuts,
            "latency_ms_p50": self.latency.percentile(50),
            "latency_ms_p95": self.latency.percentile(95),
            "reconnects": self.reconnects,
            "stage_errors": self.stage_errors,
            "thread_restarts": self.thread_restarts,
        }


def _with_latency(s: Stats, ms: float) -> Stats:
    return dataclasses.replace(s, latency_ms=ms)
