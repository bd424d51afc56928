"""The seed's res10 SSD (300x300, no landmarks), from TensorFlow or Caffe files.

Both forms run on OpenCV DNN whatever ``inference.backend`` says: OpenVINO has no Caffe
reader and cannot convert the uint8-quantised TensorFlow graph (``streamer.inference`` logs
that once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from streamer import inference
from streamer.config import DetectorConfig
from streamer.core.detectors import clip_box
from streamer.errors import ModelError
from streamer.media import modelstore
from streamer.types import Detection

SSD_TF = ("opencv_face_detector_uint8.pb", "opencv_face_detector.pbtxt")
SSD_CAFFE = ("res10_300x300_ssd_iter_140000_fp16.caffemodel", "res10_deploy.prototxt")
SPEC = inference.InputSpec(mean=(104.0, 177.0, 123.0))
SIDE = 300


class SsdDetector:
    def __init__(self, model: inference.Model, cfg: DetectorConfig = DetectorConfig()):
        self.model = model
        self.score_threshold = cfg.score_threshold
        self.low = cfg.low_score_threshold
        self.min_face_px = cfg.min_face_px
        self._buf = np.empty((SIDE, SIDE, 3), np.uint8)

    def detect(self, image: np.ndarray, min_score: Optional[float] = None) -> list[Detection]:
        h, w = image.shape[:2]
        floor = self.low if min_score is None else min(self.low, min_score)
        small = cv2.resize(image, (SIDE, SIDE), dst=self._buf, interpolation=cv2.INTER_LINEAR)
        out = np.asarray(self.model.infer(small[None])[0]).reshape(-1, 7)
        dets = []
        for row in out[out[:, 2] >= floor]:
            box = clip_box(row[3] * w, row[4] * h, row[5] * w, row[6] * h, w, h)
            if min(box[2] - box[0], box[3] - box[1]) < max(1, self.min_face_px):
                continue
            dets.append(Detection(box, float(row[2]), None))
        return dets


def load_ssd_tf(models_dir: Optional[Path], cfg: DetectorConfig) -> SsdDetector:
    pb, pbtxt = (modelstore.path_of(n, models_dir) for n in SSD_TF)
    return SsdDetector(inference.load(pb, SPEC, config=pbtxt), cfg)


def caffe_supported() -> bool:
    return hasattr(cv2.dnn, "readNetFromCaffe")


def load_ssd_caffe(models_dir: Optional[Path], cfg: DetectorConfig) -> SsdDetector:
    if not caffe_supported():
        raise ModelError(
            f"detector.kind ssd_caffe needs OpenCV's Caffe importer, which OpenCV {cv2.__version__} "
            "removed; use detector.kind: ssd_tf (the same res10 detector as TensorFlow) or yunet, "
            "or install opencv-python<5")
    weights, proto = (modelstore.path_of(n, models_dir) for n in SSD_CAFFE)
    return SsdDetector(inference.load(weights, SPEC, config=proto), cfg)
