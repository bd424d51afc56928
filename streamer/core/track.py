"""Face tracking: ``Tracker.update(detections, frame_id) -> list[Track]``.

Contract: call ``update`` once per processed frame, in frame order, **even with no
detections** (an empty list is how the tracker learns that faces were missed). It returns
every track alive after this frame, ordered by id: tentative and confirmed ones, including
those missed this frame (``misses > 0``: the box is the motion prediction, ``landmarks`` is
None). Call ``reset()`` on a scene cut; ids keep counting. Ids start at 1 and are counted per
``Tracker`` instance, so two cameras never share a counter.

Method (SORT with ByteTrack's second pass):

1. Every track's constant-velocity Kalman filter on (cx, cy, w, h) predicts its box. The
   step is the frame-id gap, so frames the pipeline dropped do not stall the prediction;
   a miss is counted per ``update`` call, not per dropped frame. Noise is proportional to
   the box height, so a 30 px face and a 300 px face are equally easy to follow.
2. Detections with ``score >= high_score`` are matched to all tracks by Hungarian
   assignment (``scipy.optimize.linear_sum_assignment``) on ``1 - IoU`` with the predicted
   box; pairs below ``iou_threshold`` may still match on centre distance (below).
3. Weaker detections (the detector already dropped those under its low threshold) are
   matched, on IoU alone, to the tracks still unmatched. They keep a track alive through
   blur, profile or partial occlusion but never start one: a weak detection is too often not
   a face.
4. Unmatched strong detections start tentative tracks. A tentative track is confirmed at its
   ``min_hits``-th consecutive hit and dies at its first miss; a confirmed track survives up
   to ``max_misses`` consecutive misses and ends at the next one.

Gates. A pair never matches when the boxes' sizes (sqrt of area) differ by more than
``max_size_ratio``: a distant small face and a near large one can overlap on screen but are
never the same face one frame apart. Faces move fast relative to their size, and a new track
has no velocity yet, so its second detection can land beside its first with IoU 0 (a 40 px
face crossing a 640 px frame in one second moves 0.5 widths per frame at 30 fps). When IoU is
under ``iou_threshold``, a pair whose centres lie within ``max_center_dist`` times their mean
size still matches, at a cost (1 + distance / max_center_dist) above that of any overlapping
pair (1 - IoU), so overlap is preferred; once the filter has learnt the velocity, the
prediction overlaps again. Weak detections do not get
this fallback: near a real face it would let a false positive steal the track.

Output boxes: when a detection matched, the track carries that detection's box, score and
landmarks unchanged (the box and landmarks agree, which face alignment needs); when missed,
the predicted box, the last matched score and no landmarks.

Cost: a handful of batched (N, 8, 8) numpy operations plus an N x M assignment per frame,
about 0.5 ms with 5 faces and 1.1 ms with 50 (numpy call overhead, not arithmetic).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from streamer.config import TrackerConfig
from streamer.types import Box, Detection, Point, Track

# Kalman noise as fractions of the box height. Position: ByteTrack's value. Velocity: 4x
# ByteTrack's 1/160, because faces turn and stop faster than walking bodies: with 1/160 a
# 40 px face reversing at 15 px/frame, with missed frames, is predicted 300 px off and gets
# a new id; with 1/40 the worst prediction error is 9 px (tests/test_track.py).
_STD_POS = 1 / 20
_STD_VEL = 1 / 40
_FORBIDDEN = 1e6  # assignment cost of a pair that must not match


class _KalmanTrack:
    """One track inside the tracker: its Kalman state (``mean``, ``cov``) and hit/miss counts;
    mutable, only the tracker touches it (``Track`` is the frozen view that leaves it)."""

    __slots__ = ("id", "mean", "cov", "score", "hits", "misses", "first_frame", "last_frame",
                 "confirmed", "box", "landmarks")

    def __init__(self, tid: int, det: Detection, frame_id: int, confirmed: bool):
        z = _xyxy_to_z(np.asarray(det.box, dtype=np.float64))
        self.id = tid
        self.mean = np.concatenate([z, np.zeros(4)])
        h = z[3]
        self.cov = np.diag(np.r_[np.full(4, 2 * _STD_POS * h), np.full(4, 10 * _STD_VEL * h)] ** 2)
        self.score = det.score
        self.hits = 1
        self.misses = 0
        self.first_frame = self.last_frame = frame_id
        self.confirmed = confirmed
        self.box: Box = det.box
        self.landmarks: Optional[tuple[Point, ...]] = det.landmarks


class Tracker:
    """Assigns stable ids to faces across frames (see the module docstring for the method).

    Parameters and their trade-offs:

    - ``cfg.min_hits``: consecutive hits before a track is confirmed. Higher suppresses
      flickering false detections but confirms real faces later (``min_hits - 1`` frames of
      delay) and drops fast faces whose first frames are hard to detect.
    - ``cfg.max_misses``: consecutive misses a confirmed track survives, coasting on its
      predicted box. Higher bridges longer occlusions and detector dropouts without a new id,
      but keeps a ghost track (and delays its end event) after a face leaves, and gives a
      coasting track more time to be matched to a different face at its predicted spot.
    - ``cfg.iou_threshold``: minimum IoU between a predicted box and a detection to match.
      Lower follows faster motion and worse predictions but makes swaps between nearby
      faces likelier; higher is stricter and fragments tracks when motion is jerky.
    - ``high_score``: detections at or above it can start tracks and match first; weaker
      ones only continue tracks. Matches ``DetectorConfig.score_threshold`` by default.
      Higher means fewer false tracks but more faces found late.
    - ``max_size_ratio``: pairs whose sizes differ more never match. Lower is stricter;
      it must stay above the frame-to-frame size change of an approaching face.
    - ``max_center_dist``: the centre-distance fallback's reach, in face sizes (0 turns the
      fallback off). Higher keeps fast faces but risks handing a lost track to a
      neighbouring face.
    """

    def __init__(self, cfg: TrackerConfig = TrackerConfig(), high_score: float = 0.6,
                 max_size_ratio: float = 2.0, max_center_dist: float = 1.0):
        if not 0 < high_score <= 1:
            raise ValueError(f"high_score must be in (0, 1], got {high_score}")
        if max_size_ratio < 1:
            raise ValueError(f"max_size_ratio must be >= 1, got {max_size_ratio}")
        if max_center_dist < 0:
            raise ValueError(f"max_center_dist must be >= 0 (0 disables), got {max_center_dist}")
        self.min_hits = cfg.min_hits
        self.max_misses = cfg.max_misses
        self.iou_threshold = cfg.iou_threshold
        self.high_score = high_score
        self.max_size_ratio = max_size_ratio
        self.max_center_dist = max_center_dist
        self._tracks: list[_KalmanTrack] = []
        self._next_id = 1
        self._last_frame: Optional[int] = None

    @staticmethod
    def warm_up() -> None:
        """Load the assignment solver now; ``app`` runs this beside the model loading so that
        neither start-up nor a live frame pays for it."""
        _solver()

    @property
    def live(self) -> int:
        """Tracks alive now (confirmed or not)."""
        return len(self._tracks)

    def predict(self, frame_id: int) -> list[Track]:
        """Advance to ``frame_id`` on a frame the detector skipped (``detector.interval``, motion
        gate): every track moves to its motion prediction and no miss is counted, because
        nothing was looked for. The tracks come out not ``detected`` (misses + 1, no landmarks),
        so attributes and line crossings wait for the next detected frame."""
        dt = 1 if self._last_frame is None else max(1, frame_id - self._last_frame)
        self._last_frame = frame_id
        if self._tracks:
            _predict(self._tracks, dt)
        return [Track(t.id, tuple(_z_to_xyxy(t.mean[:4]).tolist()), t.score, t.confirmed, t.hits,
                      t.misses + 1, t.first_frame, t.last_frame, None) for t in self._tracks]

    def reset(self) -> None:
        """Drop every track (scene cut, source switch). Ids keep counting."""
        self._tracks = []
        self._last_frame = None

    def update(self, detections: list[Detection], frame_id: int) -> list[Track]:
        """Advance to ``frame_id`` with this frame's detections; return the live tracks."""
        dt = 1 if self._last_frame is None else max(1, frame_id - self._last_frame)
        self._last_frame = frame_id
        # A clipped box at the frame edge can have no width; it carries no position to track.
        dets = [d for d in detections if d.box[2] - d.box[0] >= 1 and d.box[3] - d.box[1] >= 1]
        tracks = self._tracks
        if tracks:
            _predict(tracks, dt)
        strong = [d for d in dets if d.score >= self.high_score]
        weak = [d for d in dets if d.score < self.high_score]

        matched: dict[int, Detection] = {}  # index in tracks -> detection
        pairs, free_strong = self._match(range(len(tracks)), strong, self.max_center_dist)
        matched.update(pairs)
        rest = [i for i in range(len(tracks)) if i not in matched]
        pairs, _ = self._match(rest, weak, 0.0)
        matched.update(pairs)

        if matched:
            _correct([tracks[i] for i in matched], [d.box for d in matched.values()])
        survivors = []
        for i, t in enumerate(tracks):
            det = matched.get(i)
            if det is not None:
                t.hits += 1
                t.misses = 0
                t.last_frame = frame_id
                t.score, t.box, t.landmarks = det.score, det.box, det.landmarks
                t.confirmed = t.confirmed or t.hits >= self.min_hits
            else:
                t.misses += 1
                if not t.confirmed or t.misses > self.max_misses:
                    continue
                t.box = tuple(_z_to_xyxy(t.mean[:4]).tolist())
                t.landmarks = None
                t.mean[6:] = 0.0  # coast at constant size: a guessed zoom compounds quickly
            survivors.append(t)
        for d in free_strong:
            survivors.append(_KalmanTrack(self._next_id, d, frame_id, self.min_hits <= 1))
            self._next_id += 1
        self._tracks = survivors
        return [Track(t.id, t.box, t.score, t.confirmed, t.hits, t.misses, t.first_frame,
                      t.last_frame, t.landmarks) for t in survivors]

    def _match(self, rows, dets: list[Detection], center_dist: float):
        """Hungarian matching of tracks ``rows`` to ``dets``: ({track index: det}, unmatched)."""
        rows = list(rows)
        if not rows or not dets:
            return {}, list(dets)
        pred = _z_to_xyxy(np.stack([self._tracks[i].mean[:4] for i in rows]).T).T
        boxes = np.array([d.box for d in dets], dtype=np.float64)
        cost = self._cost(pred, boxes, center_dist)
        r, c = _assign(cost)
        ok = cost[r, c] < _FORBIDDEN
        pairs = {rows[i]: dets[j] for i, j in zip(r[ok], c[ok])}
        taken = set(c[ok].tolist())
        return pairs, [d for j, d in enumerate(dets) if j not in taken]

    def _cost(self, a: np.ndarray, b: np.ndarray, center_dist: float) -> np.ndarray:
        """(N, M) cost: 1 - IoU for overlapping pairs, 1..2 for centre-distance pairs."""
        wa, ha = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
        wb, hb = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
        ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        area_a, area_b = (wa * ha)[:, None], (wb * hb)[None, :]
        iou = inter / (area_a + area_b - inter)
        cost = np.where(iou >= self.iou_threshold, 1.0 - iou, _FORBIDDEN)
        size_a, size_b = np.sqrt(area_a), np.sqrt(area_b)
        if center_dist > 0:
            dx = (a[:, None, 0] + a[:, None, 2] - b[None, :, 0] - b[None, :, 2]) / 2
            dy = (a[:, None, 1] + a[:, None, 3] - b[None, :, 1] - b[None, :, 3]) / 2
            dist = np.hypot(dx, dy) / ((size_a + size_b) / 2)
            near = (cost >= _FORBIDDEN) & (dist <= center_dist)
            cost = np.where(near, 1.0 + dist / center_dist, cost)
        ratio = np.maximum(size_a / size_b, size_b / size_a)
        return np.where(ratio > self.max_size_ratio, _FORBIDDEN, cost)


def _assign(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Optimal assignment. With one track or one detection the optimum is the row's (column's)
    minimum, so the common single-face frame needs no solver, and SciPy (0.4 s to import) is
    loaded at the first frame that really needs it rather than at start-up."""
    if cost.shape[0] == 1:
        j = int(np.argmin(cost[0]))
        return np.array([0]), np.array([j])
    if cost.shape[1] == 1:
        i = int(np.argmin(cost[:, 0]))
        return np.array([i]), np.array([0])
    return _solver()(cost)


_SOLVER = None


def _solver():
    """SciPy's ``linear_sum_assignment``, loaded from its own extension module.

    ``from scipy.optimize import ...`` runs the whole ``scipy.optimize`` package init (sparse,
    linalg, BLAS): 46 MB of RSS and ~0.4 s per process, for one C function that needs none of
    it. The extension ``scipy/optimize/_lsap*.so`` is the same function SciPy re-exports;
    loading it alone costs under 1 MB. Falls back to the package import if the layout differs.
    """
    global _SOLVER
    if _SOLVER is None:
        try:
            import importlib.machinery
            import importlib.util
            from pathlib import Path

            base = Path(importlib.util.find_spec("scipy").origin).parent / "optimize"
            path = next(p for p in base.glob("_lsap*")
                        if p.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)))
            spec = importlib.util.spec_from_file_location("scipy.optimize._lsap", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            _SOLVER = mod.linear_sum_assignment
        except Exception:  # noqa: BLE001 - any surprise: the documented import
            from scipy.optimize import linear_sum_assignment
            _SOLVER = linear_sum_assignment
    return _SOLVER


# ---- Kalman filter, batched over tracks -------------------------------------------------
# State (cx, cy, w, h, vcx, vcy, vw, vh); measurement (cx, cy, w, h); H = [I 0].

def _xyxy_to_z(b: np.ndarray) -> np.ndarray:
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]])


def _z_to_xyxy(z: np.ndarray) -> np.ndarray:
    """(cx, cy, w, h) -> (x1, y1, x2, y2); also column-wise on a (4, N) array."""
    return np.array([z[0] - z[2] / 2, z[1] - z[3] / 2, z[0] + z[2] / 2, z[1] + z[3] / 2])


def _predict(tracks: list[_KalmanTrack], dt: int) -> None:
    mean = np.stack([t.mean for t in tracks])
    cov = np.stack([t.cov for t in tracks])
    f = np.eye(8)
    f[range(4), range(4, 8)] = dt
    h = mean[:, 3:4]
    std = np.hstack([np.repeat(_STD_POS * h, 4, axis=1), np.repeat(_STD_VEL * h, 4, axis=1)])
    mean = mean @ f.T
    mean[:, 2:4] = np.maximum(mean[:, 2:4], 1.0)  # a shrinking box must not invert
    cov = f @ cov @ f.T
    idx = np.arange(8)
    cov[:, idx, idx] += dt * std ** 2
    for t, m, c in zip(tracks, mean, cov):
        t.mean, t.cov = m, c


def _correct(tracks: list[_KalmanTrack], boxes: list[Box]) -> None:
    mean = np.stack([t.mean for t in tracks])
    cov = np.stack([t.cov for t in tracks])
    z = np.array([_xyxy_to_z(np.asarray(b, dtype=np.float64)) for b in boxes])
    r = (_STD_POS * mean[:, 3]) ** 2
    s = cov[:, :4, :4] + r[:, None, None] * np.eye(4)
    gain = cov[:, :, :4] @ np.linalg.inv(s)  # (N, 8, 4)
    mean = mean + (gain @ (z - mean[:, :4])[:, :, None])[:, :, 0]
    cov = cov - gain @ cov[:, :4, :]
    for t, m, c in zip(tracks, mean, cov):
        t.mean, t.cov = m, c
