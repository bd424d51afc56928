"""The channel from one camera process to the site process, child side.

Messages are pickled tuples over a ``multiprocessing.connection.Connection`` on a socketpair
(both ends are our own processes; nothing from outside is ever unpickled):

    child -> parent  ("hello", {"size": [w, h], "fps": f, "pid": n})   the pipeline is built
                     ("evs", [(event dict, crop jpeg or None), ...])     events, in order
                     ("hb", {...stats...})                               heartbeat, ~2/s
                     ("jpg", bytes)                                      latest annotated frame
                     ("fatal", "one line")                               could not start
                     ("bye", summary dict)                               clean end
    parent -> child  ("cfg", Config, options dict)                       first message
                     ("want", seconds)                                   someone watches: more jpgs
                     ("stop",)                                           same as SIGTERM

A slow parent never blocks the camera: the pipeline only appends to ``Outbox`` (never waits);
one sender thread does the blocking ``send``. Heartbeat and snapshot are single slots (a newer
one replaces an unsent one: drop oldest); events are a bounded FIFO that is never dropped
while it has room; past ``max_events`` the oldest is dropped and counted in ``events_lost``
(reported in every heartbeat). Every event is also in the camera's own JSONL / MQTT sinks.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Optional

import cv2
import numpy as np

from streamer.media.output import LatestJpeg

log = logging.getLogger(__name__)

EVENT_BATCH = 200  # events per "evs" message


class Outbox:
    def __init__(self, conn, max_events: int = 20_000):
        self.conn = conn
        self.max_events = max_events
        self.events_lost = 0
        self.sent = 0
        self._events: collections.deque = collections.deque()
        self._hb: Optional[dict] = None
        self._jpg: Optional[bytes] = None
        self._other: collections.deque = collections.deque()  # hello, fatal, bye
        self._cond = threading.Condition()
        self._closed = False
        self.broken = False  # the parent went away
        self._thread = threading.Thread(target=self._run, name="site-sender", daemon=True)
        self._thread.start()

    # ---- producers (never block) -----------------------------------------------------------
    def event(self, ev: dict, crop: Optional[bytes] = None) -> None:
        with self._cond:
            if len(self._events) >= self.max_events:
                self._events.popleft()
                self.events_lost += 1
                if self.events_lost == 1 or self.events_lost % 1000 == 0:
                    log.error("site channel full: %d events not sent to the site (still in this "
                              "camera's own sinks)", self.events_lost)
            self._events.append((ev, crop))
            self._cond.notify_all()

    def heartbeat(self, hb: dict) -> None:
        with self._cond:
            self._hb = hb
            self._cond.notify_all()

    def snapshot(self, jpeg: bytes) -> None:
        with self._cond:
            self._jpg = jpeg
            self._cond.notify_all()

    def control(self, msg: tuple) -> None:
        with self._cond:
            self._other.append(msg)
            self._cond.notify_all()

    # ---- the sender thread -----------------------------------------------------------------
    def _next(self) -> Optional[tuple]:
        # Order: control (hello/fatal/bye come after the events before them: flushed first),
        # events, heartbeat, snapshot.
        if self._events:
            n = min(EVENT_BATCH, len(self._events))
            return ("evs", [self._events.popleft() for _ in range(n)])
        if self._other:
            return self._other.popleft()
        if self._hb is not None:
            hb, self._hb = self._hb, None
            return ("hb", hb)
        if self._jpg is not None:
            jpg, self._jpg = self._jpg, None
            return ("jpg", jpg)
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._events or self._other
                                    or self._hb is not None or self._jpg is not None, 0.5)
                msg = self._next()
                if msg is None and self._closed:
                    return
            if msg is None:
                continue
            try:
                self.conn.send(msg)
                self.sent += 1
            except (OSError, EOFError, ValueError):
                self.broken = True  # parent gone: nothing to send to; the pipeline is stopped
                return

    def close(self, timeout: float = 1.0) -> bool:
        """Send what is queued (within ``timeout``); True when everything went out."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()


class SnapshotJpeg(LatestJpeg):
    """The annotated frame for the site's snapshot / MJPEG at a low rate: ``idle_fps`` always
    (the grid shows a recent picture without asking), ``watch_fps`` while the parent says
    someone watches (``want``). Frames wider than ``max_width`` are downscaled first: this is a
    preview, and the channel must stay light."""

    def __init__(self, outbox: Outbox, idle_fps: float = 1.0, watch_fps: float = 5.0,
                 max_width: int = 960, quality: int = 75):
        super().__init__(quality)
        self.outbox = outbox
        self.idle_interval = 1.0 / idle_fps
        self.watch_interval = 1.0 / watch_fps
        self.max_width = max_width
        self._next_due = 0.0
        self.last_image: Optional[np.ndarray] = None  # the frame last drawn on (crops avoid it)

    @property
    def wanted(self) -> bool:
        return time.monotonic() >= self._next_due

    def put(self, image: np.ndarray) -> None:
        now = time.monotonic()
        self._next_due = now + (self.watch_interval if super().wanted else self.idle_interval)
        self.last_image = image
        h, w = image.shape[:2]
        small = image
        if w > self.max_width:
            small = cv2.resize(image, (self.max_width, int(round(h * self.max_width / w))),
                               interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            self.outbox.snapshot(buf.tobytes())


class BestFaces:
    """With ``privacy.keep_crops``: per confirmed track, a small JPEG of its best view so far
    (largest detected box x score), handed over with its ``end`` event. Frames the overlay drew
    on are skipped, so a thumbnail never carries the box and labels."""

    MAX_TRACKS = 256
    SIZE = 112  # px, the longer side of a thumbnail

    def __init__(self, snapshot: Optional[SnapshotJpeg] = None):
        self.snapshot = snapshot
        self._best: dict[int, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def on_result(self, r) -> None:
        image = r.frame.image
        if self.snapshot is not None and self.snapshot.last_image is image:
            return
        h, w = image.shape[:2]
        for p in r.processed.people:
            t = p.track
            if not (t.confirmed and t.detected):
                continue
            x1, y1, x2, y2 = (int(round(v)) for v in t.box)
            quality = max(0, x2 - x1) * max(0, y2 - y1) * t.score
            with self._lock:
                prev = self._best.get(t.id)
            if prev is not None and prev[0] >= quality:
                continue
            x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
            if x2 - x1 < 8 or y2 - y1 < 8:
                continue
            crop = image[y1:y2, x1:x2]
            scale = self.SIZE / max(crop.shape[:2])
            if scale < 1:
                crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
            if ok:
                with self._lock:
                    if len(self._best) >= self.MAX_TRACKS and t.id not in self._best:
                        self._best.pop(next(iter(self._best)))
                    self._best[t.id] = (quality, buf.tobytes())

    def pop(self, track_id) -> Optional[bytes]:
        with self._lock:
            got = self._best.pop(track_id, None)
        return got[1] if got else None


class SiteSink:
    """The pipeline's extra sink: every event, as its documented dict, into the outbox (with
    the best face crop for an ``end`` event when ``faces`` is given)."""

    name = "site"

    def __init__(self, outbox: Outbox, faces: Optional[BestFaces] = None):
        self.outbox = outbox
        self.faces = faces

    def emit(self, event) -> None:
        crop = None
        if self.faces is not None and event.type == "end":
            crop = self.faces.pop(event.payload.get("track_id"))
        self.outbox.event(event.to_dict(), crop)

    def close(self) -> None:
        pass
