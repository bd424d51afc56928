"""streamer/core/attributes.py: the answer made from probabilities, the measured defaults per
net set and detector, one batched forward (with the flip) -- exact values derived from the
documented formulas, written to close the survivors of mutation testing (`make mutate`)."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.config import AttributesConfig
from streamer.core import align, attributes, calibration
from streamer.core.attributes import (CONFIDENCE_YEARS, DLIB_AGES, IDENTITY, LH_AGES,
                                      AttributeEstimator, summarize)


def one_hot(ages, year: float) -> np.ndarray:
    p = np.zeros(len(ages.values))
    p[int(np.argmin(np.abs(ages.values - year)))] = 1.0
    return p


def test_summarize_identity_is_the_nets_answer():
    p = one_hot(DLIB_AGES, 30)
    a = summarize(p, [0.25, 0.75], DLIB_AGES, 3)
    assert (a.gender, a.gender_confidence, a.samples) == ("male", 0.75, 3)
    assert a.age == 30.0 and a.age_low <= 30.0 <= a.age_high
    assert a.age_confidence == 1.0  # all mass within +-5 years
    # unnormalised gender scores are normalised first: (1, 3) is the same 0.75
    assert summarize(p, [1.0, 3.0], DLIB_AGES, 1).gender_confidence == 0.75


def test_summarize_gender_boundary_and_cap():
    p = one_hot(DLIB_AGES, 30)
    assert summarize(p, [0.5, 0.5], DLIB_AGES, 1).gender == "female"  # male only above 0.5
    assert summarize(p, [0.0, 1.0], DLIB_AGES, 1).gender_confidence == calibration.MAX_CONFIDENCE
    assert summarize(p, [0.0, 0.0], DLIB_AGES, 1).gender == "female"  # no division by zero


def test_summarize_rounds_and_measures_age_confidence():
    p = np.zeros(len(DLIB_AGES.values))
    i20, i40 = int(np.argmin(np.abs(DLIB_AGES.values - 20))), int(np.argmin(np.abs(DLIB_AGES.values - 40)))
    p[i20], p[i40] = 0.5, 0.5  # expected age 30; half the mass at 20, half at 40
    a = summarize(p, [0.123456, 0.876544], DLIB_AGES, 2)
    assert a.age == 30.0 and a.gender_confidence == 0.8765
    # confidence: the mass within CONFIDENCE_YEARS of the expected age (30 +- 5): none here
    want = DLIB_AGES.cdf(30 + CONFIDENCE_YEARS, p) - DLIB_AGES.cdf(30 - CONFIDENCE_YEARS, p)
    assert a.age_confidence == round(want, 4) and a.age_confidence < 0.1
    assert a.age_low == round(a.age_low, 1) and a.age_high == round(a.age_high, 1)
    assert a.age_low <= 20.5 and a.age_high >= 39.5


class RecordingNets:
    """Returns fixed probabilities and records what it was given."""

    ages = DLIB_AGES

    def __init__(self):
        self.calls = []

    def forward(self, age, gender):
        self.calls.append((age.copy(), gender if gender is age else gender.copy(), gender is age))
        n = len(age)
        pa = np.tile(one_hot(DLIB_AGES, 30), (n, 1))
        pg = np.tile([0.2, 0.8], (n, 1))
        pa[n // 2:] = one_hot(DLIB_AGES, 50) if self.flip_differs else pa[n // 2:]
        return pa, pg

    flip_differs = False


def chips(n: int, same: bool):
    img = np.random.default_rng(1).integers(0, 256, (120, 160, 3)).astype(np.uint8)
    out = []
    for i in range(n):
        sizes = (64, 64) if same else (64, 32)
        out.append(align.face_chips(img, (10 + 20 * i, 10, 70 + 20 * i, 70), None, sizes=sizes))
    return out


def test_probabilities_of_no_chips_are_empty_arrays_of_the_right_width():
    est = AttributeEstimator(RecordingNets(), AttributesConfig())
    pa, pg = est.probabilities([])
    assert pa.shape == (0, len(DLIB_AGES.values)) and pg.shape == (0, 2)
    assert pa.dtype == pg.dtype == np.float32 and est.forward_calls == 0


@pytest.mark.parametrize("same", [True, False])
def test_probabilities_flip_average_sends_mirrors_and_averages(same):
    nets = RecordingNets()
    nets.flip_differs = True
    est = AttributeEstimator(nets, AttributesConfig(flip_average=True))
    cs = chips(2, same)
    pa, pg = est.probabilities(cs)
    (age, gender, shared), = nets.calls
    assert len(age) == 4 and shared == same  # one chip per net when both nets take one
    np.testing.assert_array_equal(age[2], cs[0].age[:, ::-1])  # the mirror of the first face
    if not same:
        assert gender.shape == (4, 32, 32, 3)
        np.testing.assert_array_equal(gender[3], cs[1].gender[:, ::-1])
    # each face: the mean of its view and its mirror
    np.testing.assert_allclose(pa[0], (one_hot(DLIB_AGES, 30) + one_hot(DLIB_AGES, 50)) / 2)
    assert est.forward_calls == 1 and est.faces_classified == 2
    np.testing.assert_allclose(est.last_probabilities[0], pa)


def test_probabilities_without_flip_send_each_chip_once():
    nets = RecordingNets()
    est = AttributeEstimator(nets, AttributesConfig(flip_average=False))
    est.probabilities(chips(3, False))
    (age, gender, shared), = nets.calls
    assert len(age) == 3 and len(gender) == 3 and not shared


@pytest.mark.parametrize("kind", ["yunet", "centerface"])
def test_defaults_for_the_dlib_nets_are_the_measured_ones(kind):
    nets = RecordingNets()
    spec, cal = attributes.defaults_for(nets, AttributesConfig(), kind)
    opts = calibration.chip_options(kind)
    assert spec.template is align.TEMPLATES[kind]
    assert (spec.age_sampling, spec.gender_sampling, spec.age_zoom) == (
        opts["age_sampling"], opts["gender_sampling"], opts["age_zoom"])
    assert cal == calibration.load(kind, AttributesConfig().age_calibration)


def test_defaults_for_an_unknown_detector_fall_back_to_yunets_template():
    spec, _ = attributes.defaults_for(RecordingNets(), AttributesConfig(), "no-such-detector")
    assert spec.template is align.TEMPLATE


def test_defaults_for_other_nets_are_dlib_exact_and_identity():
    class LH(RecordingNets):
        ages = LH_AGES

    spec, cal = attributes.defaults_for(LH(), AttributesConfig(), "yunet")
    assert cal is IDENTITY
    assert (spec.age_sampling, spec.gender_sampling, spec.age_zoom) == ("dlib", "dlib", 1.0)


# ---- the per-track answer: a quality-weighted mean of the views ---------------------------

import cv2  # noqa: E402

from streamer.core.attributes import TrackAttributes  # noqa: E402
from streamer.types import Track  # noqa: E402


class AgeNets:
    """Answers a sharp age distribution at ``self.age`` and ``p_male`` for every chip."""

    ages = DLIB_AGES
    chip_sizes = (64, 32)
    chip_padding = 0.2

    def __init__(self):
        self.age, self.p_male = 30, 0.9

    def forward(self, age_chips, gender_chips):
        n = len(age_chips)
        pa = np.tile(one_hot(DLIB_AGES, self.age), (n, 1)).astype(np.float32)
        pg = np.tile([1 - self.p_male, self.p_male], (n, 1)).astype(np.float32)
        return pa, pg


def sharp_frame() -> np.ndarray:
    img = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return cv2.GaussianBlur(img, (0, 0), 0.8)


def face_track(box, frame: int) -> Track:
    M = cv2.invertAffineTransform(align.box_transform(box, 64))
    pts = align.TEMPLATE * 63 @ M[:, :2].T + M[:, 2]
    return Track(1, tuple(float(v) for v in box), 0.9, True, 5, 0, 0, frame,
                 tuple((float(x), float(y)) for x, y in pts))


def test_equal_views_average_their_distributions():
    nets = AgeNets()
    ta = TrackAttributes(nets, AttributesConfig(reclassify_every=1), calibration=IDENTITY)
    img, box = sharp_frame(), (100.0, 100.0, 200.0, 200.0)
    answers = []
    for f, (age, p) in enumerate([(20, 0.9), (40, 0.6), (50, 0.3)]):
        nets.age, nets.p_male = age, p
        answers.append(ta.estimate(img, [face_track(box, f)], f)[1])
    assert [a.samples for a in answers] == [1, 2, 3]
    assert answers[0].age == 20.0 and answers[1].age == 30.0
    assert answers[2].age == pytest.approx((20 + 40 + 50) / 3, abs=0.05)
    assert answers[1].gender_confidence == pytest.approx(0.75, abs=1e-3)
    assert answers[2].gender == "male" and answers[2].gender_confidence == pytest.approx(0.6, abs=1e-3)


def test_every_track_of_a_frame_is_considered_whatever_comes_before_it():
    """An unconfirmed, a missed and a just-classified track earlier in the list never stop
    the ones after them from being classified in the same frame."""
    nets = AgeNets()
    ta = TrackAttributes(nets, AttributesConfig(reclassify_every=1, max_per_frame=8),
                         calibration=IDENTITY)
    img = sharp_frame()
    a, b, c = (20.0, 20.0, 120.0, 120.0), (200.0, 20.0, 300.0, 120.0), (400.0, 20.0, 500.0, 120.0)
    tentative = Track(1, a, 0.9, False, 1, 0, 0, 0, face_track(a, 0).landmarks)
    missed = Track(2, b, 0.9, True, 5, 1, 0, 0, None)
    good1 = Track(3, c, 0.9, True, 5, 0, 0, 0, face_track(c, 0).landmarks)
    good2 = Track(4, (20.0, 250.0, 120.0, 350.0), 0.9, True, 5, 0, 0, 0,
                  face_track((20.0, 250.0, 120.0, 350.0), 0).landmarks)
    out = ta.estimate(img, [tentative, missed, good1, good2], 0)
    assert out[1].gender is None and out[1].reason == "track not confirmed yet"
    assert out[2].gender is None and out[2].reason == "face not detected in this frame"
    assert out[3].gender == "male" and out[4].gender == "male"  # both after them: classified


def test_the_oldest_due_tracks_get_the_slots():
    nets = AgeNets()
    ta = TrackAttributes(nets, AttributesConfig(reclassify_every=1, max_per_frame=1),
                         calibration=IDENTITY)
    img = sharp_frame()
    boxes = {5: (20.0, 20.0, 120.0, 120.0), 3: (200.0, 20.0, 300.0, 120.0)}
    tracks = [Track(tid, bx, 0.9, True, 5, 0, 0, 0, face_track(bx, 0).landmarks) for tid, bx in boxes.items()]
    out = ta.estimate(img, tracks, 0)  # both due since frame 0: the lower id first
    assert out[3].gender == "male" and out[5].gender is None
    assert out[5].reason == "waiting for a classification slot"
    out = ta.estimate(img, tracks, 1)  # 5 has waited longest now
    assert out[5].gender == "male"
