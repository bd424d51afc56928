"""Calibrated answers from the nets' raw probabilities: age map, honest age range, gender confidence.

The nets' raw outputs are not what they claim on faces they never saw (UTKFace dev, YuNet
chips): the 10th-90th percentile "80%" age range held the truth for 38% of faces, and gender
answers given with 80-90% confidence were right 66% of the time. Three small fitted maps fix
the claims without touching the nets; all are fitted on the dev set only
(``scripts/fit_calibration.py``) and shipped, with their provenance, in
``streamer/core/data/calibration.json`` (one entry per detector: chips differ with the
landmarks, so do the nets' errors; an entry ``"<kind>+<pair>"`` is fitted for single images
whose gender chip is also cut from ``pair``'s landmarks, and its presence is what turns that
pairing on: ``pair_of``).

- ``age map``: a monotone (isotonic, pool-adjacent-violators) map from the net's expected age
  to the mean true age of dev faces with that expected age. It corrects the net's pull towards
  the middle, but it also partly learns the dev set's own age mix (a population with other
  ages gets a slightly biased map). Switchable: ``attributes.age_calibration``.
- ``age range``: split conformal on quantile regression (CQR). The net's ``quantiles`` are read
  from its distribution, mapped like the age, and widened by ``margin`` in ``space``
  (``log``: log(1 + age), so a child's range widens by less than an old man's); ``margin`` is
  the finite-sample conformal quantile of the residual scores, so on faces like the dev faces
  the range holds the truth ``coverage`` of the time. Fitted twice, with and without the age
  map, so switching the map off keeps the range honest.
- ``gender``: temperature scaling: p(male) = sigmoid(logit / T), fitted by maximum likelihood
  (a bias term b is supported and was measured, see ``fit_gender``). The shown confidence is capped at ``MAX_CONFIDENCE`` (a net is never 100% sure).

Pure functions and frozen data; no I/O except ``load`` (reads the JSON once).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

DATA_FILE = Path(__file__).resolve().parent / "data" / "calibration.json"
MAX_CONFIDENCE = 0.99  # never claim certainty: a shown "100%" was wrong on dev faces
ECE_BINS = 10


# -- fitting primitives --------------------------------------------------------------------

def isotonic(x: Sequence[float], y: Sequence[float], loss: str = "l1") -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: knots (xs, ys) of the best non-decreasing fit of y on x.

    ``loss`` "l1" pools blocks by their median (least absolute error: the fit the age MAE is
    judged by; cross-validated on dev it gave MAE 6.95 against 7.08 for "l2", block means).
    Each pooled block becomes one knot at its mean x; ``np.interp`` between knots (flat beyond
    the ends) gives a continuous monotone map.
    """
    order = np.argsort(np.asarray(x, np.float64), kind="mergesort")
    xs, ys = np.asarray(x, np.float64)[order], np.asarray(y, np.float64)[order]
    centre = np.median if loss == "l1" else np.mean
    blocks: list[tuple[list[float], list[float], float]] = []  # (xs, ys, fitted value)
    for xi, yi in zip(xs, ys):
        blocks.append(([xi], [yi], yi))
        while len(blocks) > 1 and blocks[-2][2] >= blocks[-1][2]:
            bx, by, _ = blocks.pop()
            px, py, _ = blocks.pop()
            px, py = px + bx, py + by
            blocks.append((px, py, float(centre(py))))
    kx = np.array([float(np.mean(b[0])) for b in blocks])
    ky = np.array([b[2] for b in blocks])
    return kx, ky


def conformal_quantile(scores: Sequence[float], coverage: float) -> float:
    """The ceil((n + 1) coverage) / n empirical quantile: split conformal's finite-sample margin."""
    s = np.sort(np.asarray(scores, np.float64))
    n = len(s)
    k = min(n, int(math.ceil((n + 1) * coverage)))
    return float(s[max(k, 1) - 1])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def fit_gender(p_male: Sequence[float], is_male: Sequence[bool], bias: bool = False) -> tuple[float, float]:
    """(T, b) minimising the log-loss of sigmoid(logit(p) / T + b) by a grid search refined
    twice; with ``bias`` False (the shipped choice) b stays 0: temperature scaling.

    T fixes how sure the net sounds without changing any answer. A bias would move the
    male/female boundary; cross-validated on dev it changed no accuracy (0.8885 either way)
    and raised the ECE from 0.031 to 0.040, so it is not used.
    """
    z, y = _logit(np.asarray(p_male)), np.asarray(is_male, bool)

    def nll(t: float, b: float) -> float:
        q = np.clip(1 / (1 + np.exp(-(z / t + b))), 1e-12, 1 - 1e-12)
        return float(-np.mean(np.where(y, np.log(q), np.log(1 - q))))
    ts = np.exp(np.linspace(np.log(0.3), np.log(6), 60))
    bs = np.linspace(-1.5, 1.5, 61) if bias else np.zeros(1)
    for _ in range(3):
        _, t, b = min((nll(t, b), t, b) for t in ts for b in bs)
        dt = ts[1] / ts[0]
        ts = t * np.exp(np.linspace(-np.log(dt), np.log(dt), 21))
        if bias:
            db = bs[1] - bs[0]
            bs = np.linspace(b - db, b + db, 21)
    return round(float(t), 4), round(float(b), 4)


def ece(confidence: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over equal-width confidence bins on [0.5, 1] of
    (share of answers in the bin) x |accuracy - mean confidence| (binary answers)."""
    c, ok = np.asarray(confidence, np.float64), np.asarray(correct, np.float64)
    if len(c) == 0:
        return float("nan")
    edges = np.linspace(0.5, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, c, side="right") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(ok[m].mean() - c[m].mean())
    return float(total)


# -- the fitted maps -----------------------------------------------------------------------

@dataclass(frozen=True)
class RangeRule:
    """How the age range is built: the net's (lo, hi) quantiles, mapped, widened by ``margin``
    in ``space`` ("years" or "log" = log(1 + age))."""

    quantiles: tuple[float, float] = (0.1, 0.9)
    space: str = "years"
    margin: float = 0.0
    coverage: float = 0.8  # nominal coverage the margin was fitted for

    def widen(self, lo: float, hi: float) -> tuple[float, float]:
        if self.space == "log":
            lo2 = math.expm1(math.log1p(max(lo, 0.0)) - self.margin)
            hi2 = math.expm1(math.log1p(max(hi, 0.0)) + self.margin)
        else:
            lo2, hi2 = lo - self.margin, hi + self.margin
        return max(0.0, lo2), max(hi2, max(0.0, lo2))

    def scores(self, lo: np.ndarray, hi: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """Conformity scores: how far outside [lo, hi] the truth lies (negative inside)."""
        if self.space == "log":
            lo, hi, truth = np.log1p(np.maximum(lo, 0)), np.log1p(np.maximum(hi, 0)), np.log1p(truth)
        return np.maximum(lo - truth, truth - hi)


@dataclass(frozen=True)
class Calibration:
    """The fitted maps for one detector's chips. ``Calibration()`` is the identity (raw nets,
    raw 10th-90th percentile, no temperature), kept for tests and for ``--no-calibration``
    comparisons; ``load(kind)`` gives the shipped one."""

    age_knots: Optional[tuple[tuple[float, ...], tuple[float, ...]]] = None
    range_mapped: RangeRule = field(default_factory=RangeRule)  # with the age map on
    range_raw: RangeRule = field(default_factory=RangeRule)  # with the age map off
    temperature: float = 1.0
    use_age_map: bool = True
    gender_bias: float = 0.0
    name: str = "identity"

    @property
    def rule(self) -> RangeRule:
        return self.range_mapped if (self.use_age_map and self.age_knots) else self.range_raw

    @property
    def quantiles(self) -> tuple[float, float]:
        return self.rule.quantiles

    def age(self, expected: float) -> float:
        if not (self.use_age_map and self.age_knots):
            return float(expected)
        xs, ys = self.age_knots
        return float(np.interp(expected, xs, ys))

    def age_range(self, q_lo: float, q_hi: float) -> tuple[float, float]:
        """Range from the net's raw quantiles (``quantiles``): mapped, then widened."""
        return self.rule.widen(self.age(q_lo), self.age(q_hi))

    def p_male(self, p: float) -> float:
        if self.temperature == 1.0 and self.gender_bias == 0.0:
            return float(p)
        z = float(_logit(np.array([p]))[0]) / self.temperature + self.gender_bias
        return float(1 / (1 + math.exp(-z)))

    def with_age_map(self, on: bool) -> "Calibration":
        from dataclasses import replace
        return replace(self, use_age_map=on)

    def to_dict(self) -> dict:
        def rule(r: RangeRule) -> dict:
            return {"quantiles": list(r.quantiles), "space": r.space, "margin": r.margin,
                    "coverage": r.coverage}
        return {"age_map": None if not self.age_knots else
                {"expected": list(self.age_knots[0]), "age": list(self.age_knots[1])},
                "range": rule(self.range_mapped), "range_without_age_map": rule(self.range_raw),
                "gender_temperature": self.temperature, "gender_bias": self.gender_bias}

    @classmethod
    def from_dict(cls, d: dict, name: str = "") -> "Calibration":
        def rule(r: dict) -> RangeRule:
            return RangeRule(tuple(float(v) for v in r["quantiles"]), str(r["space"]),
                             float(r["margin"]), float(r.get("coverage", 0.8)))
        am = d.get("age_map")
        knots = None if not am else (tuple(float(v) for v in am["expected"]),
                                     tuple(float(v) for v in am["age"]))
        return cls(knots, rule(d["range"]), rule(d["range_without_age_map"]),
                   float(d.get("gender_temperature", 1.0)), True, float(d.get("gender_bias", 0.0)), name)


@lru_cache(maxsize=None)
def _file(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def available(path: Path = DATA_FILE) -> tuple[str, ...]:
    """Detector kinds the shipped file has a calibration for."""
    return tuple(_file(str(path)).get("detectors", {}))


def load(detector_kind: str, age_map: bool = True, path: Path = DATA_FILE) -> Calibration:
    """The shipped calibration for chips from ``detector_kind``'s landmarks (or boxes).

    A detector the file does not know gets the identity and says so in ``name``: its chips
    were never measured, so no fitted claim would be honest for it.
    """
    entry = _file(str(path)).get("detectors", {}).get(detector_kind)
    if entry is None:
        return Calibration(name=f"none (no calibration fitted for detector {detector_kind!r})")
    return Calibration.from_dict(entry["fit"], f"{detector_kind} ({entry.get('version', '?')})") \
        .with_age_map(age_map)


PAIR_SEP = "+"


def pair_key(detector_kind: str, pair_kind: Optional[str]) -> str:
    """The file's key for chips from ``detector_kind``'s landmarks, with gender chips also cut
    from ``pair_kind``'s (``"centerface+yunet"``), or ``detector_kind`` alone."""
    return f"{detector_kind}{PAIR_SEP}{pair_kind}" if pair_kind else detector_kind


def split_key(key: str) -> tuple[str, Optional[str]]:
    """``"centerface+yunet"`` -> ("centerface", "yunet"); ``"yunet"`` -> ("yunet", None)."""
    kind, _, pair = key.partition(PAIR_SEP)
    return kind, (pair or None)


def pair_of(detector_kind: str, path: Path = DATA_FILE) -> Optional[str]:
    """The detector whose landmarks the shipped file pairs with ``detector_kind``'s for the
    gender chips on single images (an entry ``"<kind>+<pair>"`` exists: it was measured and
    fitted), else None."""
    for key in _file(str(path)).get("detectors", {}):
        kind, pair = split_key(key)
        if kind == detector_kind and pair:
            return pair
    return None


def chip_options(detector_kind: str, path: Path = DATA_FILE) -> dict:
    """``align.ChipSpec`` keyword arguments measured for ``detector_kind`` (sampling per net,
    age zoom); the measured YuNet choice for a detector without an entry."""
    entry = _file(str(path)).get("detectors", {}).get(detector_kind) or {}
    opts = entry.get("chips") or {"age_sampling": "linear", "gender_sampling": "dlib", "age_zoom": 1.05}
    return {"age_sampling": str(opts["age_sampling"]), "gender_sampling": str(opts["gender_sampling"]),
            "age_zoom": float(opts["age_zoom"])}
