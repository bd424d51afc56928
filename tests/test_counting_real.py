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

import json

import cv2
import pytest

from conftest import data_path

# The clip builder and its expected counts live in bench/scenes.py, shared with the cadence bench.
from bench.scenes import COUNT_H as H, COUNT_W as W, build_counting_clip as build_clip  # noqa: E402


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
