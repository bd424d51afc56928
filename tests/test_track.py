"""Tracker contract, fed scripted box sequences frame by frame (no video, no model)."""

from __future__ import annotations

import pytest

from streamer.config import TrackerConfig
from streamer.core.track import Tracker
from streamer.types import Detection

LM = ((1.0, 1.0), (2.0, 1.0), (1.5, 1.5), (1.0, 2.0), (2.0, 2.0))


def det(cx: float, cy: float, size: float = 60, score: float = 0.9, lm=None) -> Detection:
    return Detection((cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2), score, lm)


def run(tracker: Tracker, frames: list[list[Detection]], start: int = 0):
    """Feed one detection list per frame; return each frame's tracks."""
    return [tracker.update(dets, start + f) for f, dets in enumerate(frames)]


def ids_of(out) -> set[int]:
    return {t.id for tracks in out for t in tracks}


# ---- one face ----------------------------------------------------------------------------

@pytest.mark.parametrize("vx, vy, size, growth", [
    (0, 0, 60, 0),  # still
    (5, 0, 60, 0),  # slow
    (-24, 10, 60, 0),  # 0.4 widths per frame, diagonal
    (12, 0, 30, 0),  # small face
    (15, 5, 200, 0),  # large face
    (4, 2, 40, 1.5),  # approaching: grows 1.5 px per frame
])
def test_linear_motion_keeps_one_id(vx, vy, size, growth):
    tracker = Tracker(TrackerConfig())
    out = run(tracker, [[det(300 + vx * f, 300 + vy * f, size + growth * f)] for f in range(40)])
    assert ids_of(out) == {1}
    assert all(len(tracks) == 1 and tracks[0].detected for tracks in out)


def test_fast_face_is_kept_by_the_centre_distance_fallback():
    # 0.8 widths per frame: a new track has no velocity yet, so its second box has IoU 0.
    frames = [[det(100 + 32 * f, 200, 40)] for f in range(15)]
    assert ids_of(run(Tracker(TrackerConfig()), frames)) == {1}
    without = ids_of(run(Tracker(TrackerConfig(), max_center_dist=0), frames))
    assert len(without) == 15  # every frame a new tentative track: the fallback is what helps


def test_sudden_reversal_with_misses_keeps_one_id():
    # Right at 15 px/frame (0.375 widths), then straight back, the detector missing every
    # 4th frame after the turn: the filter must re-learn the velocity within a few frames.
    xs = [100 + 15 * f for f in range(20)] + [385 - 15 * k for k in range(1, 25)]
    tracker = Tracker(TrackerConfig())
    frames = [[] if f > 20 and f % 4 == 0 else [det(x, 200, 40)] for f, x in enumerate(xs)]
    out = run(tracker, frames)
    assert ids_of(out) == {1}
    errors = [abs((t.box[0] + t.box[2]) / 2 - x) for tracks, x in zip(out, xs) for t in tracks
              if not t.detected]
    assert errors and max(errors) < 20  # the coasting box stays on the face


@pytest.mark.parametrize("min_hits", [1, 2, 3, 5])
def test_confirmed_at_min_hits(min_hits):
    tracker = Tracker(TrackerConfig(min_hits=min_hits))
    out = run(tracker, [[det(100 + 3 * f, 100)] for f in range(8)])
    assert [tracks[0].confirmed for tracks in out] == [f + 1 >= min_hits for f in range(8)]
    assert [tracks[0].hits for tracks in out] == list(range(1, 9))


def test_tentative_track_dies_at_first_miss_and_its_id_is_not_reused():
    tracker = Tracker(TrackerConfig(min_hits=3))
    out = run(tracker, [[det(100, 100)], [det(101, 100)], []])
    assert [len(t) for t in out] == [1, 1, 0]
    assert tracker.update([det(102, 100)], 3)[0].id == 2


@pytest.mark.parametrize("max_misses", [1, 3, 15])
def test_confirmed_track_coasts_max_misses_frames_then_ends(max_misses):
    tracker = Tracker(TrackerConfig(min_hits=2, max_misses=max_misses))
    run(tracker, [[det(100 + 10 * f, 100, lm=LM)] for f in range(6)])
    coasting = run(tracker, [[] for _ in range(max_misses + 1)], start=6)
    assert [[t.misses for t in tracks] for tracks in coasting] == \
        [[m] for m in range(1, max_misses + 1)] + [[]]
    for tracks in coasting[:-1]:
        t = tracks[0]
        assert t.confirmed and not t.detected and t.landmarks is None and t.last_frame == 5
    # The predicted box keeps moving at the learnt velocity (10 px per frame).
    first = coasting[0][0].box
    assert first[0] == pytest.approx(100 + 10 * 6 - 30, abs=3)


def test_coasting_track_is_picked_up_again_where_the_motion_predicts():
    tracker = Tracker(TrackerConfig())
    frames = [[det(100 + 12 * f, 200)] if not 10 <= f < 16 else [] for f in range(25)]
    out = run(tracker, frames)
    assert ids_of(out) == {1}
    assert out[-1][0].hits == 19 and out[-1][0].misses == 0


def test_detected_track_carries_the_detection_unchanged():
    tracker = Tracker(TrackerConfig())
    run(tracker, [[det(100, 100)], [det(102, 100)]])
    d = Detection((90.5, 80.25, 152.0, 141.0), 0.77, LM)
    t = tracker.update([d], 2)[0]
    assert (t.box, t.score, t.landmarks, t.first_frame, t.last_frame) == (d.box, 0.77, LM, 0, 2)


def test_frame_id_gaps_scale_the_prediction():
    # Frames dropped upstream: the tracker sees every 4th frame id of a face moving 8 px/frame.
    tracker = Tracker(TrackerConfig())
    for f in range(0, 20, 4):
        assert [t.id for t in tracker.update([det(100 + 8 * f, 100)], f)] == [1]
    coast = tracker.update([], 24)[0]
    assert (coast.box[0] + coast.box[2]) / 2 == pytest.approx(100 + 8 * 24, abs=4)


# ---- two faces ---------------------------------------------------------------------------

@pytest.mark.parametrize("dy, hidden", [
    (0, ()),  # head-on, boxes fully overlap at the crossing
    (20, ()),  # offset rows
    (10, range(13, 18)),  # the rear face is not detected while behind the other
])
def test_crossing_faces_keep_their_ids(dy, hidden):
    tracker = Tracker(TrackerConfig())
    a_ids, b_ids = set(), set()
    for f in range(30):
        a, b = det(100 + 15 * f, 200), det(535 - 15 * f, 200 + dy)
        tracks = tracker.update([a] if f in hidden else [a, b], f)
        for t in tracks:
            cx = (t.box[0] + t.box[2]) / 2
            if abs(cx - (100 + 15 * f)) < 8:
                a_ids.add(t.id)
            elif abs(cx - (535 - 15 * f)) < 8:
                b_ids.add(t.id)
    assert (a_ids, b_ids) == ({1}, {2})


def test_tiny_and_large_face_never_match():
    tracker = Tracker(TrackerConfig(min_hits=1))
    run(tracker, [[det(300, 300, 150)] for _ in range(3)])
    tracks = tracker.update([det(300, 300, 40)], 3)  # same centre, 3.75x smaller
    assert sorted((t.id, t.misses) for t in tracks) == [(1, 1), (2, 0)]


# ---- low-score detections (ByteTrack's second pass) ----------------------------------------

def test_low_score_detection_continues_a_track():
    tracker = Tracker(TrackerConfig(), high_score=0.6)
    run(tracker, [[det(100 + 5 * f, 100)] for f in range(5)])
    out = run(tracker, [[det(125 + 5 * f, 100, score=0.35)] for f in range(10)], start=5)
    assert ids_of(out) == {1}
    assert all(tracks[0].detected and tracks[0].score == 0.35 for tracks in out)


@pytest.mark.parametrize("existing", [False, True])
def test_low_score_detection_never_starts_a_track(existing):
    tracker = Tracker(TrackerConfig(min_hits=1), high_score=0.6)
    others = [det(100, 100)] if existing else []
    out = run(tracker, [others + [det(400, 300, score=0.59)] for _ in range(10)])
    assert ids_of(out) == ({1} if existing else set())


def test_strong_detections_are_matched_before_weak_ones():
    tracker = Tracker(TrackerConfig(), high_score=0.6)
    run(tracker, [[det(100 + 5 * f, 100)] for f in range(5)])
    # A weak box overlaps the prediction better than the strong one; the strong one wins.
    tracks = tracker.update([det(125, 100, score=0.4), det(135, 100, score=0.9)], 5)
    assert len(tracks) == 1 and tracks[0].score == 0.9


# ---- lifecycle ---------------------------------------------------------------------------

def test_ids_are_counted_per_instance():
    first, second = Tracker(TrackerConfig(min_hits=1)), Tracker(TrackerConfig(min_hits=1))
    run(first, [[det(100, 100), det(300, 100)]])
    assert [t.id for t in second.update([det(100, 100)], 0)] == [1]
    three = [det(100, 100), det(300, 100), det(500, 100)]
    assert [t.id for t in first.update(three, 1)] == [1, 2, 3]


def test_empty_frames_are_fine():
    tracker = Tracker(TrackerConfig())
    assert run(tracker, [[] for _ in range(20)]) == [[]] * 20
    assert [t.id for t in tracker.update([det(100, 100)], 20)] == [1]


def test_reset_drops_tracks_and_ids_keep_counting():
    tracker = Tracker(TrackerConfig(min_hits=1))
    run(tracker, [[det(100, 100), det(300, 100)] for _ in range(3)])
    tracker.reset()
    assert tracker.update([], 3) == []
    assert [t.id for t in tracker.update([det(100, 100)], 4)] == [3]


def test_degenerate_box_is_ignored():
    tracker = Tracker(TrackerConfig(min_hits=1))
    assert tracker.update([Detection((10.0, 10.0, 10.0, 50.0), 0.9)], 0) == []


@pytest.mark.parametrize("kwargs, error", [
    ({"high_score": 0}, "high_score must be in"),
    ({"high_score": 1.5}, "high_score must be in"),
    ({"max_size_ratio": 0.5}, "max_size_ratio must be >= 1"),
    ({"max_center_dist": -1}, "max_center_dist must be >= 0"),
    ({"high_score": 1.0, "max_size_ratio": 1.0, "max_center_dist": 0}, None),
])
def test_constructor_checks_its_arguments(kwargs, error):
    if error is None:
        Tracker(TrackerConfig(), **kwargs)
    else:
        with pytest.raises(ValueError, match=error):
            Tracker(TrackerConfig(), **kwargs)
