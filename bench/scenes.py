"""Clips built from real faces on known paths (ground truth by construction), shared by the
tracking and counting tests and the cadence bench.

- ``crossing_scene``: 4 UTKFace crops on a PETS09 frame (960x720, 70 frames), two crossing
  head-on with one hiding the other, a third passing over them (tests/test_track_real.py).
- ``build_counting_clip``: 6 people crossing a door line and a short upper line on a 1280x720
  PETS09 frame, written as mp4, with the expected counts (tests/test_counting_real.py).

No module-level imports beyond the standard library (the bench lists sections cheaply).
"""

from __future__ import annotations

import csv
from pathlib import Path

# ---- crossing scene (tracking) -------------------------------------------------------------

CROSS_FRAMES = 70
CROSS_SIZE = (960, 720)
# name: (start centre, end centre, face size px), over CROSS_FRAMES frames. Drawn in this order:
# "a" and "b" cross head-on and "a" hides "b" (under 40% visible for frames ~28-36, so "b" must
# coast on its prediction), while "c", coming down, passes over "a" at the same moment.
CROSS_PATHS = {
    "b": ((800, 300), (140, 330), 100),
    "a": ((140, 280), (820, 300), 110),
    "c": ((560, 60), (440, 640), 90),
    "d": ((120, 560), (260, 600), 120),
}


def cross_gt_box(name: str, f: int) -> tuple[int, int, int, int]:
    (x0, y0), (x1, y1), s = CROSS_PATHS[name]
    a = f / (CROSS_FRAMES - 1)
    cx, cy = x0 + a * (x1 - x0), y0 + a * (y1 - y0)
    return (round(cx - s / 2), round(cy - s / 2), round(cx - s / 2) + s, round(cy - s / 2) + s)


def iou(a, b) -> float:
    from streamer.core.geometry import iou as box_iou  # lazy: see the module docstring
    return box_iou(a, b)


def paste_feathered(canvas, face, box) -> None:
    import cv2
    import numpy as np
    x1, y1, x2, y2 = box
    s = x2 - x1
    chip = cv2.resize(face, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32)
    # Feathered ellipse: a hard square edge is not what a camera shows around a head.
    mask = np.zeros((s, s), np.float32)
    cv2.ellipse(mask, (s // 2, s // 2), (int(s * 0.46), int(s * 0.5)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), s * 0.04)[..., None]
    h, w = canvas.shape[:2]
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if cx1 >= cx2 or cy1 >= cy2:
        return
    sub = (slice(cy1 - y1, cy2 - y1), slice(cx1 - x1, cx2 - x1))
    roi = canvas[cy1:cy2, cx1:cx2].astype(np.float32)
    canvas[cy1:cy2, cx1:cx2] = (roi * (1 - mask[sub]) + chip[sub] * mask[sub]).astype(np.uint8)


def crossing_scene(detector, pets_clip: Path, utk_dir: Path):
    """(frames, ground-truth boxes per frame, visible fraction per frame). Faces: the first
    adult crops in labels.csv order that ``detector`` finds confidently when pasted alone
    (this measures tracking, so detector misses are screened out here)."""
    import cv2
    import numpy as np
    cap = cv2.VideoCapture(str(pets_clip))
    ok, bg = cap.read()
    cap.release()
    if not ok:
        raise RuntimeError(f"cannot read the background frame of {pets_clip}")
    bg = cv2.resize(bg, CROSS_SIZE, interpolation=cv2.INTER_CUBIC)
    with open(utk_dir / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if 20 <= int(r["age"]) <= 60]
    faces = []
    for r in rows:
        face = cv2.imread(str(utk_dir / r["path"]))
        probe = bg.copy()
        paste_feathered(probe, face, (400, 300, 510, 410))
        if any(d.score >= 0.8 and iou(d.box, (400, 300, 510, 410)) > 0.4 for d in detector.detect(probe)):
            faces.append(face)
        if len(faces) == len(CROSS_PATHS):
            break
    if len(faces) < len(CROSS_PATHS):
        raise RuntimeError("not enough UTKFace crops that the detector finds")
    frames, gts, visible = [], [], []
    for f in range(CROSS_FRAMES):
        img = bg.copy()
        boxes = {n: cross_gt_box(n, f) for n in CROSS_PATHS}
        for n, face in zip(CROSS_PATHS, faces):
            paste_feathered(img, face, boxes[n])
        frames.append(img)
        gts.append(boxes)
        vis = {}
        for i, n in enumerate(CROSS_PATHS):  # the fraction of each face not covered by later ones
            b = boxes[n]
            cover = np.zeros((b[3] - b[1], b[2] - b[0]), bool)
            for m in list(CROSS_PATHS)[i + 1:]:
                o = boxes[m]
                cover[max(o[1] - b[1], 0):max(o[3] - b[1], 0), max(o[0] - b[0], 0):max(o[2] - b[0], 0)] = True
            vis[n] = 1 - cover.mean()
        visible.append(vis)
    return frames, gts, visible


def path_ids(tracks_per_frame, gts) -> dict[str, list[int]]:
    """Per ground-truth path, the confirmed track id matched to it (IoU >= 0.3, one to one) in
    each frame where one is."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment
    names = list(CROSS_PATHS)
    ids: dict[str, list[int]] = {n: [] for n in names}
    for f, tracks in enumerate(tracks_per_frame):
        live = [t for t in tracks if t.confirmed]
        if not live:
            continue
        m = np.array([[iou(gts[f][n], t.box) for t in live] for n in names])
        for r, c in zip(*linear_sum_assignment(-m)):
            if m[r, c] >= 0.3:
                ids[names[r]].append(live[c].id)
    return ids


# ---- counting clip -----------------------------------------------------------------------------

COUNT_W, COUNT_H = 1280, 720
COUNT_FACE = 180
COUNT_SPEED = 12
COUNT_FPS = 25.0
# Adults (20-45) whose gender the default net gets right with confidence >= 0.98 when pasted
# at three places of this background (white, asian, indian women; white, asian, black men).
COUNT_FEMALE = ["images/20_1_0_20170104020801388.jpg.chip.jpg", "images/29_1_2_20170103181921865.jpg.chip.jpg",
                "images/32_1_3_20170109132040475.jpg.chip.jpg"]
COUNT_MALE = ["images/29_0_0_20170104230319649.jpg.chip.jpg", "images/38_0_2_20170104201018401.jpg.chip.jpg",
              "images/40_0_1_20170105164641662.jpg.chip.jpg"]
# The lines the expected counts are for (fractions of the frame).
COUNT_LINES = [{"name": "door", "points": [[0.5, 0], [0.5, 1]]},
               {"name": "upper", "points": [[0.75, 0], [0.75, 0.5]]}]


def _alpha(size: int):
    import numpy as np
    yy, xx = np.mgrid[0:size, 0:size]
    d = np.sqrt(((xx - size / 2) / (size * 0.48)) ** 2 + ((yy - size / 2) / (size * 0.5)) ** 2)
    return np.clip((1.0 - d) / 0.12, 0, 1)[..., None].astype(np.float32)


def _paste_alpha(img, crop, alpha, cx: float, cy: float) -> None:
    import numpy as np
    x0, y0 = int(round(cx - COUNT_FACE / 2)), int(round(cy - COUNT_FACE / 2))
    roi = img[y0:y0 + COUNT_FACE, x0:x0 + COUNT_FACE].astype(np.float32)
    img[y0:y0 + COUNT_FACE, x0:x0 + COUNT_FACE] = (alpha * crop + (1 - alpha) * roi).astype(np.uint8)


def _lane(x0: float, x1: float, y: float) -> list[tuple[float, float]]:
    n = int(abs(x1 - x0) // COUNT_SPEED) + 1
    step = COUNT_SPEED if x1 > x0 else -COUNT_SPEED
    return [(x0 + i * step, y) for i in range(n)]


def build_counting_clip(out: Path, faces_dir: Path, background, female=None, male=None) -> dict:
    """Write the scene to ``out`` (mp4); return the expected counts built from the labels.

    Phase 1: A lane 150 left->right (door in, upper in), B lane 600 left->right (door in),
    C lane 400 right->left (door out). Phase 2: D lane 150 to 560 px and back (never counts),
    E lane 600 right->left (door out), F lane 400 left->right (door in). 6 people.
    ``female`` / ``male``: three crop paths each (default COUNT_FEMALE / COUNT_MALE); the
    returned dict also has ``"crossings"``: (line, direction, labelled gender) per count."""
    female, male = female or COUNT_FEMALE, male or COUNT_MALE
    import cv2
    import numpy as np
    labels = {r["path"]: r["gender"] for r in csv.DictReader(open(faces_dir / "labels.csv"))}
    alpha = _alpha(COUNT_FACE)

    def crop(name: str):
        img = cv2.imread(str(faces_dir / name), cv2.IMREAD_COLOR)
        assert img is not None, name
        return cv2.resize(img, (COUNT_FACE, COUNT_FACE), interpolation=cv2.INTER_AREA).astype(np.float32)

    left, right = 150, COUNT_W - 150
    a, b, c, d, e, f = female[0], male[0], female[1], male[1], female[2], male[2]
    phases = [
        [(a, _lane(left, right, 150)), (b, _lane(left, right, 600)), (c, _lane(right, left, 400))],
        [(d, _lane(left, 560, 150) + _lane(560, left, 150)), (e, _lane(right, left, 600)),
         (f, _lane(left, right, 400))],
    ]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), COUNT_FPS, (COUNT_W, COUNT_H))
    assert writer.isOpened()
    blank_gap = 25  # > tracker.max_misses: every phase-1 track has ended before phase 2
    for phase in phases:
        people = [(crop(name), path) for name, path in phase]
        for i in range(max(len(p) for _, p in people)):
            img = background.copy()
            for cimg, path in people:
                if i < len(path):
                    _paste_alpha(img, cimg, alpha, *path[i])
            writer.write(img)
        for _ in range(blank_gap):
            writer.write(background)
    writer.release()
    g = labels.__getitem__
    return {
        "door": {"in": 3, "out": 2,
                 "by_gender": {"in": {"male": [g(b), g(f), g(a)].count("male"),
                                      "female": [g(b), g(f), g(a)].count("female"), "unknown": 0},
                               "out": {"male": [g(c), g(e)].count("male"),
                                       "female": [g(c), g(e)].count("female"), "unknown": 0}}},
        "upper": {"in": 1, "out": 0,
                  "by_gender": {"in": {"male": int(g(a) == "male"), "female": int(g(a) == "female"),
                                       "unknown": 0},
                                "out": {"male": 0, "female": 0, "unknown": 0}}},
        "people": 6,
        "crossings": [("door", "in", g(a)), ("upper", "in", g(a)), ("door", "in", g(b)),
                      ("door", "out", g(c)), ("door", "out", g(e)), ("door", "in", g(f))],
    }
