"""Detection cadence: ``detector.interval`` and the motion gate, alone and through the processor.

Unit tests drive ``DetectionCadence`` with synthetic frames; the processor test uses the real
tracker with a detector that counts its calls, so a skipped frame is seen to move tracks on
their prediction without a miss. What cadence costs in id switches, missed starts and counts
on real faces is measured by the bench (``python run.py bench --only cadence``), not here.
"""

import numpy as np
import pytest

from streamer.config import TrackerConfig
from streamer.core.cadence import DetectionCadence, build
from streamer.core.processor import Processor
from streamer.core.track import Tracker
from streamer.types import Detection, Frame


def _still(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (360, 640, 3), dtype=np.uint8)


def test_default_builds_nothing():
    assert build(1, False) is None
    assert isinstance(build(3, False), DetectionCadence)
    with pytest.raises(ValueError, match="detector.interval"):
        DetectionCadence(0)


def test_interval_detects_every_nth_frame():
    c = DetectionCadence(interval=3)
    img = _still()
    assert [c.due(img, 0) for _ in range(9)] == [True, False, False] * 3
    assert c.skipped_interval == 6


def test_motion_gate_skips_a_still_empty_scene_and_wakes_on_motion():
    c = DetectionCadence(motion_gate=True)
    img = _still()
    assert c.due(img, 0)  # the first frame is always looked at
    assert not any(c.due(img.copy(), 0) for _ in range(5))
    moved = img.copy()
    moved[100:160, 300:360] = 255 - moved[100:160, 300:360]  # a 60 px thing appears
    assert c.due(moved, 0)
    assert not c.due(moved.copy(), 0)  # compared with the last detected frame: still again
    assert c.skipped_still == 6


def test_motion_gate_ignores_noise_but_not_a_live_track():
    c = DetectionCadence(motion_gate=True)
    img = _still()
    c.due(img, 0)
    noisy = np.clip(img.astype(np.int16) + np.random.default_rng(1).integers(-4, 5, img.shape), 0, 255).astype(np.uint8)
    assert not c.due(noisy, 0)
    assert c.due(noisy, 1)  # a live track is always followed


def test_reset_detects_the_next_frame():
    c = DetectionCadence(interval=4, motion_gate=True)
    img = _still()
    c.due(img, 0)
    c.due(img, 0)
    c.reset()
    assert c.due(img, 0)


class CountingDetector:
    score_threshold = 0.6

    def __init__(self):
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        x = 100 + 10 * self.calls
        return [Detection((x, 100, x + 80, 180), 0.9, None)]


class NoEvents:
    def update(self, people, ts, frame_id):
        return []

    def end_all(self, ts, frame_id):
        return []


def test_processor_skips_the_detector_and_coasts_on_the_prediction():
    det = CountingDetector()
    p = Processor(det, Tracker(TrackerConfig(min_hits=1, max_misses=2)), NoEvents(),
                  cadence=DetectionCadence(interval=4))
    img = _still()
    seen = []
    for i in range(12):
        out = p.process(Frame(i, float(i), float(i), img))
        seen.append([(t.track.id, t.track.detected) for t in out.people])
    assert det.calls == 3
    # One track all along: 3 skipped frames in a row would have ended it (max_misses 2) had
    # they counted as misses; it is "detected" only on the frames the detector ran.
    assert all(len(s) == 1 and s[0][0] == seen[0][0][0] for s in seen)
    assert [s[0][1] for s in seen] == [True, False, False, False] * 3
