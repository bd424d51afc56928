"""The live window is real: run --display under Xvfb, screenshot the screen, find the window
and the overlay in it; q quits it."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import missing, require_binary, video_path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def _free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    missing("no free X display number in :90-:199 for Xvfb")


@pytest.fixture
def xvfb():
    xvfb_bin = require_binary("Xvfb", package="xvfb")
    n = _free_display()
    proc = subprocess.Popen([xvfb_bin, f":{n}", "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            missing(f"Xvfb did not start on :{n} within 10 s")
        time.sleep(0.05)
    yield f":{n}"
    proc.terminate()
    proc.wait(5)


def _screenshot(display: str, path: Path) -> np.ndarray:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "x11grab", "-video_size", "1280x720",
                    "-i", display, "-frames:v", "1", str(path)], check=True, timeout=20)
    return cv2.imread(str(path))


def _window_geometry(display: str) -> tuple[int, int, int, int] | None:
    out = subprocess.run(["xwininfo", "-root", "-tree"], env=dict(os.environ, DISPLAY=display),
                         capture_output=True, text=True, timeout=10).stdout
    for line in out.splitlines():
        if '"streamer"' in line:
            # e.g.  0x200006 "streamer": ()  640x360+0+0  +0+0
            geo = line.split()[-2]
            wh, x, y = geo.split("+")[0], geo.split("+")[1], geo.split("+")[2]
            w, h = wh.split("x")
            return int(x), int(y), int(w), int(h)
    return None


def test_display_window_shows_overlay_under_xvfb(xvfb, tmp_path):
    require_binary("ffmpeg", package="ffmpeg")  # x11grab takes the screenshot
    require_binary("xwininfo", package="x11-utils")  # finds the window
    clip = video_path("face_recognition__short_hamilton_clip.mp4")
    env = dict(os.environ, DISPLAY=xvfb)
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--source", str(clip), "--display",
                             "--realtime", "--loop", "--camera", "wall"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        geo, shot = None, None
        deadline = time.monotonic() + 60
        ARTIFACTS.mkdir(exist_ok=True)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            geo = _window_geometry(xvfb)
            if geo is None:
                continue
            shot = _screenshot(xvfb, ARTIFACTS / "display_window.png")
            x, y, w, h = geo
            win = shot[y:y + h, x:x + w]
            green = (win[:, :, 1] > 200) & (win[:, :, 0] < 80) & (win[:, :, 2] < 80)
            if green.sum() > 100:  # the face box is drawn in pure green
                break
        assert geo is not None, "no window named 'streamer' appeared"
        x, y, w, h = geo
        assert w >= 320 and h >= 180
        win = shot[y:y + h, x:x + w]
        green = (win[:, :, 1] > 200) & (win[:, :, 0] < 80) & (win[:, :, 2] < 80)
        assert green.sum() > 100, "window shows no overlay box"
        # a real picture, not a blank or single-colour window (a blank window has std ~0 and a
        # handful of colours; a dark stage frame still has std ~20 and thousands of colours)
        assert win.std() > 8
        assert len(np.unique(win.reshape(-1, 3), axis=0)) > 500
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err[-2000:]
    assert "summary" in out


def test_1080p_window_fits_a_1280x800_screen_and_keeps_its_aspect(tmp_path):
    """A 1080p source on a 1280x800 screen (Xvfb): the first window is within the screen, has
    the picture's aspect ratio, and stays resizable (WINDOW_NORMAL)."""
    from streamer.media.output import fit_window
    xvfb_bin = require_binary("Xvfb", package="xvfb")
    require_binary("xwininfo", package="x11-utils")
    require_binary("xdpyinfo", package="x11-utils")
    ffmpeg = require_binary("ffmpeg", package="ffmpeg")
    clip = tmp_path / "hd.mp4"
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-i", str(video_path("face_recognition__short_hamilton_clip.mp4")),
                    "-vf", "scale=1920:1080", "-frames:v", "60", "-an", str(clip)], check=True, timeout=120)
    n = _free_display()
    xv = subprocess.Popen([xvfb_bin, f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    display = f":{n}"
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{n}").exists():
            if time.monotonic() > deadline or xv.poll() is not None:
                missing(f"Xvfb did not start on :{n} within 10 s")
            time.sleep(0.05)
        env = dict(os.environ, DISPLAY=display)
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--source", str(clip), "--display",
                                 "--realtime", "--loop"], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # The toolkit maps the window at its own default size (400x300) and applies the
            # resize a moment later (an X round trip): wait for the picture's aspect, the end
            # state, and check the rest on it; a window that never gets there fails below.
            geo = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.5)
                geo = _window_geometry(display)
                if geo is not None and geo[3] > 0 and abs(geo[2] / geo[3] - 16 / 9) < 0.03:
                    break
            assert geo is not None, "no window named 'streamer' appeared"
            x, y, w, h = geo
            assert w <= 1280 and h <= 800 and x + w <= 1280 and y + h <= 800, geo
            assert abs(w / h - 16 / 9) < 0.03, geo  # the picture's aspect, not the screen's
            assert (w, h) == fit_window((1920, 1080), (1280, 800)) or w >= 1000, geo
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=10)
    finally:
        xv.terminate()
        xv.wait(5)
