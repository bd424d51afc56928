"""Video sources: ``read() -> Frame``; raises ``EndOfStream``, ``SourceLost`` or ``FrameError``.

Kinds, chosen from the URI:
- ``0``, ``1`` … a webcam index (live)
- ``rtsp://``, ``rtmp://``, ``http(s)://`` … a network stream (live)
- a video file (not live: never drops frames unless paced in real time)
- a folder of images, played in name order as a stream (not live)

Reconnecting is the pipeline's job (it owns the clock, the stop event and the threads); a source
only opens, reads and closes. What a source guarantees so that the pipeline can put a deadline
on every call:

- Network streams carry FFmpeg timeouts of their own. ``CAP_PROP_OPEN_TIMEOUT_MSEC`` bounds
  the open; ``CAP_PROP_READ_TIMEOUT_MSEC`` bounds a read, though in this build a read that gets
  no byte at all returns only after about three times that value (measured: 2 s -> 6.0 s). The
  FFmpeg option that bounds socket I/O is passed through ``OPENCV_FFMPEG_CAPTURE_OPTIONS``,
  which OpenCV reads at every open: ``timeout`` (microseconds) for rtsp and http. The bundled
  FFmpeg (libavformat 62) ignores ``stimeout`` (removed from FFmpeg) and ``rw_timeout`` for
  rtsp: against a server that accepts but never answers, only ``timeout`` ended the open.
  rtmp gets no ``timeout``: there it means "listen for an incoming connection".
  A user-set ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` is left alone.
- ``close()`` may be called from another thread while ``read()`` or ``open()`` is stuck in
  cv2: it never waits for them and never releases a capture that a read is using (that would
  crash inside FFmpeg); the stuck call releases its capture itself if it ever returns. This is
  why a lock lives here, although no thread does.
- A file whose bytes are corrupt in the middle does not end early: ``read()`` seeks past the
  bad frames and raises ``FrameError`` once per gap; the next ``read()`` goes on after it.
- A live stream measures how far behind live its reads are (``backlog_s``): frames that pile up
  in FFmpeg's and the kernel's buffers when decoding cannot keep up. The pipeline's frame age
  starts at the read, so it cannot see this lag; the stream's own clock can.
- Files and network streams decode on one FFmpeg thread up to 1080p (``source.decoder_threads``
  0 = auto): the capture thread is one of a stream's cores and the inference thread has the
  others, so FFmpeg's frame threads (one per core) only compete with inference. Measured on 2
  cores: six 720p 15 fps streams dropped 5-39 % of frames with FFmpeg's threads and 0.2-11 %
  with one (same run); one 1080p file ran 4 % faster (median of 6 interleaved rounds). Above
  1080p one thread nears a camera's own pace (4K H.264 here: 35.7 fps on one thread, 45.7 on
  two), so the first open that finds a bigger picture reopens with FFmpeg's threads and the
  source remembers it. The count is an open parameter, so it wins over a ``threads`` in a
  user's ``OPENCV_FFMPEG_CAPTURE_OPTIONS``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import cv2
import numpy as np

from streamer.config import SourceConfig
from streamer.errors import SourceError
from streamer.media import mediaclock
from streamer.timefmt import iso_ms
from streamer.types import Frame

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
ONE_THREAD_MAX_PX = 1920 * 1088  # auto decoder threads: one up to 1080p
LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


class EndOfStream(Exception):
    """The source has no more frames (file or folder ended)."""


class SourceLost(Exception):
    """A live source stopped delivering frames; the caller may reopen it."""


class FrameError(Exception):
    """One frame (or a run of frames) could not be decoded and was skipped; reading goes on."""


_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)\S*@")
_SECRET_PARAM = re.compile(
    r"([?&;](?:user|username|login|pass|passwd|password|pwd|token|access_token|auth|key|secret"
    r"|signature|sig)=)[^&;#]*", re.I)


def redact(uri: str) -> str:
    """Hide credentials in a URL: ``rtsp://user:pw@host/x`` -> ``rtsp://***@host/x``.

    Works on a bare URL or on any text with URLs in it (an error message). Everything from
    ``://`` up to the *last* ``@`` of the URL goes, so a password with an unescaped ``@``, ``/``
    or ``:`` never leaks in part (a path containing ``@`` over-redacts: the safe side). Query
    parameters that cheap cameras use for credentials (``?user=..&pwd=..``) are masked too.
    Never raises: it runs inside error messages about malformed URLs.
    """
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", str(uri)))


def describe(uri: str) -> str:
    return redact(uri)


def is_live_uri(uri: str) -> bool:
    return uri.isdigit() or uri.lower().startswith(LIVE_SCHEMES)


FFMPEG_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_USER_FFMPEG_OPTIONS = os.environ.get(FFMPEG_ENV)


def ffmpeg_options(uri: str, read_timeout_s: float) -> str:
    """The ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` value for one stream (``key;value|key;value``)."""
    scheme = uri.split("://", 1)[0].lower()
    us = str(int(read_timeout_s * 1_000_000))
    if scheme in ("rtsp", "rtsps"):
        # TCP: no packet loss (no smeared frames), passes NAT; timeout bounds every socket I/O.
        return f"rtsp_transport;tcp|timeout;{us}"
    if scheme in ("http", "https"):
        return f"timeout;{us}"
    return ""


def _set_ffmpeg_env(uri: str, read_timeout_s: float) -> None:
    # OpenCV reads the variable at every open, and it is process-wide: set it for this stream
    # just before opening it (opens of network streams are serialised by the capture thread).
    if _USER_FFMPEG_OPTIONS is None:
        os.environ[FFMPEG_ENV] = ffmpeg_options(uri, read_timeout_s)


class VideoSource:
    """A video file, a webcam or a network stream through ``cv2.VideoCapture``.

    Thread contract: ``read``/``open``/``rewind`` are called by one thread at a time; ``close``
    may come from any thread at any moment (see the module docstring).
    """

    # Seeking past a corrupt run of a file: steps in frames, then give up (end of stream).
    RESYNC_STEPS = (1, 2, 4, 8, 16, 32, 64) + (64,) * 40

    def __init__(self, uri: str, cfg: SourceConfig):
        self.uri = uri
        self.cfg = cfg
        self.live = is_live_uri(uri)
        self._cap: Optional[cv2.VideoCapture] = None
        self._lock = threading.Lock()
        self._gen = 0  # bumped by close(): a call that started before it owns a stale capture
        self._reading: set = set()  # captures inside cap.read() (an abandoned one may linger)
        self._pending: Optional[np.ndarray] = None  # the good frame found while resyncing
        self._ids = itertools.count()
        self.fps = 0.0
        self.size = (0, 0)
        self.frame_count = 0
        self.skipped_frames = 0  # corrupt frames of a file skipped by resyncing
        self.backlog_s = 0.0  # live: how far behind live the last read was
        self.backlog_max_s = 0.0
        self._behind: Optional[tuple[float, float]] = None  # (baseline, when) for backlog_s
        # Media time (files): recording start + presentation time; see media/mediaclock.py.
        self.start: Optional[mediaclock.Start] = None
        self._media_next = 0.0  # fallback presentation time of the next frame
        self._media_offset = 0.0  # added after each rewind (loop), so time never goes back
        self._media_last = -1.0
        self._auto_threads = 1  # decoder threads while cfg.decoder_threads is 0 (0: FFmpeg's)
        self.decoder_threads = 0  # what the open capture decodes on (as FFmpeg reports it)

    def _decoder_params(self) -> list:
        n = self.cfg.decoder_threads or self._auto_threads
        return [cv2.CAP_PROP_N_THREADS, n] if n else []

    def open(self) -> None:
        """Open or reopen. Raises SourceError with a one-line reason."""
        self.close()
        with self._lock:
            gen = self._gen
        uri = self.uri
        if uri.isdigit():
            cap = cv2.VideoCapture(int(uri))
            if not cap.isOpened():
                cap.release()
                raise SourceError(f"webcam {uri} cannot be opened (no such device /dev/video{uri} "
                                  "or it is busy)")
        elif self.live:
            try:
                host = urlsplit(uri).hostname
            except ValueError:
                host = None
            if not host:
                raise SourceError(f"source URL {redact(uri)} has no host")
            _set_ffmpeg_env(uri, self.cfg.read_timeout_s)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.cfg.open_timeout_s * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.cfg.read_timeout_s * 1000),
                      *self._decoder_params()]
            t0 = time.monotonic()
            cap = cv2.VideoCapture(uri, cv2.CAP_FFMPEG, params)
            if not cap.isOpened():
                cap.release()
                raise SourceError(f"cannot open stream {redact(uri)} (unreachable, refused, "
                                  "unauthorized, or not a video stream; "
                                  f"{_gave_up(time.monotonic() - t0, self.cfg)})")
        else:
            p = Path(uri)
            if not p.exists():
                raise SourceError(f"source {redact(uri)} does not exist (expected a video file, a "
                                  "folder of images, a webcam index or an rtsp/http URL)")
            cap = cv2.VideoCapture(str(p), cv2.CAP_ANY, self._decoder_params())
            if not cap.isOpened():
                cap.release()
                raise SourceError(f"source {redact(uri)} is not a readable video (unsupported or "
                                  "corrupt)")
            if self.start is None:
                self.start = mediaclock.recording_start(p, getattr(self.cfg, "start_time", None))
                log.debug("%s: media clock starts at %s (%s)", redact(uri), iso_ms(self.start.ts),
                          self.start.how)
        with self._lock:
            if gen != self._gen:  # closed while we were opening: nobody wants this capture
                cap.release()
                raise SourceError(f"open of {redact(uri)} was abandoned (closed meanwhile)")
            self._cap = cap
            self._pending = None
            self._behind = None
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not (0 < self.fps < 1000):
            self.fps = 0.0
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.frame_count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self.decoder_threads = int(cap.get(cv2.CAP_PROP_N_THREADS) or 0)
        if (not uri.isdigit() and self._auto_threads and not self.cfg.decoder_threads
                and self.size[0] * self.size[1] > ONE_THREAD_MAX_PX):
            log.info("%s: %dx%d is over 1080p: decoding on FFmpeg's threads", redact(uri),
                     *self.size)
            self._auto_threads = 0
            self.open()

    def rewind(self) -> bool:
        self._pending = None
        # A looped file continues its clock one frame after its last frame.
        self._media_offset = self._media_last + (1.0 / self.fps if self.fps else 0.04)
        self._media_next = 0.0
        return bool(self._cap is not None and self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0))

    def _media_ts(self, cap) -> float:
        """Presentation time of the frame just read (container timestamp, else index / fps)."""
        pos = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        t = pos if pos > 0 or self._media_next == 0.0 else self._media_next
        self._media_next = t + (1.0 / self.fps if self.fps else 0.04)
        self._media_last = self._media_offset + t
        return self.start.ts + self._media_last

    def read(self) -> Frame:
        with self._lock:
            cap, gen = self._cap, self._gen
            if cap is not None:
                self._reading.add(cap)
        if cap is None:
            raise SourceLost("source is not open")
        try:
            if self._pending is not None:
                ok, image, self._pending = True, self._pending, None
            else:
                ok, image = cap.read()
        finally:
            with self._lock:
                self._reading.discard(cap)
                abandoned = gen != self._gen
        if abandoned:  # close() came while we were stuck in cv2 and left the release to us
            cap.release()
            raise SourceLost(f"{redact(self.uri)} was closed during a read")
        if not ok or image is None:
            if self.live:
                raise SourceLost(f"no frame from {redact(self.uri)}")
            self._resync(cap)  # raises EndOfStream at the real end
        mono = time.monotonic()
        if self.live:
            self._measure_backlog(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0, mono)
        if self.start is not None:  # a file: its own clock
            return Frame(next(self._ids), self._media_ts(cap), mono, image, "media")
        return Frame(next(self._ids), time.time(), mono, image)

    # The baseline may creep up by this much per second: camera and host clocks drift apart
    # (tens of ppm), while a real backlog grows at the decoding deficit (tens of ms per second).
    DRIFT_ALLOWANCE = 0.001

    def _measure_backlog(self, pos_s: float, mono: float) -> None:
        """backlog = (now - stream time) - its minimum on this connection. The minimum is the
        moment the read was most up to date; a stream clock jumping back resets it."""
        if pos_s <= 0:  # no stream clock (webcams)
            return
        behind = mono - pos_s
        if self._behind is not None:
            base, when = self._behind
            base += (mono - when) * self.DRIFT_ALLOWANCE
            if behind - base > 60.0:  # a timestamp discontinuity, not a minute of backlog
                base = behind
        else:
            base = behind
        base = min(base, behind)
        self._behind = (base, mono)
        self.backlog_s = behind - base
        if self.backlog_s > self.backlog_max_s:
            if self.backlog_s >= 1.0 > self.backlog_max_s:
                log.warning("%s: reads are %.1f s behind live (decoding cannot keep up; lower the "
                            "camera's resolution or frame rate)", redact(self.uri), self.backlog_s)
            self.backlog_max_s = self.backlog_s

    def _resync(self, cap: cv2.VideoCapture) -> None:
        """A file read failed. At the end that is the end; in the middle it is corrupt data:
        seek forward in growing steps to the next decodable frame, keep it for the next read,
        and report the gap as a FrameError."""
        pos = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
        if not self.frame_count or pos >= self.frame_count - 1:
            raise EndOfStream()
        target = pos
        for step in self.RESYNC_STEPS:
            target += step
            if target >= self.frame_count:
                break
            # A seek decodes from the keyframe before the target; a corrupt keyframe fails too.
            if cap.set(cv2.CAP_PROP_POS_FRAMES, target):
                ok, image = cap.read()
                if ok and image is not None:
                    self._pending = image
                    self.skipped_frames += target - pos
                    raise FrameError(f"frames {pos}..{target - 1} of {redact(self.uri)} cannot "
                                     "be decoded; skipped")
        log.warning("%s: no decodable frame after frame %d of %d; treating it as the end",
                    redact(self.uri), pos, self.frame_count)
        raise EndOfStream()

    def close(self) -> None:
        """Release the capture; never blocks on, and never races, a read stuck in another thread."""
        with self._lock:
            cap, self._cap = self._cap, None
            self._gen += 1
            in_use = cap in self._reading
        if cap is not None and not in_use:
            cap.release()


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
        self.start_time = getattr(cfg, "start_time", None)
        self.start: Optional[mediaclock.Start] = None
        self._loops = 0

    def open(self) -> None:
        if not self.files:
            raise SourceError(f"folder {self.uri} has no images ({', '.join(sorted(IMAGE_EXTS))})")
        self._i = 0
        if self.start is None:  # image i is at start + i / folder_fps (media/mediaclock.py)
            self.start = mediaclock.recording_start(self.files[0], self.start_time)

    def rewind(self) -> bool:
        self._i = 0
        self._loops += 1
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
            media = (self._loops * len(self.files) + self._i - 1) / self.fps
            return Frame(next(self._ids), self.start.ts + media, time.monotonic(), image, "media")
        raise EndOfStream()

    def close(self) -> None:
        pass


def _gave_up(elapsed: float, cfg: SourceConfig) -> str:
    """What the failed open did, measured: FFmpeg may give up before ``open_timeout_s`` (its
    socket ``timeout`` is ``read_timeout_s``) or at once (refused, unknown host)."""
    if elapsed < 0.5:
        return f"failed after {elapsed:.1f} s"
    limit = min(cfg.open_timeout_s, cfg.read_timeout_s)
    which = "source.open_timeout_s" if cfg.open_timeout_s <= cfg.read_timeout_s else "source.read_timeout_s"
    if elapsed >= limit - 0.5:
        return f"no answer within {elapsed:.1f} s; {which} is {limit:g} s"
    return f"gave up after {elapsed:.1f} s"


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
