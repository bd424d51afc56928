"""The video's own clock: events from a file or a folder carry media time (media/mediaclock.py).

Unit level: ISO parsing, the start's order (``--start-time``, container ``creation_time`` read
by the real ffprobe from an mp4 that ffmpeg tagged, file mtime), frame times of a real file
and of a folder. End to end: a clip built from real dev faces (tests/helpers/face_scene.py)
walking past a counting line at a known speed, run through the real CLI in a subprocess with
and without ``--realtime``: counts exact, dwell within 10% of the truth both ways, the same
summary intervals, the final gender right for nearly every person, every event ``clock:
media`` and on the recording's time line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ROOT, data_path, require_binary
from helpers import face_scene
from streamer.config import SourceConfig
from streamer.errors import SourceError
from streamer.media import mediaclock
from streamer.media.sources import FolderSource, VideoSource

START = "2026-12-01T08:00:00Z"
START_TS = 1796112000.0  # the same instant as epoch seconds


def test_parse_iso_forms_and_errors():
    assert mediaclock.parse_iso(START) == START_TS
    assert mediaclock.parse_iso("2026-12-01T08:00:00") == START_TS  # no zone = UTC
    assert mediaclock.parse_iso("2026-12-01T09:00:00+01:00") == START_TS
    with pytest.raises(SourceError, match="source.start_time: expected an ISO 8601 time"):
        mediaclock.parse_iso("yesterday")


def _tiny_clip(path: Path, frames: int = 10, fps: float = 10.0) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for i in range(frames):
        w.write(np.full((48, 64, 3), i * 20 % 255, np.uint8))
    w.release()


def test_start_order_start_time_then_creation_time_then_mtime(tmp_path):
    ffmpeg = require_binary("ffmpeg", package="ffmpeg")
    require_binary("ffprobe", package="ffmpeg")
    plain = tmp_path / "plain.mp4"
    _tiny_clip(plain)
    os.utime(plain, (1_700_000_000, 1_700_000_000))
    tagged = tmp_path / "tagged.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(plain), "-c", "copy", "-metadata",
                    "creation_time=2025-06-01T12:00:00.000000Z", str(tagged)], check=True, timeout=30)
    assert mediaclock.recording_start(plain) == mediaclock.Start(1_700_000_000, "mtime")
    ct = mediaclock.parse_iso("2025-06-01T12:00:00Z")
    assert mediaclock.recording_start(tagged) == mediaclock.Start(ct, "creation_time")
    assert mediaclock.recording_start(tagged, START) == mediaclock.Start(START_TS, "start_time")


def test_file_frames_carry_start_plus_presentation_time(tmp_path):
    clip = tmp_path / "c.mp4"
    _tiny_clip(clip, frames=10, fps=10.0)
    src = VideoSource(str(clip), SourceConfig(uri=str(clip), start_time=START))
    src.open()
    ts = []
    for _ in range(10):
        f = src.read()
        assert f.clock == "media"
        ts.append(f.ts - START_TS)
    src.close()
    np.testing.assert_allclose(ts, np.arange(10) / 10.0, atol=1e-3)


def test_looped_file_keeps_time_moving_forward(tmp_path):
    clip = tmp_path / "c.mp4"
    _tiny_clip(clip, frames=5, fps=10.0)
    src = VideoSource(str(clip), SourceConfig(uri=str(clip), start_time=START))
    src.open()
    first = [src.read().ts for _ in range(5)]
    assert src.rewind()
    second = [src.read().ts for _ in range(5)]
    src.close()
    np.testing.assert_allclose(np.array(second) - first[-1], np.arange(1, 6) / 10.0, atol=1e-3)


def test_folder_frames_are_spaced_by_folder_fps(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((20, 20, 3), 50 * i, np.uint8))
    src = FolderSource(tmp_path, SourceConfig(uri=str(tmp_path), folder_fps=4.0, start_time=START))
    src.open()
    got = [src.read() for _ in range(3)]
    assert [f.clock for f in got] == ["media"] * 3
    np.testing.assert_allclose([f.ts - START_TS for f in got], [0, 0.25, 0.5])


def test_a_bad_start_time_is_one_line_and_exit_2(tmp_path):
    clip = tmp_path / "c.mp4"
    _tiny_clip(clip)
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "stream", "--source", str(clip),
                        "--start-time", "noon-ish"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "start_time" in r.stderr and "ISO 8601" in r.stderr


# ---- end to end: a walk past a door at known speed -------------------------------------------

W, H, FPS, FACE, SPEED = 1280, 720, 25.0, 160, 10.0
LANES = (170, 470)
BUCKETS = [("20-29", "female"), ("30-39", "male"), ("40-49", "female"), ("50-59", "male"),
           ("60-69", "female"), ("60-69", "male"), ("70+", "female"), ("70+", "male")]


def pick_people(faces_dir: Path) -> list[dict]:
    """The first crop in labels.csv of each (age bucket, gender) above, ages <= 90: chosen by
    label, not by how well the nets do on them."""
    rows = list(face_scene.labels(faces_dir).values())
    return [next(r for r in rows if r["age_bucket"] == b and r["gender"] == g and int(r["age"]) <= 90)
            for b, g in BUCKETS]


def walk_scene(faces_dir: Path) -> list[face_scene.Walker]:
    """Waves of two: one walks left -> right in the upper lane, one right -> left in the lower,
    with a gap longer than tracker.max_misses between waves."""
    left, right = 120 + FACE / 2, W - 120 - FACE / 2
    people = pick_people(faces_dir)
    walkers, t = [], 5
    for i in range(0, len(people), 2):
        a = face_scene.Walker(people[i]["path"], face_scene.line_path(left, right, LANES[0], SPEED), t, FACE)
        b = face_scene.Walker(people[i + 1]["path"], face_scene.line_path(right, left, LANES[1], SPEED), t, FACE)
        walkers += [a, b]
        t = max(a.end, b.end) + 30
    return walkers


def _run_cli(clip: Path, cfg: Path, out: Path, realtime: bool) -> list[dict]:
    args = [sys.executable, str(ROOT / "run.py"), "stream", "--source", str(clip), "--config", str(cfg),
            "--events", str(out), "--start-time", START, "--headless"]
    if realtime:
        args.append("--realtime")
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=str(ROOT))
    assert r.returncode == 0, r.stderr[-2000:]
    return [json.loads(x) for x in out.read_text().splitlines()]


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    faces_dir = data_path("agegender", "utkface_dev")
    video = data_path("video", "opencv__vtest_PETS09-S2L1_x264.mp4")
    tmp = tmp_path_factory.mktemp("walk")
    walkers = walk_scene(faces_dir)
    clip = tmp / "walk.mp4"
    n = face_scene.write_clip(clip, faces_dir, face_scene.background(video, (W, H)), walkers, FPS)
    cfg = tmp / "walk.yaml"
    cfg.write_text(
        "camera: walk\n"
        "counting:\n"
        "  lines: [{name: door, points: [[0.5, 0], [0.5, 1]]}]\n"
        "  zones: [{name: right, points: [[0.5, 0], [1, 0], [1, 1], [0.5, 1]]}]\n"
        f"  state_dir: {tmp / 'state'}\n"
        "  reset: never\n"
        "  summary_interval_s: 5\n")
    runs = {}
    for rt in (False, True):
        shutil.rmtree(tmp / "state", ignore_errors=True)
        runs[rt] = _run_cli(clip, cfg, tmp / f"events-{rt}.jsonl", rt)
    return {"walkers": walkers, "labels": face_scene.labels(faces_dir), "frames": n, "runs": runs}


def _lane(ev: dict) -> int:
    cy = (ev["box"][1] + ev["box"][3]) / 2
    return int(np.argmin([abs(cy - y) for y in LANES]))


def _ends_by_walker(walk, events) -> dict[int, dict]:
    """Each walker's ``end`` event: the one in its lane whose first_seen is nearest its start."""
    ends = [e for e in events if e["type"] == "end"]
    out = {}
    for i, w in enumerate(walk["walkers"]):
        lane = 0 if w.path[0][0] < W / 2 else 1
        cands = [e for e in ends if _lane(e) == lane]
        t0 = START_TS + w.start / FPS
        out[i] = min(cands, key=lambda e: abs(mediaclock.parse_iso(e["first_seen"]) - t0))
    return out


@pytest.mark.slow
@pytest.mark.models
@pytest.mark.parametrize("realtime", [False, True], ids=["as-fast-as-possible", "realtime"])
def test_counts_exact_and_events_on_the_media_clock(walk, realtime):
    events = walk["runs"][realtime]
    assert events and all(e["clock"] == "media" for e in events)
    duration = walk["frames"] / FPS
    for e in events:
        t = mediaclock.parse_iso(e["ts"]) - START_TS
        assert -1e-3 <= t <= duration + 1e-3, e
    final = [e for e in events if e["type"] == "summary" and e["reason"] == "final"][0]
    half = len(walk["walkers"]) // 2
    assert (final["lines"]["door"]["in"], final["lines"]["door"]["out"]) == (half, half)
    # Summaries every 5 s of the recording, whatever the decoding speed.
    intervals = [mediaclock.parse_iso(e["ts"]) - START_TS for e in events
                 if e["type"] == "summary" and e["reason"] == "interval"]
    assert len(intervals) == int((walk["frames"] - 1) / FPS // 5)
    assert all(abs(t - 5 * (k + 1)) <= 0.1 for k, t in enumerate(intervals)), intervals


@pytest.mark.slow
@pytest.mark.models
@pytest.mark.parametrize("realtime", [False, True], ids=["as-fast-as-possible", "realtime"])
def test_dwell_within_10_percent_of_the_truth(walk, realtime):
    ends = _ends_by_walker(walk, walk["runs"][realtime])
    for i, w in enumerate(walk["walkers"]):
        truth = (len(w.path) - 1) / FPS
        assert abs(ends[i]["dwell_s"] - truth) <= 0.1 * truth, (i, ends[i]["dwell_s"], truth)
        assert abs(mediaclock.parse_iso(ends[i]["first_seen"]) - (START_TS + w.start / FPS)) <= 0.25
    # Zone dwell: right -> left walkers leave the right half at the door. Its ends are decided
    # on processed frames only (with --realtime a loaded machine drops some, as a camera would)
    # and the exit waits for counting.hysteresis: 15% here, not 10%.
    exits = [e for e in walk["runs"][realtime] if e["type"] == "zone_exit" and e["reason"] == "left"]
    for w in walk["walkers"]:
        if w.path[0][0] > W / 2:
            inside = sum(1 for x, _ in w.path if x > W / 2) / FPS
            got = min(exits, key=lambda e: abs(mediaclock.parse_iso(e["entered"]) - START_TS - w.start / FPS))
            assert abs(got["dwell_s"] - inside) <= 0.15 * inside, (got["dwell_s"], inside)


@pytest.mark.slow
@pytest.mark.models
def test_same_numbers_with_and_without_realtime(walk):
    a, b = (_ends_by_walker(walk, walk["runs"][rt]) for rt in (False, True))
    for i in a:
        assert abs(a[i]["dwell_s"] - b[i]["dwell_s"]) <= 0.2, (i, a[i]["dwell_s"], b[i]["dwell_s"])


@pytest.mark.slow
@pytest.mark.models
def test_final_gender_right_for_nearly_every_person(walk):
    for rt, events in walk["runs"].items():
        ends = _ends_by_walker(walk, events)
        right = sum(1 for i, w in enumerate(walk["walkers"])
                    if ends[i]["gender"] and ends[i]["gender"]["label"] == walk["labels"][w.name]["gender"])
        assert right >= len(walk["walkers"]) - 1, (rt, [(walk["labels"][w.name]["gender"], ends[i]["gender"])
                                                         for i, w in enumerate(walk["walkers"])])


@pytest.mark.models
def test_live_sources_keep_the_wall_clock_files_and_folders_get_media(tmp_path):
    from streamer import config
    from streamer.runtime import wiring
    for uri, clock in (("rtsp://cam.example/stream", "wall"), ("0", "wall"), ("http://cam.example/v.mjpg", "wall"),
                       (str(tmp_path / "clip.mp4"), "media"), (str(tmp_path), "media")):
        cfg = config.load(None, {"source.uri": uri, "attributes.enabled": False})
        ev = wiring.build_processor(cfg).events.make("start", 0.0, 0, {}).to_dict()
        assert ev["clock"] == clock, uri
