"""Video sources: ``read() -> Frame``; raises ``EndOfStream`` or ``SourceLost``.

Kinds, chosen from the URI:
- ``0``, ``1`` … a webcam index (live)
- ``rtsp://``, ``rtmp://``, ``http(s)://`` … a network stream (live)
- a video file (not live: never drops frames unless paced in real time)
- a folder of images, played in name order as a stream (not live)

Live sources never block forever: FFmpeg open/read timeouts are passed to ``VideoCapture``
(``CAP_PROP_OPEN_TIMEOUT_MSEC`` / ``CAP_PROP_READ_TIMEOUT_MSEC``) and, for RTSP, through
``OPENCV_FFMPEG_CAPTURE_OPTIONS`` (TCP transport, socket timeout). Reconnecting is the
pipeline's job (it owns the clock and the stop event); a source only opens, reads and closes.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from .config import SourceConfig
from .errors import SourceError
from .types import Frame

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


class EndOfStream(Exception):
    """The source has no more frames (file or folder ended)."""


class SourceLost(Exception):
    """A live source stopped delivering frames; the caller may reopen it."""


def redact(uri: str) -> str:
    """Hide credentials in a URL: ``rtsp://user:pw@host/x`` -> ``rtsp://***@host/x``."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return re.sub(r"//[^/@]*@", "//***@", uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))
    return uri


def describe(uri: str) -> str:
    return redact(uri)


def is_live_uri(uri: str) -> bool:
    return uri.isdigit() or uri.lower().startswith(LIVE_SCHEMES)


def _ffmpeg_env() -> None:
    # Applies to every FFmpeg-backed capture opened after this; keep user settings if present.
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS",
                          "rtsp_transport;tcp|stimeout;5000000|timeout;5000000")


class VideoSource:
    """A video file, a webcam or a network stream through ``cv2.VideoCapture``."""

    def __init__(self, uri: str, cfg: SourceConfig):
        self.uri = uri
        self.cfg = cfg
        self.live = is_live_uri(uri)
        self._cap: Optional[cv2.VideoCapture] = None
        self._ids = itertools.count()
        self.fps = 0.0
        self.size = (0, 0)
        self.frame_count = 0

    def open(self) -> None:
        """Open or reopen. Raises SourceError with a one-line reason."""
        self.close()
        uri = self.uri
        if uri.isdigit():
            cap = cv2.VideoCapture(int(uri))
            if not cap.isOpened():
                raise SourceError(f"webcam {uri} cannot be opened (no such device /dev/video{uri} "
                                  "or it is busy)")
        elif self.live:
            parts = urlsplit(uri)
            if not parts.hostname:
                raise SourceError(f"source URL {redact(uri)} has no host")
            _ffmpeg_env()
            ms = int(self.cfg.open_timeout_s * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.cfg.read_timeout_s * 1000)]
            cap = cv2.VideoCapture(uri, cv2.CAP_FFMPEG, params)
            if not cap.isOpened():
                raise SourceError(f"cannot open stream {redact(uri)} (unreachable, refused, or "
                                  f"not a video stream; waited up to {self.cfg.open_timeout_s:g} s)")
        else:
            p = Path(uri)
            if not p.exists():
                raise SourceError(f"source {uri} does not exist (expected a video file, a folder "
                                  "of images, a webcam index or an rtsp/http URL)")
            cap = cv2.VideoCapture(str(p))
            if not cap.isOpened():
                raise SourceError(f"source {uri} is not a readable video (unsupported or corrupt)")
        self._cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not (0 < self.fps < 1000):
            self.fps = 0.0
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.frame_count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))

    def rewind(self) -> bool:
        return bool(self._cap is not None and self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0))

    def read(self) -> Frame:
        if self._cap is None:
            raise SourceLost("source is not open")
        ok, image = self._cap.read()
        if not ok or image is None:
            if self.live:
                raise SourceLost(f"no frame from {redact(self.uri)}")
            raise EndOfStream()
        return Frame(next(self._ids), time.time(), time.monotonic(), image)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FolderSource:
    """Images of a folder in name order, played as a stream; unreadable files are skipped."""

    live = False

    def __init__(self, folder: Path, cfg: SourceConfig):
        self.uri = str(folder)
        self.files = sorted(p for p in Path(folder).iterdir()
                            if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        self.fps = cfg.folder_fps
        self.frame_count = len(self.files)
        self.size = (0, 0)
        self.skipped = 0
        self._i = 0
        self._ids = itertools.count()

    def open(self) -> None:
        if not self.files:
            raise SourceError(f"folder {self.uri} has no images ({', '.join(sorted(IMAGE_EXTS))})")
        self._i = 0

    def rewind(self) -> bool:
        self._i = 0
        return True

    def read(self) -> Frame:
        while self._i < len(self.files):
            path = self.files[self._i]
            self._i += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self.skipped += 1
                log.warning("skipping unreadable image %s", path)
                continue
            if self.size == (0, 0):
                self.size = (image.shape[1], image.shape[0])
            return Frame(next(self._ids), time.time(), time.monotonic(), image)
        raise EndOfStream()

    def close(self) -> None:
        pass


def open_source(cfg: SourceConfig):
    """Create and open the source named by ``cfg.uri``. Raises SourceError."""
    uri = cfg.uri.strip()
    if not uri:
        raise SourceError("source is empty (expected a video file, folder, webcam index or URL)")
    if "://" in uri and not uri.lower().startswith(LIVE_SCHEMES) and not uri.startswith("file://"):
        raise SourceError(f"source URL {redact(uri)} has an unsupported scheme (use rtsp, rtmp, "
                          "http or https)")
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    p = Path(uri)
    src = FolderSource(p, cfg) if (not is_live_uri(uri) and p.is_dir()) else VideoSource(uri, cfg)
    src.open()
    return src


def blank(size=(640, 360)) -> np.ndarray:
    return np.zeros((size[1], size[0], 3), np.uint8)
