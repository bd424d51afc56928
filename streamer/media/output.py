"""The output stage's pieces: annotated video file, live window, latest JPEG for MJPEG.

``OutputStage.show(image, people, stats)`` draws only when some consumer exists and
returns False when the user asked to quit (q / Esc in the window).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from streamer.media import overlay
from streamer.errors import StreamerError

log = logging.getLogger(__name__)
WINDOW = "streamer"


def check_display() -> None:
    """Raise a one-line error when a window cannot be shown here."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get(
            "WAYLAND_DISPLAY"):
        raise StreamerError("--display needs a screen but no DISPLAY is set; run under X (or "
                            "xvfb-run), or use --headless")


DEFAULT_SCREEN = (1280, 800)  # assumed when the screen cannot be asked (a common laptop size)
SCREEN_SHARE = 0.9  # of the screen the first window size may take (title bar, panels)


def screen_size(timeout: float = 2.0) -> tuple[int, int]:
    """The X screen's size from ``xdpyinfo`` ("dimensions: 1280x800 pixels"), else
    ``xrandr`` ("current 1280 x 800"), else ``DEFAULT_SCREEN``."""
    import re
    import shutil
    import subprocess
    for exe, pat in (("xdpyinfo", r"dimensions:\s+(\d+)x(\d+)"), ("xrandr", r"current (\d+) x (\d+)")):
        path = shutil.which(exe)
        if not path:
            continue
        try:
            out = subprocess.run([path], capture_output=True, text=True, timeout=timeout).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        m = re.search(pat, out)
        if m:
            return int(m.group(1)), int(m.group(2))
    return DEFAULT_SCREEN


def fit_window(image_wh: tuple[int, int], screen_wh: tuple[int, int],
               share: float = SCREEN_SHARE) -> tuple[int, int]:
    """First window size: the picture's aspect, at most ``share`` of the screen each way,
    never larger than the picture itself."""
    iw, ih = image_wh
    k = min(1.0, share * screen_wh[0] / max(iw, 1), share * screen_wh[1] / max(ih, 1))
    return max(1, int(iw * k)), max(1, int(ih * k))


class VideoWriter:
    """mp4 (MPEG-4 Part 2, 'mp4v': the codec every opencv-python wheel can encode)."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StreamerError(f"cannot write video {self.path}: {e.strerror}") from None
        if self.path.is_dir() or not os.access(self.path.parent, os.W_OK):
            raise StreamerError(f"cannot write video {self.path}: not a writable file path")
        self.fps = fps if 1 <= fps <= 240 else 25.0
        self._w: Optional[cv2.VideoWriter] = None
        self._size = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        if self._w is None:
            self._size = (w, h)
            self._w = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._w.isOpened():
                raise StreamerError(f"cannot write video {self.path} (folder not writable or codec missing)")
        if (w, h) != self._size:  # folders of images may change size
            image = cv2.resize(image, self._size)
        self._w.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._w is not None:
            self._w.release()
            self._w = None


class LatestJpeg:
    """The newest annotated frame as JPEG for ``/stream.mjpg``; encoded only while watched."""

    def __init__(self, quality: int = 80):
        self.quality = quality
        self._cond = threading.Condition()
        self._jpeg: Optional[bytes] = None
        self._seq = 0
        self._wanted_until = 0.0

    def want(self, seconds: float = 2.0) -> None:
        self._wanted_until = time.monotonic() + seconds

    @property
    def wanted(self) -> bool:
        return time.monotonic() < self._wanted_until

    def put(self, image: np.ndarray) -> None:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            with self._cond:
                self._jpeg = buf.tobytes()
                self._seq += 1
                self._cond.notify_all()

    def wait(self, after_seq: int, timeout: float) -> tuple[int, Optional[bytes]]:
        """Block up to ``timeout`` for a frame newer than ``after_seq``."""
        self.want()
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after_seq, timeout)
            return self._seq, self._jpeg


class OutputStage:
    def __init__(self, video: Optional[str] = None, fps: float = 25.0, display: bool = False,
                 mjpeg: Optional[LatestJpeg] = None, lines=()):
        self.writer = VideoWriter(video, fps) if video else None
        self.display = display
        self.mjpeg = mjpeg
        # A counting ``overlay.Geometry`` (lines with in/out, zones), or old (p1, p2, name) tuples.
        self.lines = lines if isinstance(lines, overlay.Geometry) else list(lines)
        if display:
            check_display()
        # The window is created by the first show(), in the thread that shows: the stage may be
        # built on a helper thread, and a Qt window made there never paints (nor resizes).
        self._sized = False

    @property
    def draws(self) -> bool:
        return bool(self.writer or self.display or (self.mjpeg and self.mjpeg.wanted))

    def show(self, image, people, stats) -> bool:
        if not self.draws:
            return True
        overlay.draw(image, people, stats, self.lines)
        if self.writer:
            self.writer.write(image)
        if self.mjpeg and self.mjpeg.wanted:
            self.mjpeg.put(image)
        if self.display:
            if not self._sized:
                # Fit the screen on the first frame (a 1080p source on a 1280x800 laptop). The
                # size is worked out before the window exists, so it is not shown meanwhile at
                # the toolkit's default size (screen_size may run a subprocess). Resizable,
                # aspect kept, no Qt toolbar: a monitoring wall shows the picture only.
                w, h = fit_window((image.shape[1], image.shape[0]), screen_size())
                cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
                cv2.resizeWindow(WINDOW, w, h)
                self._sized = True
            cv2.imshow(WINDOW, image)
            key = cv2.waitKey(1) & 0xFF
            if key in (ord("q"), 27):
                return False
        return True

    def poll(self) -> bool:
        """Keep the window responsive while no frame arrives; False when the user quits."""
        if self.display and self._sized:
            return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)
        return True

    def close(self) -> None:
        if self.writer:
            self.writer.close()
        if self.display and self._sized:
            try:
                cv2.destroyWindow(WINDOW)
                cv2.waitKey(1)
            except cv2.error:
                pass
