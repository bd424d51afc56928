"""MJPEG (``multipart/x-mixed-replace``) responses: the live pipeline's frames, or a site
camera's snapshots polled.

Contract: newest frames only (a slow viewer skips frames instead of building a backlog); at
most ``slots`` viewers at once (each holds a server thread while it watches) else 503
``busy``; every stream ends within about a poll interval of ``stop`` being set, so the
server's shutdown never waits on a viewer.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator, Optional

from flask import Response

from streamer.web.errors import ApiError

MAX_MJPEG_CLIENTS = 8
WAIT_S = 0.5  # how often a waiting stream looks at the stop event
SNAPSHOT_POLL_S = 0.2  # a site camera's snapshot is re-read this often (it changes ~5-10x/s)
REPEAT_S = 2.0  # an unchanged snapshot is sent again this often (see snapshot_frames)


FIRST = b"--frame\r\n"


def part(jpeg: bytes) -> bytes:
    """One frame, followed by the next boundary: a browser shows a part only once it sees the
    boundary after it, so sending it right away shows each frame now, not one frame late."""
    return (b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
            + jpeg + b"\r\n--frame\r\n")


def latest_jpeg_frames(mjpeg, stop: threading.Event,
                       source_stopped: Callable[[], bool] = lambda: False) -> Iterator[bytes]:
    """Frames of a ``media.output.LatestJpeg`` (the in-process pipeline's output stage)."""
    lead = FIRST
    seq = 0
    while not stop.is_set():
        new, jpeg = mjpeg.wait(seq, timeout=WAIT_S)
        if new == seq or jpeg is None:
            if source_stopped():
                return
            continue
        seq = new
        yield lead + part(jpeg)
        lead = b""


def snapshot_frames(snapshot: Callable[[], Optional[bytes]], stop: threading.Event,
                    poll_s: float = SNAPSHOT_POLL_S, repeat_s: float = REPEAT_S) -> Iterator[bytes]:
    """A site camera's latest snapshots as they change (the stream ends with the server or
    when the camera leaves the site).

    Chromium shows a part only once the next part starts, so the first frame is sent twice
    and an unchanged frame again every ``repeat_s``: a still scene (or a camera that stopped
    delivering) still shows its last frame rather than nothing."""
    last, sent_at = None, 0.0
    while not stop.is_set():
        try:
            jpeg = snapshot()
        except KeyError:  # the camera left the site
            return
        now = time.monotonic()
        if jpeg is not None and (jpeg != last or now - sent_at >= repeat_s):
            if last is None:
                yield FIRST + part(jpeg)
            last, sent_at = jpeg, now
            yield part(jpeg)
        stop.wait(poll_s)


def mjpeg_response(frames: Iterator[bytes], slots: threading.BoundedSemaphore) -> Response:
    """Wrap ``frames`` in a streaming response holding one of ``slots`` until the viewer goes."""
    if not slots.acquire(blocking=False):
        raise ApiError(503, "busy", f"too many stream viewers (at most {MAX_MJPEG_CLIENTS})")
    released = threading.Event()

    def release():
        if not released.is_set():
            released.set()
            slots.release()

    resp = Response(frames, mimetype="multipart/x-mixed-replace; boundary=frame")
    resp.headers["Cache-Control"] = "no-store"
    resp.call_on_close(release)  # runs on client disconnect or end, started or not
    return resp
