"""Detectors on the real nets and the real dev photos (facebox/dlib_faces, face_mask_dev).

- YuNet through the inference layer, decoded in numpy, finds what ``cv2.FaceDetectorYN`` finds.
- Both backends give the same faces: boxes within 2 px, scores within 0.02 (issue 13).
- CenterFace's landmarks come in YuNet's order.
- A requested threshold below the detector's floor returns those weaker boxes.
"""

import csv

import logging

import cv2
import numpy as np
import pytest

from streamer import config, inference
from streamer.core import detect
from streamer.core.detectors import InputSizes, yunet
from streamer.media import modelstore
from streamer.types import Detection
from conftest import data_path

pytestmark = pytest.mark.models
BOX_PX = 2.0
SCORE_TOL = 0.02


@pytest.fixture(autouse=True)
def _restore_settings():
    before = inference.settings()
    yield
    inference.configure(backend=before.backend)


def _photos(limit_mask: int = 30) -> list[np.ndarray]:
    out = []
    for name, limit in (("dlib_faces", 0), ("face_mask_dev", limit_mask)):
        folder = data_path("facebox", name)
        with open(folder / "labels.csv", newline="") as f:
            paths = sorted({r["path"] for r in csv.DictReader(f)})
        for p in paths[:limit] if limit else paths:
            img = cv2.imread(str(folder / p))
            assert img is not None, p
            out.append(img)
    return out


@pytest.fixture(scope="module")
def photos():
    return _photos()


def _build(kind: str, backend: str, **over):
    inference.configure(backend=backend)
    cfg = config.load(None, {"detector.kind": kind, **{f"detector.{k}": v for k, v in over.items()}})
    d = detect.build(cfg.detector)
    assert getattr(d.model, "backend", None) == ("opencv" if kind.startswith("ssd") else backend)
    return d


def _pairs(a, b):
    """Greedy best-IoU pairs between two face lists; (pairs, unpaired a, unpaired b)."""
    def iou(p, q):
        ix = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
        iy = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
        u = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - ix * iy
        return ix * iy / u if u > 0 else 0.0
    free_b, pairs, lone_a = list(range(len(b))), [], []
    for i, x in enumerate(a):
        best = max(free_b, key=lambda j: iou(x.box, b[j].box), default=None)
        if best is not None and iou(x.box, b[best].box) > 0.5:
            pairs.append((x, b[best]))
            free_b.remove(best)
        else:
            lone_a.append(x)
    return pairs, lone_a, [b[j] for j in free_b]


def _same_faces(a, b, floor: float):
    pairs, lone_a, lone_b = _pairs(a, b)
    # A face scoring within the tolerance of the floor may fall on either side of it.
    assert all(d.score < floor + SCORE_TOL for d in lone_a + lone_b), (lone_a, lone_b)
    for x, y in pairs:
        assert max(abs(u - v) for u, v in zip(x.box, y.box)) <= BOX_PX, (x.box, y.box)
        assert abs(x.score - y.score) <= SCORE_TOL
    return len(pairs)


@pytest.mark.parametrize("backend", ("openvino", "opencv", "onnxruntime"))
def test_yunet_decoded_here_finds_what_face_detector_yn_finds(photos, backend):
    det = _build("yunet", backend, min_face_px=0)
    ref = cv2.FaceDetectorYN.create(str(modelstore.path_of(yunet.MODEL)), "", (320, 320),
                                    det.low, det.nms, 5000)
    matched = 0
    sizes = InputSizes(detect.YUNET_STRIDE)  # the detector's padding decisions, replayed
    for img in photos:
        # FaceDetectorYN sees the same downscaled, padded copy the detector makes.
        small, sx, sy = detect._downscale(img, det.width, detect.YUNET_STRIDE)
        small = sizes.pad(small)
        ref.setInputSize((small.shape[1], small.shape[0]))
        _, faces = ref.detect(small)
        theirs = [] if faces is None else [
            Detection(detect._clip_box(f[0] / sx, f[1] / sy, (f[0] + f[2]) / sx, (f[1] + f[3]) / sy,
                                              img.shape[1], img.shape[0]), float(f[14]), None)
            for f in faces]
        matched += _same_faces(det.detect(img), theirs, det.low)
    assert matched >= 100  # the photos hold a few hundred faces; most are found


@pytest.mark.parametrize("kind", ("yunet", "centerface", "ssd_tf"))
def test_both_backends_give_the_same_faces(photos, kind):
    ov, cv = _build(kind, "openvino"), _build(kind, "opencv")
    matched = sum(_same_faces(ov.detect(img), cv.detect(img), ov.low) for img in photos)
    assert matched >= 100


def test_onnxruntime_gives_the_faces_openvino_gives(photos):
    ov, rt = _build("yunet", "openvino"), _build("yunet", "onnxruntime")
    matched = sum(_same_faces(ov.detect(img), rt.detect(img), ov.low) for img in photos)
    assert matched >= 100


def test_a_net_with_a_fixed_input_size_leaves_onnxruntime_for_openvino(caplog):
    """CenterFace's file fixes its input at 10x3x32x32, which ONNX Runtime cannot resize."""
    from streamer.inference import backend as backend_mod
    backend_mod._said_fallback.discard("centerface.onnx")  # said once per process
    inference.configure(backend="onnxruntime")
    with caplog.at_level(logging.INFO, logger="streamer.inference"):
        d = detect.build(config.load(None, {"detector.kind": "centerface"}).detector)
    assert d.model.backend == "openvino"
    assert any("centerface" in r.getMessage() and "ONNX Runtime" in r.getMessage() for r in caplog.records)
    img = np.zeros((240, 320, 3), np.uint8)
    assert d.detect(img) == []


def test_centerface_landmarks_come_in_yunet_order(photos):
    cf, yn = _build("centerface", "openvino"), _build("yunet", "openvino")
    agree, eyes_agree, checked = 0, 0, 0
    for img in photos:
        pairs, _, _ = _pairs([d for d in cf.detect(img) if d.score >= 0.6],
                             [d for d in yn.detect(img) if d.score >= 0.8])
        for c, y in pairs:
            pc, py = np.array(c.landmarks), np.array(y.landmarks)
            dist = np.linalg.norm(pc[:, None, :] - py[None, :, :], axis=2)  # (cf point, yunet point)
            same = dist.argmin(1) == np.arange(5)
            agree += int(same.sum())
            eyes_agree += int(same[:2].all())
            checked += 1
    # Each CenterFace point is nearest to YuNet's point of the same index; profile faces may
    # put the nose nearer a mouth corner or one eye nearer the other (measured: 97.5% of faces
    # have both eyes on their own side).
    assert agree >= 0.95 * 5 * checked
    assert eyes_agree >= 0.95 * checked
    assert checked >= 50


@pytest.mark.parametrize("kind", ("yunet", "centerface", "ssd_tf"))
def test_a_threshold_below_the_floor_returns_the_weaker_boxes(photos, kind):
    det = _build(kind, "openvino")
    weak = 0
    for img in photos:
        default = det.detect(img)
        assert all(d.score >= det.low for d in default)
        low = det.detect(img, min_score=0.05)
        assert all(d.score >= 0.05 for d in low)
        weak += sum(1 for d in low if d.score < det.low)
        # Every box above the floor is still there.
        assert sum(1 for d in low if d.score >= det.low + SCORE_TOL) >= sum(
            1 for d in default if d.score >= det.low + SCORE_TOL)
    assert weak > 0


def test_batch_conf_below_the_floor_reaches_the_single_image_path(photos):
    # The path batch --conf and /analyze take: Analyzer.analyze(image, conf).
    from streamer.core.analyze import Analyzer
    inference.configure(backend="auto")
    cfg = config.load(None, {"attributes.enabled": False})
    an = Analyzer(cfg)
    floor = cfg.detector.low_score_threshold
    weak = 0
    for img in photos[:20]:
        faces = an.analyze(img, conf=0.05).faces
        assert all(f.score >= 0.05 for f in faces)
        weak += sum(1 for f in faces if f.score < floor)
        assert all(f.score >= floor for f in an.analyze(img, conf=floor).faces)
    assert weak > 0
