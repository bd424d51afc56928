"""Section ``calibration``: age and gender answers and how honest their uncertainty is.

Everything goes through ``streamer.core.analyze.Analyzer`` (the batch/web path) on the UTKFace
dev crops, each centred on a 3x grey canvas (``bench.accuracy.canvas_of``; the face kept is
the largest detection centred inside the crop, as ``eval_attributes`` keeps it).

Cross-validated, because the calibration is fitted on these very faces: the faces are split
into ``FOLDS`` folds (fixed seed); for each fold the calibration is fitted on the other folds'
raw net outputs (``fit``) and the held-out fold is analysed again through an Analyzer that
uses it. Those held-out answers are the figures reported and tested; the shipped file is then
fitted on all dev faces (``scripts/fit_calibration.py``), so its own figures on dev would be
optimistic and are not reported as accuracy.

Single images pair the detector's landmarks with a second detector's for the gender chip when
the shipped file has that pair (``attributes.pair_for``; ``pair=None`` measures the detector
alone, the chips a stream's views get); the pair is fitted and scored as its own entry.

Reported per variant: faces found, gender accuracy, gender ECE (10 bins), age MAE, age-range
coverage and median width. ``raw`` = the nets as they are (10th-90th percentile range, no
temperature); ``no age map`` = ``attributes.age_calibration: false`` (range and temperature
still calibrated); ``calibrated`` = the default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from bench import registry
from bench.report import table

FOLDS = 5
SEED = 0
COVERAGE = 0.8
# Range rules tried inside each fit: the net's own quantiles to start from, and the space the
# conformal margin is added in. The narrowest (median width on the training faces) wins.
RANGE_CANDIDATES = tuple((q, sp) for q in ((0.1, 0.9), (0.2, 0.8), (0.3, 0.7), (0.5, 0.5))
                         for sp in ("years", "log"))


@dataclass
class Raw:
    """Per dev image: the label and, when a face was found and judged, the raw probabilities."""

    path: str
    age: float
    male: bool
    pa: Optional[np.ndarray]  # (81,) flip-averaged age probabilities, before calibration
    pg: Optional[np.ndarray]  # (2,) [female, male]


def dev_rows(folder: Path, limit: int = 0) -> list[dict]:
    import csv
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if limit:
        rows = rows[::max(1, len(rows) // limit)][:limit]
    return rows


def _canvas(img):
    from bench.accuracy import canvas_of
    return canvas_of(img, 3.0)


def _pick(faces, crop_box):
    """The face the label is about: the largest detection centred inside the crop."""
    cx1, cy1, cx2, cy2 = crop_box
    cands = [i for i, f in enumerate(faces)
             if cx1 <= (f.box[0] + f.box[2]) / 2 <= cx2 and cy1 <= (f.box[1] + f.box[3]) / 2 <= cy2]
    return max(cands, key=lambda i: (faces[i].box[2] - faces[i].box[0]) * (faces[i].box[3] - faces[i].box[1]),
               default=None)


def image_kind(cfg) -> str:
    """The detector single images (batch, web) use: ``detector.image_kind`` where it exists."""
    return getattr(cfg.detector, "image_kind", None) or cfg.detector.kind


def for_kind(cfg, kind: str):
    """``cfg`` with both the stream and the single-image detector set to ``kind``."""
    d = {"kind": kind}
    if hasattr(cfg.detector, "image_kind"):
        d["image_kind"] = kind
    return dataclasses.replace(cfg, detector=dataclasses.replace(cfg.detector, **d))


AUTO = "auto"


def pair_kind(cfg, nets, pair=AUTO):
    """The pair detector kind an Analyzer uses for ``cfg``'s single-image detector: ``AUTO`` =
    the shipped choice (``attributes.pair_for``), None = none, else that kind."""
    from streamer.core import attributes
    return attributes.pair_for(nets, image_kind(cfg)) if pair == AUTO else pair


def pair_detector_for(cfg, pair):
    """The second detector (same single-image threshold) for ``pair``, or None."""
    from streamer.runtime import wiring
    return wiring.build_detector(for_kind(cfg, pair)) if pair else None


def analyzer(cfg, detector=None, nets=None, calibration=None, chips=None, pair=AUTO, pair_detector=None):
    """An Analyzer as batch/web build it, with an injected calibration (None = the shipped)
    and pair detector (``pair``: see ``pair_kind``)."""
    from streamer.core import attributes
    from streamer.core.analyze import Analyzer
    from streamer.runtime import wiring
    cfg = for_kind(cfg, image_kind(cfg))
    nets = nets or wiring.build_attribute_nets(cfg)
    pair = pair_kind(cfg, nets, pair)
    est = attributes.AttributeEstimator(nets, cfg.attributes, detector_kind=cfg.detector.kind,
                                        calibration=calibration, chips=chips, pair_kind=pair)
    return Analyzer(cfg, detector=detector or wiring.build_detector(cfg), estimator=est,
                    pair_detector=pair_detector or pair_detector_for(cfg, est.pair_kind))


def analyze_rows(an, folder: Path, rows: Sequence[dict]) -> list:
    """(Attributes or None, (pa, pg) or None) per row through ``an``."""
    import cv2
    out = []
    for r in rows:
        img = cv2.imread(str(folder / r["path"]))
        if img is None:
            raise RuntimeError(f"cannot read {folder / r['path']}")
        canvas, crop = _canvas(img)
        res = an.analyze(canvas)
        i = _pick(res.faces, crop)
        a = None if i is None else res.faces[i].attributes
        if a is None or not a.known:
            out.append((None, None))
            continue
        # Faces without a reason were classified in order: find this one's row.
        k = sum(1 for f in res.faces[:i] if f.attributes.known)
        pa, pg = an.estimator.last_probabilities
        out.append((a, (pa[k].astype(np.float64), pg[k].astype(np.float64))))
    return out


def collect(cfg, folder: Path, rows: Sequence[dict], detector=None, nets=None, chips=None,
            pair=AUTO, pair_detector=None) -> list[Raw]:
    """Raw (uncalibrated) net outputs for every dev row, through the Analyzer (``chips``: a
    ``ChipSpec`` to try instead of the shipped one; ``pair``: see ``pair_kind``)."""
    from streamer.core.attributes import IDENTITY
    an = analyzer(cfg, detector, nets, calibration=IDENTITY, chips=chips, pair=pair, pair_detector=pair_detector)
    res = analyze_rows(an, folder, rows)
    return [Raw(r["path"], float(r["age"]), r["gender"] == "male",
                None if p is None else p[0], None if p is None else p[1]) for r, (_, p) in zip(rows, res)]


def fold_ids(n: int, k: int = FOLDS, seed: int = SEED) -> np.ndarray:
    perm = np.random.default_rng(seed).permutation(n)
    f = np.empty(n, int)
    f[perm] = np.arange(n) % k
    return f


# -- fitting --------------------------------------------------------------------------------

def _quantile(pa: np.ndarray, q: float) -> float:
    from streamer.core.attribute_nets import DLIB_AGES
    return DLIB_AGES.quantile(q, pa)


def fit(raws: Sequence[Raw], coverage: float = COVERAGE, seed: int = SEED) -> tuple:
    """A ``Calibration`` fitted on ``raws`` (found faces only), and what was chosen and why.

    Age map: isotonic (median-pooled) regression of the true age on the expected age. Range: for each
    candidate rule the conformal margin is the finite-sample quantile of the scores of the
    training faces, with the age map applied out-of-fold (an inner 5-fold cross-fit: the map
    fitted on a face's own label would make the scores, so the margin, optimistic); the rule
    with the narrowest median width wins. Temperature: maximum likelihood on the gender net.
    """
    from streamer.core import calibration as C
    from streamer.core.attribute_nets import DLIB_AGES
    rs = [r for r in raws if r.pa is not None]
    if len(rs) < 20:
        raise ValueError(f"need at least 20 judged faces to fit a calibration, got {len(rs)}")
    pa = np.stack([r.pa for r in rs])
    y = np.array([r.age for r in rs])
    male = np.array([r.male for r in rs])
    expected = pa @ DLIB_AGES.values
    knots = C.isotonic(expected, y)
    inner = fold_ids(len(rs), 5, seed + 1)
    inner_maps = [C.isotonic(expected[inner != j], y[inner != j]) for j in range(5)]

    def oof(v: np.ndarray) -> np.ndarray:  # the age map applied out-of-fold
        out = np.empty_like(v)
        for j, (xs, ys) in enumerate(inner_maps):
            out[inner == j] = np.interp(v[inner == j], xs, ys)
        return out

    chosen, report = {}, []
    for mapped in (True, False):
        best = None
        for q, space in RANGE_CANDIDATES:
            lo = np.array([_quantile(p, q[0]) for p in pa])
            hi = np.array([_quantile(p, q[1]) for p in pa])
            if mapped:
                lo, hi = oof(lo), oof(hi)
            rule = C.RangeRule(q, space, 0.0, coverage)
            margin = C.conformal_quantile(rule.scores(lo, hi, y), coverage)
            rule = dataclasses.replace(rule, margin=round(margin, 5))
            widths = [np.subtract(*rule.widen(a, b)[::-1]) for a, b in zip(lo, hi)]
            w = float(np.median(widths))
            report.append({"age_map": mapped, "quantiles": list(q), "space": space,
                           "margin": rule.margin, "median_width_train": round(w, 2)})
            if best is None or w < best[0]:
                best = (w, rule)
        chosen[mapped] = best[1]
    pg = np.stack([r.pg for r in rs])
    t, b = C.fit_gender(pg[:, 1] / pg.sum(1), male)
    cal = C.Calibration((tuple(np.round(knots[0], 4)), tuple(np.round(knots[1], 4))),
                        chosen[True], chosen[False], t, True, b, "fitted")
    return cal, {"faces": len(rs), "range_candidates": report}


# -- scoring --------------------------------------------------------------------------------

def score(answers: Sequence, raws: Sequence[Raw]) -> dict:
    """Figures for ``answers`` (Attributes or None per row) against the labels in ``raws``."""
    from streamer.core.calibration import ece
    got = [(a, r) for a, r in zip(answers, raws) if a is not None]
    n = len(raws)
    if not got:
        return {"images": n, "found": 0}
    ok = [a.gender == ("male" if r.male else "female") for a, r in got]
    inside = [a.age_low <= r.age <= a.age_high for a, r in got]
    widths = [a.age_high - a.age_low for a, r in got]
    return {"images": n, "found": round(len(got) / n, 4), "n": len(got),
            "gender_acc": round(float(np.mean(ok)), 4),
            "gender_ece": round(ece([a.gender_confidence for a, _ in got], ok), 4),
            "age_mae": round(float(np.mean([abs(a.age - r.age) for a, r in got])), 3),
            "range_coverage": round(float(np.mean(inside)), 4),
            "range_median_width": round(float(np.median(widths)), 2),
            "max_gender_confidence": max(a.gender_confidence for a, _ in got)}


def reliability(answers: Sequence, raws: Sequence[Raw], bins=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0)) -> list:
    """Gender: shown confidence band -> how often right (the "90% is right 9 in 10" check)."""
    rows = []
    pairs = [(a.gender_confidence, a.gender == ("male" if r.male else "female"))
             for a, r in zip(answers, raws) if a is not None]
    for lo, hi in zip(bins[:-1], bins[1:]):
        sel = [ok for c, ok in pairs if lo <= c < hi or (hi == 1.0 and c == 1.0)]
        rows.append({"band": f"{lo:.0%}-{hi:.0%}", "n": len(sel),
                     "right": round(float(np.mean(sel)), 3) if sel else None})
    return rows


def cross_validate(cfg, folder: Path, limit: int = 0, k: int = FOLDS, detector=None, nets=None,
                   chips=None, pair=AUTO) -> dict:
    """Held-out figures: raw, no age map and calibrated (the last through a fresh Analyzer
    per fold; the first two re-summarise the same flip-averaged probabilities, which the
    chips make deterministic)."""
    from streamer.core.attribute_nets import DLIB_AGES
    from streamer.core.attributes import IDENTITY, summarize
    from streamer.runtime import wiring
    cfg = for_kind(cfg, image_kind(cfg))
    rows = dev_rows(folder, limit)
    detector = detector or wiring.build_detector(cfg)
    nets = nets or wiring.build_attribute_nets(cfg)
    pair = pair_kind(cfg, nets, pair)
    pair_det = pair_detector_for(cfg, pair)
    raws = collect(cfg, folder, rows, detector, nets, chips, pair, pair_det)
    folds = fold_ids(len(rows), k)
    held = {"raw": [None] * len(rows), "no_age_map": [None] * len(rows), "calibrated": [None] * len(rows)}
    fits = []
    for j in range(k):
        train = [r for r, f in zip(raws, folds) if f != j]
        cal, info = fit(train)
        fits.append({"fold": j, "temperature": cal.temperature, "bias": cal.gender_bias, "range": cal.range_mapped.__dict__,
                     "range_without_age_map": cal.range_raw.__dict__})
        idx = [i for i in range(len(rows)) if folds[i] == j]
        an = analyzer(cfg, detector, nets, calibration=cal, chips=chips, pair=pair, pair_detector=pair_det)
        for i, (a, _) in zip(idx, analyze_rows(an, folder, [rows[i] for i in idx])):
            held["calibrated"][i] = a
        for i in idx:
            r = raws[i]
            if r.pa is not None:
                held["raw"][i] = summarize(r.pa, r.pg, DLIB_AGES, 1, IDENTITY)
                held["no_age_map"][i] = summarize(r.pa, r.pg, DLIB_AGES, 1, cal.with_age_map(False))
    out = {"images": len(rows), "folds": k, "seed": SEED, "detector": cfg.detector.kind, "pair": pair,
           "variants": {name: score(ans, raws) for name, ans in held.items()},
           "gender_reliability": {name: reliability(held[name], raws) for name in ("raw", "calibrated")},
           "fold_fits": fits, "canvas": "crop centred on a 3x grey (128) canvas",
           "age_map_note": "the age map partly learns the dev set's age mix (UTKFace crop_part1)"}
    return out


GOALS = {"found": (">=", 0.99), "gender_acc": (">=", 0.89), "age_mae": ("<=", 7.0),
         "gender_ece": ("<=", 0.04), "range_median_width": ("<=", 24.0)}


GOAL_LABELS = {f"calibrated {k}": (f"single images, held out: {label}", op) for k, label, op in (
    ("found", "faces found", ">="), ("gender_acc", "gender accuracy", ">="), ("age_mae", "age MAE (years)", "<="),
    ("gender_ece", "gender ECE", "<="), ("range_median_width", "80% age range median width (years)", "<="),
    ("range_coverage", "80% age range coverage", "within"))}


def goals(v: dict) -> dict:
    g = {}
    for key, (op, lim) in GOALS.items():
        val = v.get(key)
        met = val is not None and (val >= lim if op == ">=" else val <= lim)
        g[f"calibrated {key}"] = {"value": val, "goal": lim, "met": met}
    c = v.get("range_coverage")
    g["calibrated range_coverage"] = {"value": c, "goal": "0.75-0.88",
                                      "met": c is not None and 0.75 <= c <= 0.88}
    return g


def render(d: dict) -> list:
    pair = f" (gender chip also from {d['pair']}'s landmarks, logit-mean)" if d.get("pair") else ""
    out = [f"Held-out ({d.get('folds')}-fold cross-validated, seed {d.get('seed')}) figures on "
           f"{d.get('images')} utkface_dev images, detector {d.get('detector')}{pair}, "
           f"{d.get('canvas')}; through `streamer.core.analyze.Analyzer`. The 80% range should "
           "hold 75-88% of the time; ECE: 10 confidence bins.", ""]
    rows = [[name, v.get("found"), v.get("gender_acc"), v.get("gender_ece"), v.get("max_gender_confidence"),
             v.get("age_mae"), v.get("range_coverage"), v.get("range_median_width")]
            for name, v in d.get("variants", {}).items()]
    out += [table(["variant", "found", "gender acc.", "gender ECE", "max shown conf.", "age MAE",
                   "80% range coverage", "median width (y)"], rows), ""]
    rel = d.get("gender_reliability", {})
    if rel:
        bands = [b["band"] for b in next(iter(rel.values()))]
        rows = [[b] + [f"{x['right']} (n={x['n']})" for name in rel for x in rel[name] if x["band"] == b]
                for b in bands]
        out += [table(["shown gender confidence"] + [f"right, {n}" for n in rel], rows), ""]
    out += [f"Note: {d.get('age_map_note')}.", ""]
    return out


@registry.section("calibration", "Accuracy and honest uncertainty", render, order=81, goal_labels=GOAL_LABELS)
def calibration_section(ctx: registry.Context) -> dict:
    from bench.common import data_root, has_attributes
    from streamer import config
    root = data_root()
    if root is None:
        return {"status": "skipped", "reason": "no shared data (set STREAMER_DATA)"}
    if not has_attributes():
        return {"status": "missing", "hook": "streamer/core/attributes.py"}
    cfg = config.load(None, {})
    folder, limit = root / "agegender" / "utkface_dev", 40 if ctx.quick else 0
    d = cross_validate(cfg, folder, limit)
    if d.get("pair"):  # what the pair buys: the same faces with the detector's chips alone
        alone = cross_validate(cfg, folder, limit, pair=None)
        d["variants"][f"calibrated, {d['detector']} alone"] = alone["variants"]["calibrated"]
    d["goals"] = goals(d["variants"]["calibrated"])
    return d
