"""Counting end to end through the real pipeline on a clip built from real faces.

There is no people-count ground truth in the shared data, so the test builds it: real
UTKFace crops (gender from labels.csv) are blended, with a soft elliptical edge, onto a real
frame of the PETS09 campus clip (1280x720) and moved on known straight paths across a vertical
counting line ``door`` (x = 640, full height: left-to-right is "in") and a short line
``upper`` (x = 960, top half only). The clip is written to a temporary mp4 and run through
``streamer.runtime.wiring.build_pipeline`` with the real detector, tracker, attribute nets and counter.

Scene (lanes are face-centre heights; faces are 180 px, 12 px per frame):
  phase 1  A  lane 150  left -> right   door in,  upper in
           B  lane 600  left -> right   door in   (passes below the end of ``upper``)
           C  lane 400  right -> left   door out  (passes below the end of ``upper``)
  phase 2  D  lane 150  left -> 560 px and back: stops short of the line, never counts
           E  lane 600  right -> left   door out
           F  lane 400  left -> right   door in
Expected: door in 3 / out 2, upper in 1 / out 0, 6 people.

Gender mix. The test asserts the split by gender exactly against the labels, so it uses only
crops the default (dlib) gender net classifies correctly and confidently: >= 0.98 when pasted
at three places of this background and judged through the pipeline's detector and alignment
(listed below by file name). This tests counting and attributes reaching the counts, not the
classifier's accuracy, which is measured on all 305 crops by the attribute tests and bench.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import data_path

W, H = 1280, 720
FACE = 180
SPEED = 12
FPS = 25.0

# Adults (20-45) whose gender the default net gets right with confidence >= 0.98 when pasted
# at three places of this background (white, asian, indian women; white, asian, black men).
FEMALE = ["images/20_1_0_20170104020801388.jpg.chip.jpg", "images/29_1_2_20170103181921865.jpg.chip.jpg",
          "images/32_1_3_20170109132040475.jpg.chip.jpg"]
MALE = ["images/29_0_0_20170104230319649.jpg.chip.jpg", "images/38_0_2_20170104201018401.jpg.chip.jpg",
        "images/40_0_1_20170105164641662.jpg.chip.jpg"]


def _alpha(size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    d = np.sqrt(((xx - size / 2) / (size * 0.48)) ** 2 + ((yy - size / 2) / (size * 0.5)) ** 2)
    return np.clip((1.0 - d) / 0.12, 0, 1)[..., None].astype(np.float32)


def _paste(img: np.ndarray, crop: np.ndarray, alpha: np.ndarray, cx: float, cy: float) -> None:
    x0, y0 = int(round(cx - FACE / 2)), int(round(cy - FACE / 2))
    roi = img[y0:y0 + FACE, x0:x0 + FACE].astype(np.float32)
    img[y0:y0 + FACE, x0:x0 + FACE] = (alpha * crop + (1 - alpha) * roi).astype(np.uint8)


def _path(x0: float, x1: float, y: float) -> list[tuple[float, float]]:
    n = int(abs(x1 - x0) // SPEED) + 1
    step = SPEED if x1 > x0 else -SPEED
    return [(x0 + i * step, y) for i in range(n)]


def build_clip(out: Path, faces_dir: Path, background: np.ndarray) -> dict:
    """Write the scene to ``out`` (mp4); return the expected counts built from the labels."""
    labels = {r["path"]: r["gender"] for r in csv.DictReader(open(faces_dir / "labels.csv"))}
    alpha = _alpha(FACE)

    def crop(name: str) -> np.ndarray:
        img = cv2.imread(str(faces_dir / name), cv2.IMREAD_COLOR)
        assert img is not None, name
        return cv2.resize(img, (FACE, FACE), interpolation=cv2.INTER_AREA).astype(np.float32)

    left, right = 150, W - 150
    a, b, c, d, e, f = FEMALE[0], MALE[0], FEMALE[1], MALE[1], FEMALE[2], MALE[2]
    phases = [
        [(a, _path(left, right, 150)), (b, _path(left, right, 600)), (c, _path(right, left, 400))],
        [(d, _path(left, 560, 150) + _path(560, left, 150)), (e, _path(right, left, 600)),
         (f, _path(left, right, 400))],
    ]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    assert writer.isOpened()
    blank_gap = 25  # > tracker.max_misses: every phase-1 track has ended before phase 2
    for phase in phases:
        people = [(crop(name), path) for name, path in phase]
        for i in range(max(len(p) for _, p in people)):
            img = background.copy()
            for cimg, path in people:
                if i < len(path):
                    _paste(img, cimg, alpha, *path[i])
            writer.write(img)
        for _ in range(blank_gap):
            writer.write(background)
    writer.release()
    g = labels.__getitem__
    return {
        "door": {"in": 3, "out": 2,
                 "by_gender": {"in": {"male": [g(b), g(f), g(a)].count("male"),
                                      "female": [g(b), g(f), g(a)].count("female"), "unknown": 0},
                               "out": {"male": [g(c), g(e)].count("male"),
                                       "female": [g(c), g(e)].count("female"), "unknown": 0}}},
        "upper": {"in": 1, "out": 0,
                  "by_gender": {"in": {"male": int(g(a) == "male"), "female": int(g(a) == "female"),
                                       "unknown": 0},
                                "out": {"male": 0, "female": 0, "unknown": 0}}},
        "people": 6,
    }


@pytest.mark.slow
def test_counts_and_gender_mix_through_the_real_pipeline(tmp_path):
    faces_dir = data_path("agegender", "utkface_dev")
    video = data_path("video", "opencv__vtest_PETS09-S2L1_x264.mp4")
    from streamer.runtime import wiring as app
    from streamer import config

    cap = cv2.VideoCapture(str(video))
    ok, bg = cap.read()
    cap.release()
    assert ok
    clip = tmp_path / "scene.mp4"
    expected = build_clip(clip, faces_dir, cv2.resize(bg, (W, H), interpolation=cv2.INTER_AREA))

    events_file = tmp_path / "events.jsonl"
    cfg = config.from_dict({
        "camera": "scene",
        "source": {"uri": str(clip)},
        "events": {"jsonl": str(events_file)},
        "counting": {"lines": [{"name": "door", "points": [[0.5, 0], [0.5, 1]]},
                               {"name": "upper", "points": [[0.75, 0], [0.75, 0.5]]}],
                     "state_dir": str(tmp_path / "state"), "reset": "never",
                     "summary_interval_s": 0},
    })
    pipeline = app.build_pipeline(cfg)
    summary = pipeline.run()
    assert summary["frames_processed"] == summary["frames_in"] > 0
    events = [json.loads(x) for x in events_file.read_text().splitlines()]
    crosses = [e for e in events if e["type"] == "cross"]
    final = [e for e in events if e["type"] == "summary" and e["reason"] == "final"]
    assert len(final) == 1, [e["type"] for e in events]
    lines = final[0]["lines"]
    got = {name: {"in": lines[name]["in"], "out": lines[name]["out"],
                  "by_gender": lines[name]["by_gender"]} for name in ("door", "upper")}
    assert got == {k: v for k, v in expected.items() if k != "people"}, \
        [(e["track_id"], e["line"], e["direction"], e["gender"]) for e in crosses]
    assert final[0]["people"] == expected["people"]
    assert len(crosses) == 6  # every count has its cross event, nothing else crossed
    assert all(e["gender"] is not None and e["gender"]["confidence"] >= 0.6 for e in crosses)
    # The persisted state agrees with the final summary.
    state = json.loads((tmp_path / "state" / "counts-scene.json").read_text())
    assert state["lines"]["door"]["in"] == 3 and state["lines"]["door"]["out"] == 2
