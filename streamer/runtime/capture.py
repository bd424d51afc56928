"""The capture stage: reads the source into the frame queue, and owns everything about a
source that fails (deadline calls, lost sources, reconnect with backoff, outages).

Rules kept here:
- live frames (and files paced with ``realtime``) go into a drop-oldest queue; plain files
  block the reader instead (nothing is skipped); ``max_frames`` ends the stage;
- every call into a live source (open, read, close) runs in a helper thread with a deadline, as
  cv2 cannot interrupt a call stuck in FFmpeg: no frame for ``source.read_timeout_s`` means the
  source is lost, the stuck helper is abandoned (it releases its capture if cv2 ever returns)
  and a fresh capture is opened;
- a lost live source is reopened with exponential backoff (each wait a random 50-100 % of the
  step, so cameras behind one failed switch do not retry in lockstep), forever by default;
  the outage is announced downstream as a ``SourceChange`` (down at the loss, up with
  ``outage_s`` = last frame before to first frame after). The backoff resets only once frames
  flow again, so a camera that accepts connections but sends nothing is not hammered;
- an undecodable frame is skipped and counted; ``MAX_FRAME_ERRORS`` in a row end a file and
  count as a lost live source;
- the stage ends by sending ``EOS``; a crash sends none (the pipeline's watchdog restarts
  ``run``, and the counters and outage state here survive the restart).

The counters (``frames_in``, ``reconnects``, ...) are written by the capture thread only and
read by others without a lock (ints and bools: a read sees the old or the new value).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from typing import Any, Callable, Optional

from streamer.config import Config
from streamer.errors import SourceError
from streamer.media.sources import EndOfStream, SourceLost, redact
from streamer.runtime.deadline import CallTimeout, DeadlineCaller
from streamer.runtime.queues import EOS, BoundedQueue, SourceChange
from streamer.types import Frame

log = logging.getLogger(__name__)


class CaptureStage:
    """Reads ``source`` into ``frames`` until the end, ``max_frames``, a source given up on,
    or ``stop_event``. ``run`` is the thread's body (the pipeline owns the thread)."""

    OPEN_GRACE_S = 2.0  # beyond source.open_timeout_s before an open counts as stuck
    CLOSE_TIMEOUT_S = 2.0
    HELPER_GRACE_S = 0.25  # at shutdown, for an in-flight source call to return
    MAX_FRAME_ERRORS = 100  # consecutive undecodable frames: a file ends, a live source is lost

    def __init__(self, cfg: Config, source, frames: BoundedQueue, stop_event: threading.Event,
                 prepare: Optional[Callable] = None):
        """``prepare(image)``: per-frame work that needs the image alone (the processor's
        ``prepare``), done here, beside decoding, and carried in ``Frame.prepared``, while
        the inference stage has frames waiting: then inference is the stage that bounds the
        stream and this thread has time to spare. With the queue empty, inference waits for
        this thread, which is then the bound (a fast detector behind a 1080p decode), so the
        frame goes as read and the inference stage prepares it itself: the work goes to
        whichever thread has the idle core (measured at 1080p on a 2-core Zen 5 box: +6 %
        fps over preparing every frame here, median of 5 interleaved rounds; see README)."""
        self.cfg = cfg
        self.source = source
        self.prepare = prepare
        self.prepare_errors = 0
        self.prepared = 0  # frames prepared here (the rest: by the inference stage)
        self.frames = frames
        self.stop_event = stop_event
        self.live = bool(source.live)
        self.frames_in = 0
        self.decode_errors = 0
        self.reconnects = 0
        self.hung_calls = 0  # source calls abandoned past their deadline
        self.source_up = True
        self.outages = 0
        self._io: Optional[DeadlineCaller] = None  # helper for live-source calls; replaced when stuck
        self._helpers: list[threading.Thread] = []  # current and abandoned helper threads
        self._last_read_mono: Optional[float] = None
        self._down_since: Optional[float] = None  # mono time of the last frame before an outage
        self._backoff = cfg.source.backoff_initial_s

    def run(self) -> None:
        cfg = self.cfg.source
        src = self.source
        fps = src.fps or 25.0
        pace = cfg.realtime and not self.live
        limit = self.cfg.output.max_frames
        t0, n = time.monotonic(), 0
        errors = 0  # consecutive undecodable frames
        while not self.stop_event.is_set():
            if limit and self.frames_in >= limit:
                break
            if pace:
                wait = t0 + n / fps - time.monotonic()
                n += 1
                if wait > 0 and self.stop_event.wait(wait):
                    break
            try:
                frame = self._read()
            except EndOfStream:
                if cfg.loop and src.rewind():
                    t0, n = time.monotonic(), 0
                    continue
                break
            except SourceLost as e:
                if self.stop_event.is_set():
                    break
                if not (self.live and cfg.reconnect):
                    log.error("source lost: %s", redact(str(e)))
                    break
                if not self._reconnect(str(e)):
                    break
                continue
            except Exception as e:  # FrameError, cv2.error: a decode error skips the frame
                self.decode_errors += 1
                errors += 1
                if errors == 1 or self.decode_errors % 100 == 0:
                    log.warning("skipping undecodable frame (%d so far): %s", self.decode_errors,
                                redact(str(e)))
                if errors < self.MAX_FRAME_ERRORS:
                    continue
                errors = 0
                if self.live and cfg.reconnect:
                    if self._reconnect(f"{self.MAX_FRAME_ERRORS} undecodable frames in a row"):
                        continue
                else:
                    log.error("%d undecodable frames in a row; ending", self.MAX_FRAME_ERRORS)
                break
            errors = 0
            self._last_read_mono = frame.mono
            if self._down_since is not None:
                self._source_back()
            self.frames_in += 1
            if self.prepare is not None and len(self.frames):
                frame = self._prepared(frame)
            self.frames.put(frame, self.stop_event)
        self.frames.put_control(EOS)

    def _prepared(self, frame: Frame) -> Frame:
        try:
            frame = dataclasses.replace(frame, prepared=self.prepare(frame.image))
            self.prepared += 1
            return frame
        except Exception:  # noqa: BLE001 - the inference stage then derives it itself
            self.prepare_errors += 1
            if self.prepare_errors == 1:
                log.exception("preparing frame %d on the capture thread failed; the inference "
                              "stage does it instead", frame.id)
            return frame

    def close_helpers(self, deadline: float) -> None:
        """At shutdown: end the helper thread and give in-flight source calls a short grace
        (an in-flight read normally ends within a frame interval and then releases its
        capture; a stuck one would eat the whole budget up to ``deadline``)."""
        if self._io is not None:
            self._io.close()
        grace = min(deadline, time.monotonic() + self.HELPER_GRACE_S)
        for t in self._helpers:
            t.join(max(0.0, grace - time.monotonic()))

    # ---- source calls --------------------------------------------------------------------
    def _read(self) -> Frame:
        if not self.live:  # files and folders do not hang; no helper hop per frame
            return self.source.read()
        timeout = self.cfg.source.read_timeout_s
        try:
            return self._call(self.source.read, timeout)
        except CallTimeout:
            raise SourceLost(f"no frame for {timeout:g} s (read stuck in the decoder)") from None

    def _call(self, fn: Callable[[], Any], timeout: float, close_on_timeout: bool = True):
        """``fn()`` in the helper thread with a deadline; on overrun (or stop) the helper is
        abandoned and the source closed (safe: a stuck call releases its own capture if it
        ever returns)."""
        if self._io is None:
            self._helpers = [t for t in self._helpers if t.is_alive()]
            self._io = DeadlineCaller(f"capture-io-{len(self._helpers) + 1}")
            self._helpers.append(self._io.thread)
        try:
            return self._io.call(fn, timeout, self.stop_event)
        except CallTimeout:
            self._io = None
            if not self.stop_event.is_set():
                self.hung_calls += 1
                log.warning("source call %s stuck for %.1f s; abandoning it (%d helper threads "
                            "still stuck)", getattr(fn, "__name__", "?"), timeout,
                            sum(t.is_alive() for t in self._helpers) - 1)
            if close_on_timeout:
                try:
                    self.source.close()
                except Exception:
                    log.exception("closing the source failed")
            raise

    # ---- outages -------------------------------------------------------------------------
    def _reconnect(self, reason: str) -> bool:
        """Reopen a lost live source until it opens (True) or stop / max_reconnects (False).
        The outage itself ends when the first frame arrives (``_source_back``)."""
        cfg = self.cfg.source
        if self._down_since is None:  # a new outage, not a reopen that died before any frame
            now = time.monotonic()
            self._down_since = self._last_read_mono or now
            self.source_up = False
            self.outages += 1
            log.warning("source %s lost (%s); reconnecting", redact(self.source.uri),
                        redact(reason))
            self.frames.put_control(SourceChange(False, time.time(), reason=reason))
        else:
            log.info("source %s lost again before its first frame (%s)",
                     redact(self.source.uri), redact(reason))
        attempts = 0
        while not self.stop_event.is_set():
            try:
                self._call(self.source.close, self.CLOSE_TIMEOUT_S, close_on_timeout=False)
            except CallTimeout:
                pass
            except Exception as e:
                log.warning("closing the lost source failed: %s", redact(str(e)))
            # Jitter: a random 50-100 % of the step, so many cameras do not retry in lockstep.
            if self.stop_event.wait(self._backoff * random.uniform(0.5, 1.0)):
                return False
            self._backoff = min(self._backoff * 2, cfg.backoff_max_s)
            attempts += 1
            try:
                self._call(self.source.open, cfg.open_timeout_s + self.OPEN_GRACE_S)
                log.info("source %s reopened (attempt %d)", redact(self.source.uri), attempts)
                return True
            except CallTimeout as e:
                if self.stop_event.is_set():
                    return False
                err = f"open stuck: {e}"
            except SourceError as e:
                err = str(e)
            except Exception as e:  # cv2.error and friends: keep trying, never crash the thread
                err = f"{type(e).__name__}: {e}"
            log.info("reconnect attempt %d failed: %s", attempts, redact(err))
            if cfg.max_reconnects and attempts >= cfg.max_reconnects:
                log.error("giving up on %s after %d reconnect attempts", redact(self.source.uri),
                          attempts)
                return False
        return False

    def _source_back(self) -> None:
        outage = time.monotonic() - self._down_since
        self._down_since = None
        self._backoff = self.cfg.source.backoff_initial_s
        self.reconnects += 1
        self.source_up = True
        log.warning("source %s back after %.1f s without frames", redact(self.source.uri), outage)
        self.frames.put_control(SourceChange(True, time.time(), outage))
