"""Age and gender: the nets, a single-image estimator and the per-track policy.

Three layers, each usable alone:

- ``AttributeNets`` turns chips into probabilities with ONE forward pass per net per call.
  ``DlibNets`` (default, CC0 ONNX nets) and ``LeviHassnerNets`` (user-supplied Caffe files,
  OpenCV 4.x only) implement it; tests inject a fake.
- ``AttributeEstimator`` builds the chips (``align.face_chips``), adds mirrored chips to the
  same batch when ``flip_average`` is on, and turns probabilities into ``Attributes``.
  ``classify(image, faces, pair_landmarks)`` is the single-image path (web, batch): one batched
  call; with a ``pair_kind`` each face's gender chip is also cut from a second detector's
  landmarks and the two answers are averaged in logit space (``match_landmarks`` pairs faces).
- ``TrackAttributes.estimate(image, tracks, frame_id)`` is the stream path: it decides which
  tracks are due (new, every ``reclassify_every`` frames, or a clearly better view), caps the
  work per frame, and keeps a quality-weighted running average of probabilities per track.

The answer per face is always derived from averaged probabilities, never from averaged labels
or ages: the gender is the argmax of the mean distribution, the age its expected value, the
range two of its quantiles, and ``age_confidence`` the probability mass within 5 years of the
expected value. The raw numbers then go through the dev-fitted ``calibration.Calibration``
of the detector that placed the chips: a monotone age map (``attributes.age_calibration``),
an age range widened by split conformal so that "80%" holds about 80% of the time, and a
temperature on the gender probability; the shown gender confidence never exceeds 99%.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from streamer.core import align, calibration
from streamer.core.calibration import MAX_CONFIDENCE, Calibration
from streamer.core.geometry import iou
from streamer.config import AttributesConfig
from streamer.types import Attributes, Box, Detection, Point, Track
# The nets live in attribute_nets.py; their names stay importable from here.
from streamer.core.attribute_nets import (  # noqa: E402,F401
    AGE_ONNX, GENDER_ONNX, LH_FILES, DLIB_AGES, LH_AGES, AgeScale, AttributeNets, DlibNets,
    LeviHassnerNets, build_nets)

RANGE_QUANTILES = (0.1, 0.9)  # the raw (uncalibrated) range: the net's 10th-90th percentile
CONFIDENCE_YEARS = 5.0
IDENTITY = Calibration()  # raw nets: the reference for tests and "without calibration" figures
_chip_options = calibration.chip_options  # (the name "calibration" is a parameter below)


def summarize(age_p: np.ndarray, gender_p: np.ndarray, ages: AgeScale, samples: int,
              cal: Calibration = IDENTITY) -> Attributes:
    """Attributes from (averaged) probabilities, through ``cal``."""
    gender_p = np.asarray(gender_p, np.float64)
    p_male = cal.p_male(float(gender_p[1]) / max(float(gender_p.sum()), 1e-12))
    raw_age = ages.expected(age_p)
    age = cal.age(raw_age)
    lo, hi = cal.age_range(*(ages.quantile(q, age_p) for q in cal.quantiles))
    lo, hi = min(lo, age), max(hi, age)
    conf = ages.cdf(raw_age + CONFIDENCE_YEARS, age_p) - ages.cdf(raw_age - CONFIDENCE_YEARS, age_p)
    return Attributes(
        gender="male" if p_male > 0.5 else "female",
        gender_confidence=round(min(max(p_male, 1 - p_male), MAX_CONFIDENCE), 4),
        age=round(age, 1), age_low=round(lo, 1), age_high=round(hi, 1),
        age_confidence=round(conf, 4), samples=samples)


def defaults_for(nets: AttributeNets, cfg: AttributesConfig, detector_kind: str = "yunet",
                 pair_kind: Optional[str] = None) -> tuple[align.ChipSpec, Calibration]:
    """The chips and calibration measured for these nets with ``detector_kind``'s landmarks
    (and, with ``pair_kind``, gender chips also cut from that detector's landmarks: the
    calibration fitted for the pair, ``"<kind>+<pair>"``, when the shipped file has one).

    Only the dlib nets were measured (the shipped file says on what); other model sets get
    dlib-exact chips and the identity calibration (still capped at 99%).
    """
    if nets.ages is not DLIB_AGES:
        return align.ChipSpec.dlib_exact(), IDENTITY
    key = calibration.pair_key(detector_kind, pair_kind)
    cal = calibration.load(key if key in calibration.available() else detector_kind, cfg.age_calibration)
    opts = calibration.chip_options(detector_kind)
    tpl = align.TEMPLATES.get(detector_kind, align.TEMPLATE)
    return align.ChipSpec(tpl, **opts), cal


def pair_for(nets: AttributeNets, detector_kind: str) -> Optional[str]:
    """The second landmark detector the shipped calibration pairs with ``detector_kind`` for
    gender on single images (None for other model sets, or when none was measured)."""
    if nets.ages is not DLIB_AGES:
        return None
    pair = calibration.pair_of(detector_kind)
    return pair if pair in align.TEMPLATES else None


def _mean_logit(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """[female, male] rows whose male logit is the mean of ``p``'s and ``q``'s."""
    def z(r):
        m = np.clip(r[:, 1] / np.maximum(r.sum(1), 1e-12), 1e-7, 1 - 1e-7)
        return np.log(m) - np.log1p(-m)
    pm = 1 / (1 + np.exp(-(z(p) + z(q)) / 2))
    return np.stack([1 - pm, pm], axis=1).astype(np.float32)


@dataclass(frozen=True, eq=False)
class _Judged:
    """One face after chip extraction: either chips to classify or the reason it is skipped."""

    chips: Optional[align.FaceChips]
    reason: Optional[str] = None


class AttributeEstimator:
    """Chips, batching and flip averaging around an ``AttributeNets``.

    ``flip_average`` puts each chip's mirror image in the same batch and averages the two
    probability rows: still one forward per net, twice the net work, for a lower age error
    (MAE 7.48 -> 7.12 years on the UTKFace dev set) and better gender (accuracy 0.869 -> 0.889,
    log-loss 0.315 -> 0.273). More test-time views (shifts, scales, rotations) were measured
    too and bought nothing significant for 3-7x the cost, so there are none.

    ``pair_kind`` (single images): gender chips are also cut from a second detector's
    landmarks for the same face (``classify(..., pair_landmarks=...)``, same forward call) and
    the two flip-averaged answers are averaged in logit space: two independent alignments of
    the same face. Measured on the dev faces (README "Accuracy and honest uncertainty"):
    CenterFace + YuNet landmarks 0.901 held out against 0.884 (CenterFace alone) and 0.889
    (YuNet alone); twice the gender-net work (a 32 px net: about 0.5 ms per face) and one
    dlib-sampled chip more (1.4 ms), plus the second detector's pass (``Analyzer``).
    """

    def __init__(self, nets: AttributeNets, cfg: AttributesConfig = AttributesConfig(), *,
                 detector_kind: str = "yunet", chips: Optional[align.ChipSpec] = None,
                 calibration: Optional[Calibration] = None, pair_kind: Optional[str] = None):
        self.nets = nets
        self.cfg = cfg
        self.detector_kind = detector_kind
        self.pair_kind = pair_kind if (pair_kind in align.TEMPLATES and nets.ages is DLIB_AGES) else None
        spec, cal = defaults_for(nets, cfg, detector_kind, self.pair_kind)
        self.chips = chips or spec
        self.calibration = calibration or cal
        self.pair_chips: Optional[align.ChipSpec] = None
        if self.pair_kind:
            self.pair_chips = align.ChipSpec(align.TEMPLATES[self.pair_kind],
                                             **_chip_options(self.pair_kind))
        self.faces_classified = 0  # faces sent through the nets (a flipped copy is not a face)
        self.forward_calls = 0  # batched calls of nets.forward
        # (age, gender) probabilities of the last ``probabilities`` call, flip-averaged and
        # before calibration: what scripts/fit_calibration.py and the bench fit and score.
        self.last_probabilities: tuple[np.ndarray, np.ndarray] = (np.zeros((0, 0)), np.zeros((0, 2)))

    @property
    def calls(self) -> int:
        return self.faces_classified

    # -- building blocks (TrackAttributes uses them too) ------------------------------------

    def judge(self, image: np.ndarray, box: Box, landmarks: Optional[Sequence[Point]]) -> _Judged:
        """Cut the chips of one face, or say why the face cannot be judged."""
        width = float(box[2] - box[0])
        if width < self.cfg.min_face_px:
            return _Judged(None, f"face too small ({width:.0f} px < {self.cfg.min_face_px} px)")
        chips = align.face_chips(image, box, landmarks, self.nets.chip_sizes, self.nets.chip_padding,
                                 self.chips)
        if chips.quality.sharpness < self.cfg.min_sharpness:
            return _Judged(chips, f"face too blurred or dark (sharpness {chips.quality.sharpness:.1f}"
                                  f" < {self.cfg.min_sharpness:g})")
        return _Judged(chips)

    def pair_chip(self, image: np.ndarray, landmarks: Optional[Sequence[Point]]) -> Optional[np.ndarray]:
        """The gender chip from the pair detector's landmarks of the same face (None: no pair)."""
        if self.pair_chips is None or landmarks is None:
            return None
        if image.ndim == 2:
            import cv2
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        size = self.nets.chip_sizes[1]
        M = align.chip_transform(landmarks, size, self.nets.chip_padding, self.pair_chips.template)
        return align.sample(image, M, size, self.pair_chips.gender_sampling)

    def probabilities(self, chips: Sequence[align.FaceChips],
                      pair_gender: Optional[Sequence[Optional[np.ndarray]]] = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(age (N, K), gender (N, 2)) for the chips: one ``nets.forward`` call for all.

        ``pair_gender[k]``: face k's gender chip from the pair detector's landmarks, or None;
        where given, face k's gender row is the logit-mean of both (flip-averaged) answers.
        """
        n = len(chips)
        if n == 0:
            return np.zeros((0, len(self.nets.ages.values)), np.float32), np.zeros((0, 2), np.float32)
        age = np.stack([c.age for c in chips])
        same = all(c.gender is c.age for c in chips)
        gender = age if same else np.stack([c.gender for c in chips])
        if self.cfg.flip_average:
            age = np.concatenate([age, age[:, :, ::-1]])
            gender = age if same else np.concatenate([gender, gender[:, :, ::-1]])
        paired = [k for k, c in enumerate(pair_gender or ()) if c is not None] if not same else []
        if paired:
            extra = np.stack([pair_gender[k] for k in paired])
            if self.cfg.flip_average:
                extra = np.concatenate([extra, extra[:, :, ::-1]])
            gender = np.concatenate([gender, extra])
        pa, pg = self.nets.forward(age, gender)
        self.forward_calls += 1
        self.faces_classified += n
        views = 2 if self.cfg.flip_average else 1
        pg, pp = pg[:views * n], pg[views * n:]
        if self.cfg.flip_average:
            pa, pg = (pa[:n] + pa[n:]) / 2, (pg[:n] + pg[n:]) / 2
            m = len(paired)
            pp = (pp[:m] + pp[m:]) / 2
        if paired:
            pg = np.array(pg, np.float32)
            pg[paired] = _mean_logit(pg[paired], pp)
        self.last_probabilities = (pa, pg)
        return pa, pg

    # -- single image ---------------------------------------------------------------------

    def classify(self, image: np.ndarray, faces: Sequence[Detection],
                 pair_landmarks: Optional[Sequence[Optional[Sequence[Point]]]] = None) -> list[Attributes]:
        """One ``Attributes`` per face, in order; faces that cannot be judged carry a reason.

        ``pair_landmarks[i]``: face i's landmarks from the pair detector (``pair_kind``), or
        None where that detector did not find it (face i is then judged from its own chips).
        """
        judged = [self.judge(image, f.box, f.landmarks) for f in faces]
        todo = [j.chips for j in judged if j.reason is None]
        pair = None
        if pair_landmarks is not None and self.pair_chips is not None:
            pair = [self.pair_chip(image, lm) for j, lm in zip(judged, pair_landmarks) if j.reason is None]
        pa, pg = self.probabilities(todo, pair)
        out, k = [], 0
        for j in judged:
            if j.reason is not None:
                out.append(Attributes(reason=j.reason))
            else:
                out.append(summarize(pa[k], pg[k], self.nets.ages, 1, self.calibration))
                k += 1
        return out


@dataclass
class _PersonAttributeState:
    age_sum: Optional[np.ndarray] = None  # quality-weighted sums of probabilities
    gender_sum: Optional[np.ndarray] = None
    weight: float = 0.0
    samples: int = 0
    best_quality: float = 0.0
    last_frame: Optional[int] = None  # frame of the last classification
    due_since: Optional[int] = None  # first frame it was due and not served (for fairness)
    next_look: int = 0  # earliest frame for an unscheduled look (retry or better view)
    reason: Optional[str] = None  # why it has no answer yet
    answer: Optional[Attributes] = field(default=None, repr=False)


LOOK_AGAIN_FRAMES = 5  # after a rejected look, skip this many frames before cutting a chip again


class TrackAttributes:
    """Per-track attributes for a stream. Call ``estimate`` once per processed frame.

    Policy: a confirmed track detected in this frame is classified the first time it can be
    judged, then again every ``reclassify_every`` frames, or earlier when a view arrives whose
    quality beats the best classified so far by ``better_view_ratio``. Never more than
    ``max_per_frame`` faces per frame: the tracks due longest go first, the rest wait
    (``reason`` says so until they are served). Faces too small or too blurred are not
    classified; a track without an answer reports why.

    The answer is the quality-weighted mean of every classified view's probabilities, so a
    settled label needs many contrary views to flip: raising ``reclassify_every`` makes the
    answer cheaper and steadier but slower to correct a bad first view. Call ``forget`` when
    a track ends.
    """

    def __init__(self, nets: AttributeNets, cfg: AttributesConfig = AttributesConfig(), *,
                 detector_kind: str = "yunet", chips: Optional[align.ChipSpec] = None,
                 calibration: Optional[Calibration] = None):
        self.estimator = AttributeEstimator(nets, cfg, detector_kind=detector_kind, chips=chips,
                                            calibration=calibration)
        self.cfg = cfg
        self._state: dict[int, _PersonAttributeState] = {}

    @property
    def calls(self) -> int:
        """Faces classified so far (the bench divides by frames: net calls per frame)."""
        return self.estimator.faces_classified

    @property
    def forward_calls(self) -> int:
        """Batched forward passes so far (at most one per net per frame)."""
        return self.estimator.forward_calls

    def forget(self, track_id: int) -> None:
        self._state.pop(track_id, None)

    def current(self, track_id: int) -> Attributes:
        st = self._state.get(track_id)
        if st is None:
            return Attributes(reason="not classified yet")
        return st.answer or Attributes(reason=st.reason or "not classified yet")

    def estimate(self, image: np.ndarray, tracks: Sequence[Track], frame_id: int) -> dict[int, Attributes]:
        """Classify the tracks that are due; return the current answer for every track given."""
        cfg = self.cfg
        candidates: list[tuple[int, int, Track, bool]] = []  # (due since, id, track, regular)
        for t in tracks:
            st = self._state.setdefault(t.id, _PersonAttributeState())
            if not t.confirmed or not t.detected:
                if st.answer is None:
                    st.reason = "track not confirmed yet" if not t.confirmed else "face not detected in this frame"
                continue
            if frame_id < st.next_look:
                continue
            regular = st.last_frame is None or frame_id - st.last_frame >= cfg.reclassify_every
            if regular:
                if st.due_since is None:
                    st.due_since = frame_id
                candidates.append((st.due_since, t.id, t, True))
                continue
            # Size and pose bound the quality before any pixel is read (sharpness caps at 1):
            # most frames of a known track end here without cutting a chip.
            bound = align.quality(t.box[2] - t.box[0], float("inf"),
                                  align.frontalness(t.landmarks, self.estimator.chips.template)).score
            if bound > st.best_quality * cfg.better_view_ratio:
                candidates.append((frame_id, t.id, t, False))
        # Oldest due first; chips are cut only for the faces that get a slot this frame.
        candidates.sort(key=lambda c: (c[0], c[1]))
        served: list[tuple[_PersonAttributeState, align.FaceChips]] = []
        for _, tid, t, regular in candidates:
            st = self._state[tid]
            if len(served) >= cfg.max_per_frame:
                if regular and st.answer is None:
                    st.reason = "waiting for a classification slot"
                continue
            judged = self.estimator.judge(image, t.box, t.landmarks)
            if judged.reason is not None or not (
                    regular or judged.chips.quality.score > st.best_quality * cfg.better_view_ratio):
                # A chip was cut for nothing (too blurred, or not a better view after all):
                # look again only a few frames later, so a face that stays blurred does not
                # cost a chip every frame. "Too small" is decided from the box alone: no wait.
                if judged.chips is not None:
                    st.next_look = frame_id + LOOK_AGAIN_FRAMES
                if judged.reason is not None and st.answer is None:
                    st.reason = judged.reason
                continue
            served.append((st, judged.chips))
        if served:
            pa, pg = self.estimator.probabilities([c for _, c in served])
            for k, (st, chips) in enumerate(served):
                self._update(st, pa[k], pg[k], chips.quality.score, frame_id)
        return {t.id: self.current(t.id) for t in tracks}

    def _update(self, st: _PersonAttributeState, pa: np.ndarray, pg: np.ndarray, w: float, frame_id: int) -> None:
        if st.age_sum is None:
            st.age_sum, st.gender_sum = np.zeros_like(pa, np.float64), np.zeros_like(pg, np.float64)
        st.age_sum += w * pa
        st.gender_sum += w * pg
        st.weight += w
        st.samples += 1
        st.best_quality = max(st.best_quality, w)
        st.last_frame = frame_id
        st.due_since = None
        st.reason = None
        st.answer = summarize(st.age_sum / st.weight, st.gender_sum / st.weight,
                              self.estimator.nets.ages, st.samples, self.estimator.calibration)


def build(cfg: AttributesConfig, models_dir: Optional[Path] = None,
          detector_kind: str = "yunet") -> TrackAttributes:
    """The stream path with the configured nets, chips and calibration for ``detector_kind``."""
    return TrackAttributes(build_nets(cfg, models_dir), cfg, detector_kind=detector_kind)


def match_landmarks(faces: Sequence[Detection], others: Sequence[Detection],
                    min_iou: float = 0.5) -> list[Optional[tuple[Point, ...]]]:
    """For each face, the landmarks of the other detector's best-overlapping face (IoU >=
    ``min_iou``, each used once, largest overlaps first), or None."""
    pairs = sorted(((iou(f.box, o.box), i, j) for i, f in enumerate(faces) for j, o in enumerate(others)
                    if o.landmarks is not None), reverse=True)
    out: list[Optional[tuple[Point, ...]]] = [None] * len(faces)
    used: set[int] = set()
    for v, i, j in pairs:
        if v < min_iou:
            break
        if out[i] is None and j not in used:
            out[i] = others[j].landmarks
            used.add(j)
    return out
