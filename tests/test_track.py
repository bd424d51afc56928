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


# ---- exact behaviour the contract states (found by mutation testing: `make mutate`) -------

import numpy as np  # noqa: E402

from streamer.core import track as track_mod  # noqa: E402


def centre(box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def moving(tracker: Tracker, frames: int, vx: float = 10.0, x0: float = 100.0, y: float = 200.0):
    """A face moving vx px per frame for ``frames`` frames (0..frames-1)."""
    return run(tracker, [[det(x0 + vx * f, y, lm=LM)] for f in range(frames)])


def test_predict_moves_tracks_on_their_motion_and_counts_no_miss():
    tracker = Tracker(TrackerConfig(min_hits=2, max_misses=1))
    assert tracker.predict(0) == []  # nothing to move
    tracker = Tracker(TrackerConfig(min_hits=2, max_misses=1))
    (last,) = moving(tracker, 12)[-1]  # at x = 210 on frame 11
    (p,) = tracker.predict(13)  # frames 12 and 13 skipped by the detector: two steps ahead
    assert p.id == last.id and p.confirmed and p.landmarks is None
    assert p.misses == 1 and p.hits == last.hits and p.last_frame == 11
    assert centre(p.box) == pytest.approx((230, 200), abs=2)
    assert p.box[2] - p.box[0] == pytest.approx(60, abs=1)
    (p,) = tracker.predict(14)  # one more step
    assert centre(p.box) == pytest.approx((240, 200), abs=2)
    # predict counted no miss: a confirmed track with max_misses=1 survives one missed
    # update after any number of predicts, and ends at the second
    tracker.predict(15)
    assert [t.misses for t in tracker.update([], 16)] == [1]
    assert tracker.update([], 17) == []


def test_a_missed_frame_coasts_one_step_ahead_on_the_learnt_velocity():
    tracker = Tracker(TrackerConfig(min_hits=2, max_misses=3))
    moving(tracker, 12)  # x = 210 on frame 11
    (t,) = tracker.update([], 12)
    assert t.misses == 1 and centre(t.box) == pytest.approx((220, 200), abs=2)
    (t,) = tracker.update([], 14)  # a frame-id gap of 2: two steps
    assert centre(t.box) == pytest.approx((240, 200), abs=2)


def test_kalman_converges_on_constant_velocity():
    tracker = Tracker(TrackerConfig(min_hits=1, max_misses=5))
    moving(tracker, 30, vx=7.0)  # x = 303 on frame 29
    (t,) = tracker.update([], 30)
    assert centre(t.box) == pytest.approx((310, 200), abs=0.5)


def test_a_coasting_box_keeps_its_size():
    """A face growing 4 px per frame, then missed: the coasting box grows at most once (the
    predict before the size velocity is zeroed), then keeps its size."""
    tracker = Tracker(TrackerConfig(min_hits=2, max_misses=5))
    run(tracker, [[det(300, 200, size=60 + 4 * f)] for f in range(10)])
    sizes = []
    for f in range(10, 14):
        (t,) = tracker.update([], f)
        sizes.append((t.box[2] - t.box[0], t.box[3] - t.box[1]))
    assert sizes[1] == pytest.approx(sizes[0], abs=0.01)
    assert sizes[3] == pytest.approx(sizes[0], abs=0.01)


def test_a_track_ending_does_not_drop_the_tracks_after_it():
    tracker = Tracker(TrackerConfig(min_hits=1, max_misses=1))
    run(tracker, [[det(100, 100), det(400, 100)]])  # ids 1, 2
    tracker.update([det(400, 100)], 1)  # 1 coasts
    assert [t.id for t in tracker.update([det(400, 100)], 2)] == [2]  # 1 ends, 2 goes on


@pytest.mark.parametrize("box, kept", [
    ((10.0, 10.0, 11.0, 11.0), True),  # 1 x 1 px: tiny, but a position
    ((10.0, 10.0, 10.5, 40.0), False),  # under 1 px wide
    ((10.0, 10.0, 40.0, 10.5), False),  # under 1 px high
    ((10.0, 10.0, 40.0, 10.0), False),  # no height
])
def test_boxes_under_one_pixel_are_ignored(box, kept):
    tracker = Tracker(TrackerConfig(min_hits=1))
    assert len(tracker.update([Detection(box, 0.9)], 0)) == int(kept)


def test_a_detection_at_exactly_high_score_is_strong():
    tracker = Tracker(TrackerConfig(min_hits=1), high_score=0.6)
    assert [t.id for t in tracker.update([det(100, 100, score=0.6)], 0)] == [1]


def test_one_detection_at_high_score_feeds_one_track_only():
    """Strong and weak are disjoint: a detection at exactly high_score matched in the strong
    pass is not offered again to the other track in the weak pass."""
    tracker = Tracker(TrackerConfig(min_hits=1, max_misses=3, iou_threshold=0.2), high_score=0.6)
    run(tracker, [[det(100, 100), det(130, 100)] for _ in range(3)])
    tracks = tracker.update([det(115, 100, score=0.6)], 3)
    assert sorted(t.misses for t in tracks) == [0, 1]


def test_weak_detections_get_no_centre_distance_fallback():
    tracker = Tracker(TrackerConfig(min_hits=2, max_misses=3), high_score=0.6)
    moving(tracker, 5, vx=0.0)  # still at (100, 200)
    # a weak box beside the prediction: no overlap, centres 0.8 sizes apart
    (t,) = tracker.update([det(148, 200, score=0.4)], 5)
    assert t.misses == 1
    # a strong one there is taken by the fallback
    (t,) = tracker.update([det(148, 200, score=0.9)], 6)
    assert t.misses == 0


def cost(tracker: Tracker, a, b, center_dist: float) -> np.ndarray:
    return tracker._cost(np.array(a, float), np.array(b, float), center_dist)


def test_cost_is_one_minus_iou_above_the_threshold():
    tr = Tracker(TrackerConfig(iou_threshold=1 / 3), max_size_ratio=2.0)
    a = [[0, 50, 10, 60]]
    b = [[0, 50, 10, 60],  # same box
         [5, 50, 15, 60],  # half along x: IoU 1/3 (exactly the threshold: matches)
         [0, 55, 10, 65],  # half along y: IoU 1/3
         [6, 50, 16, 60],  # IoU 4/16 < 1/3: no match without the fallback
         [0, 50, 20, 70]]  # size ratio 2 (allowed), IoU 1/4
    c = cost(tr, a, b, 0.0)[0]
    assert c[:3] == pytest.approx([0.0, 2 / 3, 2 / 3])
    assert c[3] == c[4] == track_mod._FORBIDDEN


def test_centre_distance_fallback_cost():
    tr = Tracker(TrackerConfig(iou_threshold=0.3), max_size_ratio=2.0)
    a = [[0, 50, 10, 60]]
    b = [[20, 50, 30, 60],  # centres 20 px apart along x, size 10: 2 sizes
         [0, 70, 10, 80],  # 2 sizes along y
         [12, 50, 22, 60],  # 1.2 sizes
         [25, 50, 35, 60],  # 2.5 sizes: exactly the reach (included)
         [26, 50, 36, 60],  # beyond the reach
         [0, 50, 30, 80]]  # size ratio 3: never, however close
    c = cost(tr, a, b, 2.5)[0]
    assert c[:4] == pytest.approx([1 + 2 / 2.5, 1 + 2 / 2.5, 1 + 1.2 / 2.5, 2.0])
    assert c[4] == c[5] == track_mod._FORBIDDEN
    # sizes 10 and 16 (mean 13), centres 13 px apart: one mean size
    c = cost(tr, a, [[18 - 8, 47, 18 + 8, 63]], 2.0)[0]
    assert c[0] == pytest.approx(1 + 1 / 2.0)


def test_no_fallback_when_the_reach_is_zero():
    tr = Tracker(TrackerConfig(iou_threshold=0.3), max_size_ratio=2.0, max_center_dist=0.0)
    # concentric, sizes 10 and 19: IoU 0.28, distance 0
    c = cost(tr, [[0, 0, 10, 10]], [[-4.5, -4.5, 14.5, 14.5]], 0.0)
    assert c[0, 0] == track_mod._FORBIDDEN


@pytest.mark.parametrize("matrix, expected", [
    ([[0.9], [0.1], [0.5]], ([1], [0])),  # one detection: the best track
    ([[0.9, 0.1, 0.5]], ([0], [1])),  # one track: the best detection
    ([[0.1, 0.2], [0.2, 0.9]], ([0, 1], [1, 0])),  # the optimum, not the greedy pick
])
def test_assignment_is_optimal(matrix, expected):
    r, c = track_mod._assign(np.array(matrix))
    assert (list(r), list(c)) == tuple(map(list, expected))


def test_box_conversions_are_inverse():
    z = track_mod._xyxy_to_z(np.array([8.0, 16.0, 12.0, 24.0]))
    assert list(z) == [10.0, 20.0, 4.0, 8.0]
    assert list(track_mod._z_to_xyxy(z)) == [8.0, 16.0, 12.0, 24.0]


def test_solver_loads_without_the_scipy_optimize_package(monkeypatch):
    """The light path (the _lsap extension alone) must work: with ``scipy.optimize`` made
    unimportable, the solver still loads and solves."""
    import builtins
    import sys

    real_import = builtins.__import__

    def no_optimize(name, *args, **kw):
        if name.startswith("scipy.optimize"):
            raise ImportError("blocked by the test")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(track_mod, "_SOLVER", None)
    for mod in [m for m in sys.modules if m.startswith("scipy.optimize")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", no_optimize)
    solve = track_mod._solver()
    r, c = solve(np.array([[0.1, 0.2], [0.2, 0.9]]))
    assert list(r) == [0, 1] and list(c) == [1, 0]
    assert track_mod._solver() is solve  # loaded once


def test_cost_overlap_is_exact_at_the_edges():
    tr = Tracker(TrackerConfig(iou_threshold=0.001), max_size_ratio=2.0)
    a = [[0, 0, 10, 10]]
    b = [[9.5, 0, 19.5, 10],  # 0.5 px of overlap: IoU 5 / 195
         [12, 12, 22, 22],  # apart along both axes: no overlap at all (IoU 0, not positive)
         [0, 0, 20, 20]]  # size ratio exactly 2: allowed; IoU 100 / 400
    c = cost(tr, a, b, 0.0)[0]
    assert c[0] == pytest.approx(1 - 5 / 195) and c[2] == pytest.approx(0.75)
    assert c[1] == track_mod._FORBIDDEN
