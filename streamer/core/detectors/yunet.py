"""YuNet: the raw net through ``streamer.inference``, decoded here as ``cv2.FaceDetectorYN`` does.

The net runs on a copy downscaled to ``detector.width`` with sides rounded to the stride (32),
so a 1080p frame costs what a 640 px frame costs and the net never runs on padding.

Decoding (per stride 8, 16, 32, on a grid of (H/s) x (W/s) anchors, row-major): score =
sqrt(clip(cls) * clip(obj)); centre = (col + dx, row + dy) * s, size = exp(dw, dh) * s;
landmark k = (col + lx_k, row + ly_k) * s; then ``cv2.dnn.NMSBoxes`` on integer (x, y, w, h)
boxes, as FaceDetectorYN does. Vectorised: only anchors above the floor are decoded; the grids
are built once per input size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from streamer import inference
from streamer.config import DetectorConfig
from streamer.core.detectors import GridDetector
from streamer.media import modelstore

MODEL = "face_detection_yunet_2026may.onnx"
STRIDES = (8, 16, 32)
OUTPUTS = tuple(f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES)
TOP_K = 5000  # FaceDetectorYN's default keep limit
SPEC = inference.InputSpec()  # raw BGR 0-255 pixels, as FaceDetectorYN feeds it


def decode(outs: list[np.ndarray], size: tuple[int, int], floor: float, nms: float,
           grids: Optional[dict] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs (``OUTPUTS`` order) for an input of ``size`` = (h, w) -> (boxes x1y1x2y2
    (N, 4), scores (N,), landmarks (N, 5, 2)) after NMS, best first."""
    h, w = size
    boxes, scores, lms = [], [], []
    for k, s in enumerate(STRIDES):
        cls, obj = outs[k].reshape(-1), outs[k + 3].reshape(-1)
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        idx = np.flatnonzero(score >= floor)
        if idx.size == 0:
            continue
        cols = w // s
        key = (s, h, w)
        grid = grids.get(key) if grids is not None else None
        if grid is None:
            n = (h // s) * cols
            a = np.arange(n)
            grid = np.stack([a % cols, a // cols], 1).astype(np.float32)
            if grids is not None:
                if len(grids) >= 48:  # photos of many sizes: keep the memory bounded
                    grids.clear()
                grids[key] = grid
        g = grid[idx]  # (M, 2) = (col, row)
        bb = outs[k + 6].reshape(-1, 4)[idx]
        centre = (g + bb[:, :2]) * s
        wh = np.exp(bb[:, 2:]) * s
        boxes.append(np.concatenate([centre - wh / 2, wh], 1))
        kp = outs[k + 9].reshape(-1, 10)[idx].reshape(-1, 5, 2)
        lms.append((kp + g[:, None, :]) * s)
        scores.append(score[idx])
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
    xywh, sc, lm = np.concatenate(boxes), np.concatenate(scores), np.concatenate(lms)
    if len(sc) > 1:
        keep = cv2.dnn.NMSBoxes(xywh.astype(np.int32).tolist(), sc.tolist(), floor, nms, 1.0, TOP_K)
        keep = np.asarray(keep, np.int64).reshape(-1)
        xywh, sc, lm = xywh[keep], sc[keep], lm[keep]
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
    return xyxy, sc, lm


class YuNetDetector(GridDetector):
    def __init__(self, model: inference.Model, cfg: DetectorConfig = DetectorConfig()):
        super().__init__(model, cfg)
        self._grids: dict = {}  # anchor grids per input size (bounded in decode)

    def _decode(self, outs, input_hw, floor):
        return decode(outs, input_hw, floor, self.nms, self._grids)

    @classmethod
    def load(cls, models_dir: Optional[Path], cfg: DetectorConfig) -> "YuNetDetector":
        return cls(inference.load(modelstore.path_of(MODEL, models_dir), SPEC, OUTPUTS), cfg)
