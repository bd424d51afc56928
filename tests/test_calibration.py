"""The calibration primitives (isotonic map, conformal margin, temperature, ECE) on synthetic
data with known answers, the shipped file's shape and provenance, and the 99% cap."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamer.core import calibration as C
from streamer.core.attribute_nets import DLIB_AGES
from streamer.core.attributes import IDENTITY, summarize


def test_isotonic_is_monotone_and_fits_a_monotone_signal():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 80, 400)
    y = 1.3 * x + 5 + rng.normal(0, 3, 400)
    for loss in ("l1", "l2"):
        xs, ys = C.isotonic(x, y, loss)
        assert np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) >= 0)
        pred = np.interp(x, xs, ys)
        assert np.mean(np.abs(pred - (1.3 * x + 5))) < 2.0


def test_isotonic_pools_violators():
    xs, ys = C.isotonic([1, 2, 3], [3, 1, 2], "l2")
    np.testing.assert_allclose(ys, [2.0])  # one block: the mean of all three
    assert np.allclose(xs, [2.0])


def test_conformal_quantile_is_the_finite_sample_rank():
    s = np.arange(1, 11, dtype=float)  # n = 10
    assert C.conformal_quantile(s, 0.8) == 9.0  # ceil(11 * 0.8) = 9th smallest
    assert C.conformal_quantile(s, 0.95) == 10.0


def test_conformal_range_covers_on_fresh_data():
    rng = np.random.default_rng(1)

    def draw(n):
        centre = rng.uniform(10, 70, n)
        return centre, centre + rng.normal(0, 6, n)
    c, y = draw(2000)
    rule = C.RangeRule((0.5, 0.5), "years", 0.0, 0.8)
    margin = C.conformal_quantile(rule.scores(c, c, y), 0.8)
    rule = C.RangeRule((0.5, 0.5), "years", margin, 0.8)
    c2, y2 = draw(4000)
    inside = [rule.widen(a, a)[0] <= t <= rule.widen(a, a)[1] for a, t in zip(c2, y2)]
    assert 0.78 <= np.mean(inside) <= 0.82
    assert margin == pytest.approx(6 * 1.2816, rel=0.1)  # the normal's 80% half-width


def test_log_space_range_widens_old_faces_more():
    rule = C.RangeRule((0.1, 0.9), "log", 0.2, 0.8)
    lo_k, hi_k = rule.widen(5, 6)
    lo_o, hi_o = rule.widen(60, 70)
    assert (hi_o - lo_o) - 10 > (hi_k - lo_k) - 1 > 0


def test_temperature_recovers_an_overconfident_net():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, 5000)  # true logits
    y = rng.uniform(size=5000) < 1 / (1 + np.exp(-z))
    p_over = 1 / (1 + np.exp(-2.5 * z))  # a net 2.5x too sure
    t, b = C.fit_gender(p_over, y)
    assert t == pytest.approx(2.5, rel=0.1) and b == 0.0
    conf = lambda p: np.maximum(p, 1 - p)  # noqa: E731
    fixed = np.array([C.Calibration(temperature=t).p_male(p) for p in p_over])
    assert C.ece(conf(fixed), (fixed > 0.5) == y) < C.ece(conf(p_over), (p_over > 0.5) == y) / 2


def test_ece_of_a_perfect_and_a_lying_forecaster():
    assert C.ece([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert C.ece([0.99] * 10, [True] * 5 + [False] * 5) == pytest.approx(0.49)


def test_never_one_hundred_percent():
    pa = np.zeros(81)
    pa[30] = 1.0
    for cal in (IDENTITY, C.load("yunet")):
        a = summarize(pa, np.array([0.0, 1.0]), DLIB_AGES, 1, cal)
        assert a.gender == "male" and a.gender_confidence <= C.MAX_CONFIDENCE


def test_shipped_file_has_provenance_and_sane_numbers():
    doc = json.loads(C.DATA_FILE.read_text())
    e = doc["detectors"]["yunet"]
    prov = e["provenance"]
    for key in ("data", "command", "date", "opencv", "fitted_on"):
        assert prov[key]
    assert "utkface_dev" in prov["data"] and "fit_calibration.py" in prov["command"]
    fit = e["fit"]
    xs, ys = fit["age_map"]["expected"], fit["age_map"]["age"]
    assert np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) >= 0)
    assert 1.0 < fit["gender_temperature"] < 4.0  # the raw net is over-confident
    assert fit["range"]["coverage"] == 0.8 and 0 < fit["range"]["margin"]
    assert e["held_out"]["calibrated"]["range_coverage"] >= 0.75


def test_unknown_detector_gets_the_identity_and_says_so():
    cal = C.load("no-such-detector")
    assert cal.temperature == 1.0 and cal.age_knots is None and "no calibration" in cal.name


def test_calibrated_range_is_wider_and_contains_the_age():
    pa = np.zeros(81)
    pa[[38, 40, 42]] = (0.25, 0.5, 0.25)
    raw = summarize(pa, np.array([0.3, 0.7]), DLIB_AGES, 1, IDENTITY)
    cal = summarize(pa, np.array([0.3, 0.7]), DLIB_AGES, 1, C.load("yunet"))
    assert cal.age_high - cal.age_low > raw.age_high - raw.age_low + 8
    assert cal.age_low <= cal.age <= cal.age_high
    assert cal.gender_confidence < raw.gender_confidence  # temperature > 1 softens


def test_pair_keys_round_trip():
    assert C.pair_key("centerface", "yunet") == "centerface+yunet"
    assert C.pair_key("yunet", None) == "yunet"
    assert C.split_key("centerface+yunet") == ("centerface", "yunet")
    assert C.split_key("yunet") == ("yunet", None)


def test_shipped_pairs_are_fitted_as_pairs_with_provenance():
    doc = json.loads(C.DATA_FILE.read_text())
    # Single images with either landmark detector get the other's gender chip too (measured).
    assert C.pair_of("centerface") == "yunet" and C.pair_of("yunet") == "centerface"
    assert C.pair_of("ssd_tf") is None
    for key in ("centerface+yunet", "yunet+centerface"):
        e = doc["detectors"][key]
        assert e["pair"]["kind"] == C.split_key(key)[1]
        assert f"--detector {key}" in e["provenance"]["command"]
        assert e["held_out"]["calibrated"]["gender_acc"] >= 0.89
        cal = C.load(key)
        assert cal.name.startswith(key) and 1.0 < cal.temperature < 4.0
    # The stream path (no pair) keeps the single-detector fit.
    assert C.load("yunet").name.startswith("yunet (")
