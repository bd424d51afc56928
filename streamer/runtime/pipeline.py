"""One camera's pipeline: its threads, queues, watchdog and the one stop event (with
``runtime/capture.py``, the capture stage it runs, the only code that knows about concurrency).

    capture thread ──► FrameQueue ──► inference thread ──► ResultQueue ──► output (main thread)
                                            └──► EventQueue ──► event thread ──► sinks

Rules kept here:
- every queue is bounded; live sources (and files paced with ``realtime``) drop the oldest
  frame when full and count it, plain files block the reader instead (nothing is skipped);
- every blocking call has a timeout and checks the one ``stop`` event;
- a stage that ends sends its end-of-stream sentinel, so downstream finishes; a stage that
  crashes sends none (the watchdog restarts it and downstream keeps waiting); ``stop`` ends
  every loop regardless, and ``_finish`` still writes the final ``end`` events;
- a stage exception is logged with the frame id and the run goes on; a thread that dies anyway
  is restarted by the watchdog in the main loop and counted (a thread that keeps dying stops the
  run: a supervisor restart is then the better cure);
- live frames older than ``source.max_frame_age_s`` at inference are dropped (lag never grows);
- the capture stage (``runtime/capture.py``) owns the source: deadline calls, reconnect with
  backoff, outages (which reach inference as ``SourceChange`` markers: every track ends and
  ``source_down`` / ``source_up`` are emitted here);
- ``stop()`` returns ``run()`` within ``SHUTDOWN_S`` (1.5 s) even with a call stuck in cv2.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from streamer.config import Config
from streamer.media.output import OutputStage
from streamer.core.processor import Processed, Processor
from streamer.sinks.basic import SinkSet
from streamer.media.sources import redact
from streamer.runtime.meters import LatencyHistogram, RateMeter, process_age_s
from streamer.types import Event, Frame, Stats
from streamer.runtime import malloc
from streamer.runtime.capture import CaptureStage
from streamer.runtime.queues import EOS, BoundedQueue, SourceChange

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Result:
    frame: Frame
    processed: Processed
    stats: Stats


class Pipeline:
    """Runs one camera. ``run()`` blocks in the calling (main) thread until the source ends,
    ``max_frames`` is reached, the user quits the window, or ``stop()`` is called (signals)."""

    SHUTDOWN_S = 1.5
    WATCHDOG_EVERY_S = 0.2
    MAX_RESTARTS = 10  # per thread within RESTART_WINDOW_S; more means a crash loop: stop
    RESTART_WINDOW_S = 60.0
    MAX_FRAME_ERRORS = CaptureStage.MAX_FRAME_ERRORS

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
        self.capture = CaptureStage(cfg, source, self.frames, self.stop_event,
                                    prepare=getattr(processor, "prepare", None))
        self.frames_processed = 0
        self.frames_stale = 0
        self.stage_errors = 0
        self.thread_restarts = 0
        self.faces_seen_max = 0
        self.latency = LatencyHistogram()
        self.frame_age = LatencyHistogram()
        self.fps_meter = RateMeter()
        self.started = time.monotonic()
        self.first_frame_at: Optional[float] = None
        self.last_frame_mono: Optional[float] = None
        self._last_frame_id = -1
        self._media_ts: Optional[float] = None  # last frame's media time (files); None: wall clock
        self._stats = Stats()
        self._threads: dict[str, threading.Thread] = {}
        self._done: set[str] = set()
        self._targets = {"capture": self.capture.run, "inference": self._infer, "events": self._dispatch}
        self._restarts: dict[str, collections.deque] = {}
        self._stop_deadline: Optional[float] = None
        self._inference_ended = False

    # ---- control -------------------------------------------------------------------------
    def stop(self) -> None:
        self.stop_event.set()

    @property
    def stats(self) -> Stats:
        return self._stats

    @property
    def frames_dropped(self) -> int:
        """THE frames-dropped figure (README, Tests: "Frames dropped"), used by the summary,
        Stats (overlay), the web status and /metrics: frames read from the source that were
        never processed = dropped from the full capture queue (``frames.dropped``) + found
        stale at inference (``frames_stale``). So ``frames_in = frames_processed +
        frames_dropped + stage_errors + frames still queued``. Frames processed but not shown
        (the result queue dropped them; their events went out) are ``frames_not_shown``."""
        return self.frames.dropped + self.frames_stale

    def _spawn(self, name: str) -> None:
        t = threading.Thread(target=self._guard, args=(name,), name=name, daemon=True)
        self._threads[name] = t
        t.start()

    def _guard(self, name: str) -> None:
        # A stage sends its end-of-stream sentinel only when it ends normally: a crashed stage is
        # restarted, and its downstream must keep waiting for it (stop still ends everything).
        try:
            self._targets[name]()
            self._done.add(name)
        except Exception:
            log.exception("%s thread crashed; the watchdog will restart it", name)

    def _watchdog(self) -> None:
        now = time.monotonic()
        for name, t in list(self._threads.items()):
            if t.is_alive() or name in self._done or self.stop_event.is_set():
                continue
            recent = self._restarts.setdefault(name, collections.deque())
            while recent and now - recent[0] > self.RESTART_WINDOW_S:
                recent.popleft()
            if len(recent) >= self.MAX_RESTARTS:
                log.error("%s thread crashed %d times within %.0f s; stopping", name,
                          len(recent) + 1, self.RESTART_WINDOW_S)
                self.stop()
                return
            recent.append(now)
            self.thread_restarts += 1
            log.error("restarting %s thread (restart %d)", name, self.thread_restarts)
            self._spawn(name)

    # ---- the capture stage's counters, read by summary, /metrics, /health, the site heartbeat
    frames_in = property(lambda self: self.capture.frames_in)
    decode_errors = property(lambda self: self.capture.decode_errors)
    reconnects = property(lambda self: self.capture.reconnects)
    hung_calls = property(lambda self: self.capture.hung_calls)
    source_up = property(lambda self: self.capture.source_up)
    outages = property(lambda self: self.capture.outages)

    # ---- inference -----------------------------------------------------------------------
    def _emit(self, events) -> None:
        for ev in events:
            self.event_q.put(ev, self.stop_event)  # never blocks: drop-oldest past 100k

    def _infer(self) -> None:
        # No try/finally: a crash here is restarted by the watchdog, and downstream must not see
        # an end of stream for it. Exceptions outside the per-frame try (tick, emit) crash it.
        max_age = self.cfg.source.max_frame_age_s
        while True:
            item = self.frames.get(timeout=0.1)
            if self.stop_event.is_set() or item is EOS:
                break
            if item is None:
                self._emit(self.processor.tick(self._now(), self._last_frame_id))
                continue
            if isinstance(item, SourceChange):
                try:
                    self._source_change(item)
                except Exception:
                    self.stage_errors += 1
                    log.exception("handling source %s failed", "up" if item.up else "down")
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
            if frame.clock == "media":
                self._media_ts = frame.ts
            self._emit(p.events)
            self._emit(self.processor.tick(frame.ts, frame.id))
            self.frames_processed += 1
            if self.first_frame_at is None:
                self.first_frame_at = time.monotonic()
            self.last_frame_mono = time.monotonic()
            self.faces_seen_max = max(self.faces_seen_max, p.faces)
            self._stats = Stats(
                frames_in=self.frames_in, frames_processed=self.frames_processed,
                frames_dropped=self.frames_dropped,
                frames_stale=self.frames_stale, fps=self.fps_meter.tick(),
                latency_ms=self._stats.latency_ms, faces=p.faces,
                tracks=sum(1 for x in p.people if x.track.confirmed), reconnects=self.reconnects,
                source_up=self.source_up, counts=p.counts, zones=p.zones)
            self.results.put(Result(frame, p, self._stats), self.stop_event)
        self._end_inference()

    def _now(self) -> float:
        """Event time between frames: a file's clock stands still while no frame comes (its
        time is the media time of its last frame); a live source's is the wall clock."""
        return self._media_ts if self._media_ts is not None else time.time()

    def _end_inference(self) -> None:
        """Final ``end`` events, then the sentinels. Runs once: at the normal end of the
        inference thread, or from ``_finish`` when that thread died or is stuck at shutdown."""
        if self._inference_ended:
            return
        self._inference_ended = True
        try:
            self._emit(self.processor.finish(self._now(), self._last_frame_id))
        except Exception:
            self.stage_errors += 1
            log.exception("ending the tracks failed")
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
        next_watch = 0.0
        try:
            while True:
                now = time.monotonic()
                if self.stop_event.is_set() and self._stop_deadline is None:
                    self._stop_deadline = now + self.SHUTDOWN_S
                if self._stop_deadline is not None and now > self._stop_deadline:
                    log.warning("shutdown deadline reached; leaving stuck threads behind")
                    break
                if now >= next_watch:  # also while results flow: the events thread may be dead
                    self._watchdog()
                    next_watch = now + self.WATCHDOG_EVERY_S
                    malloc.trim(now)  # freed frames back to the kernel (runtime/malloc.py)
                r = self.results.get(timeout=0.05)
                if r is EOS:
                    break
                if r is None:
                    if not self.output.poll():
                        self.stop()
                    continue
                try:
                    keep = self.output.show(r.frame.image, r.processed.people, r.stats)
                except Exception:
                    self.stage_errors += 1
                    log.exception("output failed on frame %d", r.frame.id)
                    keep = True
                ms = (time.monotonic() - r.frame.mono) * 1000
                self.latency.add(ms)
                self._stats = _with_latency(self._stats, ms)
                if self.on_result:
                    try:
                        self.on_result(r)
                    except Exception:
                        self.stage_errors += 1
                        log.exception("result callback failed on frame %d", r.frame.id)
                if not keep:
                    self.stop()
        finally:
            self.stop_event.set()
            self._finish()
        return self.summary()

    def _finish(self) -> None:
        # One budget from the moment stop was seen, so stop() -> run() returns within SHUTDOWN_S
        # (plus a last moment to write the final events).
        deadline = self._stop_deadline or time.monotonic() + self.SHUTDOWN_S
        deadline = max(deadline, time.monotonic() + 0.1)
        for name in ("inference", "events", "capture"):
            t = self._threads.get(name)
            if t is not None:
                t.join(max(0.0, deadline - time.monotonic()))
        self.capture.close_helpers(deadline)
        inf = self._threads.get("inference")
        if inf is not None and not inf.is_alive():
            self._end_inference()  # no-op after a normal end; the final `end` events after a crash
        elif not self._inference_ended:
            log.error("inference thread stuck at shutdown; open tracks get no end event")
        # Events the dispatcher did not reach before the deadline are still written.
        while True:
            ev = self.event_q.get(timeout=0)
            if ev is None or ev is EOS:
                break
            self.sinks.emit(ev)
        self.sinks.close()
        self.output.close()
        try:
            # Safe even with a read stuck in a helper: a stuck call releases its own capture.
            self.source.close()
        except Exception:
            log.exception("closing the source failed")

    def summary(self) -> dict:
        now = time.monotonic()
        wall = now - self.started
        age = process_age_s()
        busy = (self.last_frame_mono or now) - (self.first_frame_at or self.started)
        n = self.frames_processed
        return {
            "frames_in": self.frames_in,
            "frames_processed": n,
            "frames_dropped": self.frames_dropped,  # = queue + stale: the one definition
            "frames_dropped_queue": self.frames.dropped,
            "frames_stale": self.frames_stale,
            "frames_not_shown": self.results.dropped,  # processed, events out, output skipped
            "processing_fps": round((n - 1) / busy, 1) if n > 1 and busy > 0 else 0.0,
            "wall_s": round(wall, 2),
            "startup_s": round((self.first_frame_at or self.started) - self.started, 3),
            # launch -> first processed frame (imports and model loading included)
            "ready_s": (round(self.first_frame_at - (now - age), 3)
                        if self.first_frame_at is not None and age is not None else None),
            "faces_max_in_frame": self.faces_seen_max,
            "people": self.processor.events.people_started,
            "events": dict(self.sinks.by_type),
            "sink_errors": {k: v for k, v in self.sinks.errors.items() if v},
            "mqtt_unsent": self.sinks.unsent("mqtt"),  # None without MQTT; see MqttSink.health
            "mqtt_dropped": self.sinks.health_of("mqtt", "dropped"),
            "attribute_calls": self.processor.attr_calls,
            "attribute_calls_per_frame": round(self.processor.attr_calls / n, 3) if n else 0.0,
            "scene_cuts": self.processor.scene_cuts,
            # frames whose detector input was made on the capture thread (see CaptureStage)
            "frames_prepared_ahead": self.capture.prepared,
            "latency_ms_p50": self.latency.percentile(50),
            "latency_ms_p95": self.latency.percentile(95),
            "frame_age_ms_p95": self.frame_age.percentile(95),
            "source_backlog_ms_max": round(getattr(self.source, "backlog_max_s", 0.0) * 1000, 1),
            "reconnects": self.reconnects,
            "outages": self.outages,
            "hung_calls": self.hung_calls,
            "decode_errors": self.decode_errors,
            "stage_errors": self.stage_errors,
            "thread_restarts": self.thread_restarts,
        }


def _with_latency(s: Stats, ms: float) -> Stats:
    return dataclasses.replace(s, latency_ms=ms)
