"""A failed open prints our one line and nothing else: no raw FFmpeg/OpenCV lines
(``[tcp @ 0x...] Connection refused``, ``moov atom not found``, obsensor's "Camera index out of
range") on stderr, and the line says what really happened (how long FFmpeg tried), through
the real CLI in a subprocess."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import video_path

ROOT = Path(__file__).resolve().parent.parent
CLIP = "face_recognition__short_hamilton_clip.mp4"


def run(*args, timeout=60) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL")}  # the defaults under test
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True,
                       text=True, timeout=timeout, cwd=ROOT, env=env)
    return r, time.monotonic() - t0


def only_our_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"expected only our error line on stderr, got:\n{r.stderr}"
    line = lines[0]
    assert line.startswith("error: "), line
    for n in needles:
        assert n in line, line
    assert not re.search(r"\[\w[\w,]* @ 0x[0-9a-f]+\]|\[ ?(WARN|ERROR|INFO):", line), line
    return line


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.timeout(60)
def test_refused_connection_is_one_line_that_says_it_failed_at_once():
    r, _ = run("--source", f"rtsp://127.0.0.1:{free_port()}/x")
    line = only_our_line(r, "cannot open stream", "failed after")
    assert "waited up to" not in line


@pytest.mark.timeout(60)
def test_unknown_host_is_one_line():
    r, _ = run("--source", "rtsp://no-such-host.invalid/x")
    only_our_line(r, "cannot open stream rtsp://no-such-host.invalid/x")


@pytest.mark.timeout(60)
def test_silent_server_line_reports_the_time_ffmpeg_really_waited(tmp_path):
    """Accepts and never answers; FFmpeg's socket timeout (read_timeout_s = 2 s) ends the open
    long before open_timeout_s (20 s): the line must not claim it waited 20 s."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("source: {open_timeout_s: 20, read_timeout_s: 2}\n")
    try:
        r, wall = run("--config", str(cfg), "--source", f"rtsp://127.0.0.1:{srv.getsockname()[1]}/x")
    finally:
        srv.close()
    line = only_our_line(r, "cannot open stream")
    m = re.search(r"(?:no answer within|gave up after|failed after) (\d+\.\d) s", line)
    assert m, line
    assert float(m.group(1)) <= wall, line  # reported what was measured, not the setting
    assert "20 s" not in line or "read_timeout_s is 2 s" in line, line


@pytest.mark.timeout(60)
def test_corrupt_mp4_is_one_line(tmp_path):
    f = tmp_path / "random.mp4"
    f.write_bytes(os.urandom(5000))
    only_our_line(run("--source", str(f))[0], "random.mp4", "not a readable video")


@pytest.mark.timeout(60)
def test_mp4_without_its_header_is_one_line(tmp_path):
    # The middle of a real clip: no ftyp/moov box, which FFmpeg reports as "moov atom not found".
    data = video_path(CLIP).read_bytes()
    f = tmp_path / "headless.mp4"
    f.write_bytes(data[len(data) // 3: len(data) // 3 + 100_000])
    only_our_line(run("--source", str(f))[0], "headless.mp4", "not a readable video")


@pytest.mark.timeout(60)
def test_missing_webcam_is_one_line():
    only_our_line(run("--source", "7")[0], "webcam 7")
