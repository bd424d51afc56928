"""MJPEG (``multipart/x-mixed-replace``) responses: the live pipeline's frames, or a site
camera's snapshots polled.

Contract: newest frames only (a slow viewer skips frames instead of building a backlog); at
most ``slots`` viewers at once (each holds a server thread while it watches) else 503
``busy``; every stream ends within about a poll interval of ``stop`` being set, so the
server's shutdown never waits on a viewer.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator, Optional

from flask import Response

from streamer.web.errors import ApiError

MAX_MJPEG_CLIENTS = 8
WAIT_S = 0.5  # how often a waiting stream looks at the stop event
SNAPSHOT_POLL_S = 0.2  # a site camera's snapshot is re-read this often (it changes ~5-10x/s)


def part(jpeg: bytes) -> bytes:
    return (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
            + jpeg + b"\r\n")


def latest_jpeg_frames(mjpeg, stop: threading.Event,
                       source_stopped: Callable[[], bool] = lambda: False) -> Iterator[bytes]:
    """Frames of a ``media.output.LatestJpeg`` (the in-process pipeline's output stage)."""
    seq = 0
    while not stop.is_set():
        new, jpeg = mjpeg.wait(seq, timeout=WAIT_S)
        if new == seq or jpeg is None:
            if source_stopped():
                return
            continue
        seq = new
        yield part(jpeg)


def snapshot_frames(snapshot: Callable[[], Optional[bytes]], stop: threading.Event,
                    poll_s: float = SNAPSHOT_POLL_S) -> Iterator[bytes]:
    """A site camera's latest snapshots, each sent once (a camera that stops delivering
    leaves the viewer on its last frame; the stream ends with the server or the camera)."""
    last = None
    while not stop.is_set():
        try:
            jpeg = snapshot()
        except KeyError:  # the camera left the site
            return
        if jpeg is not None and jpeg is not last and jpeg != last:
            last = jpeg
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
