"""Face detection: ``detect(image) -> list[Detection]`` in full-frame pixels.

Detectors return every face scoring at least ``low_score_threshold`` so the tracker can run a
ByteTrack-style second pass on weak detections; callers that want only confident faces filter
on ``score >= detector.score_threshold`` (see ``confident``).

YuNet (default) runs on a copy downscaled to ``width`` pixels: detection cost grows with the
pixel count while faces a few tens of pixels wide stay findable, so a 1080p frame costs about
what a 640 px frame costs. The copy's sides are rounded to YuNet's stride (32) so the network
never runs on padding (``_downscale``). Boxes and landmarks are mapped back to the original
frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from streamer.media import modelstore
from streamer.config import DetectorConfig
from streamer.errors import ModelError
from streamer.types import Detection

YUNET = "face_detection_yunet_2026may.onnx"
SSD_TF = ("opencv_face_detector_uint8.pb", "opencv_face_detector.pbtxt")
SSD_CAFFE = ("res10_300x300_ssd_iter_140000_fp16.caffemodel", "res10_deploy.prototxt")


class Detector(Protocol):
    score_threshold: float

    def detect(self, image: np.ndarray) -> list[Detection]: ...


def confident(dets: list[Detection], threshold: float) -> list[Detection]:
    return [d for d in dets if d.score >= threshold]


YUNET_STRIDE = 32  # FaceDetectorYN pads its input up to a multiple of this on each side


def _downscale(image: np.ndarray, width: int, align: int = 1) -> tuple[np.ndarray, float, float]:
    """A copy at most ``width`` wide, and its (x, y) scale factors.

    With ``align`` > 1 the copy's height is rounded to the nearest multiple of ``align``
    (and so is its width), so a detector that pads its input to that multiple gets no padding:
    YuNet pads 640x360 to 640x384 and runs its network on 6.7% of black rows; 640x352 costs 8%
    less (measured 1080p -> YuNet, one thread: 23.1 -> 21.2 ms CPU median, same faces found).
    The aspect ratio changes by at most align / 2 px over the height (2.2% for 16:9), which
    the detector does not notice; boxes are mapped back with each axis' own factor.
    """
    h, w = image.shape[:2]
    if w <= width:
        return image, 1.0, 1.0
    s = width / w
    tw, th = width, max(1, round(h * s))
    if align > 1:
        tw = max(align, round(tw / align) * align)
        th = max(align, round(th / align) * align)
    # INTER_LINEAR: INTER_AREA is ~3x slower at 1080p and YuNet does not need its anti-aliasing
    # at a 3x reduction.
    small = cv2.resize(image, (tw, th), interpolation=cv2.INTER_LINEAR)
    return small, tw / w, th / h


def _clip_box(x1, y1, x2, y2, w, h):
    return (max(0.0, min(float(x1), w)), max(0.0, min(float(y1), h)),
            max(0.0, min(float(x2), w)), max(0.0, min(float(y2), h)))


class YuNetDetector:
    def __init__(self, model_path: Path, cfg: DetectorConfig = DetectorConfig()):
        self.score_threshold = cfg.score_threshold
        self.width = cfg.width
        self.min_face_px = cfg.min_face_px
        try:
            self._net = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320),
                                                  cfg.low_score_threshold, cfg.nms_threshold, 5000)
        except cv2.error as e:
            raise ModelError(f"cannot load YuNet from {model_path}: {str(e).strip().splitlines()[-1]}") from None
        self._size = (320, 320)

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        small, sx, sy = _downscale(image, self.width, YUNET_STRIDE)
        size = (small.shape[1], small.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, faces = self._net.detect(small)
        if faces is None:
            return []
        # Back to full-frame pixels: columns 0, 2, 4, ... are x, 1, 3, 5, ... are y.
        back = np.tile(np.array([1.0 / sx, 1.0 / sy], np.float32), 7)
        out = []
        for f in faces:
            v = (f[:14] * back).tolist()
            x, y, bw, bh = v[:4]
            if min(bw, bh) < self.min_face_px:
                continue
            lm = tuple((v[4 + 2 * i], v[5 + 2 * i]) for i in range(5))
            out.append(Detection(_clip_box(x, y, x + bw, y + bh, w, h), float(f[14]), lm))
        return out


class SsdDetector:
    """The seed's res10 SSD (300x300, no landmarks), from TensorFlow or Caffe files."""

    def __init__(self, net, cfg: DetectorConfig = DetectorConfig()):
        self._net = net
        self.score_threshold = cfg.score_threshold
        self.low = cfg.low_score_threshold
        self.min_face_px = cfg.min_face_px

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        blob = cv2.dnn.blobFromImage(image, 1.0, (300, 300), (104.0, 177.0, 123.0), False, False)
        self._net.setInput(blob)
        out = self._net.forward().reshape(-1, 7)
        dets = []
        for row in out[out[:, 2] >= self.low]:
            box = _clip_box(row[3] * w, row[4] * h, row[5] * w, row[6] * h, w, h)
            if min(box[2] - box[0], box[3] - box[1]) < max(1, self.min_face_px):
                continue
            dets.append(Detection(box, float(row[2]), None))
        return dets


def load_ssd_tf(models_dir: Path | None, cfg: DetectorConfig) -> SsdDetector:
    pb, pbtxt = (modelstore.path_of(n, models_dir) for n in SSD_TF)
    return SsdDetector(cv2.dnn.readNetFromTensorflow(str(pb), str(pbtxt)), cfg)


def caffe_supported() -> bool:
    return hasattr(cv2.dnn, "readNetFromCaffe")


def load_ssd_caffe(models_dir: Path | None, cfg: DetectorConfig) -> SsdDetector:
    if not caffe_supported():
        raise ModelError(
            f"detector.kind ssd_caffe needs OpenCV's Caffe importer, which OpenCV {cv2.__version__} "
            "removed; use detector.kind: ssd_tf (the same res10 detector as TensorFlow) or yunet, "
            "or install opencv-python<5")
    weights, proto = (modelstore.path_of(n, models_dir) for n in SSD_CAFFE)
    return SsdDetector(cv2.dnn.readNetFromCaffe(str(proto), str(weights)), cfg)


def build(cfg: DetectorConfig, models_dir: Path | None = None) -> Detector:
    """Verify the configured detector's files and load it."""
    if cfg.kind == "yunet":
        return YuNetDetector(modelstore.path_of(YUNET, models_dir), cfg)
    if cfg.kind == "ssd_tf":
        return load_ssd_tf(models_dir, cfg)
    return load_ssd_caffe(models_dir, cfg)
