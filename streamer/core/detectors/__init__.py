"""Face detectors behind one verb: ``detect(image, min_score=None) -> list[Detection]``.

Boxes and landmarks are in full-frame pixels; landmarks are 5 points in YuNet's order (right
eye, left eye, nose tip, right mouth corner, left mouth corner: the subject's right, so the
first eye is the one on the image's left) or ``None`` (res10 SSD has none).

Every detector returns each face scoring at least its floor, ``low_score_threshold``, so the
tracker can run a ByteTrack-style second pass on weak detections; callers that want only
confident faces filter on ``score >= detector.score_threshold`` (``confident``). A caller that
asks for a lower threshold (batch ``--conf 0.05``) passes ``min_score`` and the floor follows
it for that call.

Kinds (``detector.kind``): ``yunet`` (default for streams), ``centerface`` (default for single
images: web, batch), ``ssd_tf`` / ``ssd_caffe`` (the seed's res10). Every net runs through
``streamer.inference`` (OpenVINO or OpenCV DNN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Protocol

import cv2
import numpy as np

from streamer.config import DetectorConfig
from streamer.types import Detection


class Detector(Protocol):
    score_threshold: float

    def detect(self, image: np.ndarray, min_score: Optional[float] = None) -> list[Detection]: ...


def confident(dets: list[Detection], threshold: float) -> list[Detection]:
    return [d for d in dets if d.score >= threshold]


STRIDE = 32  # YuNet and CenterFace both need sides that are multiples of this


def downscale(image: np.ndarray, width: int, align: int = 1,
              out: Optional[dict] = None) -> tuple[np.ndarray, float, float]:
    """A copy at most ``width`` wide, and its (x, y) scale factors.

    With ``align`` > 1 the copy's height is rounded to the nearest multiple of ``align``
    (and so is its width), so a detector that pads its input to that multiple gets no padding:
    YuNet pads 640x360 to 640x384 and runs its network on 6.7% of black rows; 640x352 costs 8%
    less (measured 1080p -> YuNet, one thread: 23.1 -> 21.2 ms CPU median, same faces found).
    The aspect ratio changes by at most align / 2 px over the height (2.2% for 16:9), which
    the detector does not notice; boxes are mapped back with each axis' own factor.
    ``out``: a dict the caller keeps, holding one destination buffer per size, so a stream
    resizes into the same memory every frame.
    """
    h, w = image.shape[:2]
    if w <= width:
        return image, 1.0, 1.0
    s = width / w
    tw, th = width, max(1, round(h * s))
    if align > 1:
        tw = max(align, round(tw / align) * align)
        th = max(align, round(th / align) * align)
    dst = None
    if out is not None:
        key = (th, tw, image.dtype.str, image.shape[2:])
        dst = out.get(key)
        if dst is None:
            out.clear()  # one size at a time: a stream never changes size
            dst = out[key] = np.empty((th, tw) + image.shape[2:], image.dtype)
    # INTER_LINEAR: INTER_AREA is ~3x slower at 1080p and the detectors do not need its
    # anti-aliasing at a 3x reduction.
    small = cv2.resize(image, (tw, th), dst=dst, interpolation=cv2.INTER_LINEAR)
    return small, tw / w, th / h


BUCKET = 64  # a size other than the first a detector sees is padded up to multiples of this


class InputSizes:
    """Which padding a detector input gets. The first size seen (a stream's only size) is
    padded to the net's stride alone; any later size (the single-image path: every photo its
    own size) is padded up to multiples of ``BUCKET``, so photos of similar shape share one
    compiled input size instead of costing a new one each (measured on OpenVINO: a new size
    costs a compile or a dynamic-shape first run, 30-250 ms; padding costs ~10% more pixels)."""

    def __init__(self, stride: int):
        self.stride = stride
        self._first: Optional[tuple[int, int]] = None

    def pad(self, image: np.ndarray) -> np.ndarray:
        size = image.shape[:2]
        if self._first is None:
            self._first = size
        return pad_to(image, self.stride if size == self._first else BUCKET)


class GridDetector:
    """A fully convolutional detector (YuNet, CenterFace): downscale to ``detector.width``, pad
    to the stride, one inference, a net-specific ``_decode`` of its output maps, boxes mapped
    back to the frame. Subclasses set ``model`` through this constructor and implement
    ``_decode(outs, input_hw, floor) -> (xyxy, scores, landmarks)`` in input pixels."""

    def __init__(self, model, cfg: DetectorConfig = DetectorConfig()):
        self.model = model
        self.score_threshold = cfg.score_threshold
        self.low = cfg.low_score_threshold
        self.nms = cfg.nms_threshold
        self.width = cfg.width
        self.min_face_px = cfg.min_face_px
        self._resized: dict = {}  # the stream's downscale buffer
        self._sizes = InputSizes(STRIDE)

    def _decode(self, outs: list, input_hw: tuple[int, int], floor: float):
        raise NotImplementedError

    def prepare(self, frame: np.ndarray) -> None:
        """Run once on a blank frame of the stream's size: compiles the net for it."""
        self.detect(frame)

    def prepare_input(self, image: np.ndarray) -> "DetectorInput":
        """The net's input for ``image`` (downscaled, padded) in a new array: safe to call on
        another thread ahead of ``detect`` (the pipeline does it on the capture thread, so the
        inference thread only runs the net)."""
        h, w = image.shape[:2]
        small, sx, sy = downscale(image, self.width, STRIDE)
        return DetectorInput(self._sizes.pad(small), sx, sy, w, h)

    def detect(self, image: np.ndarray, min_score: Optional[float] = None,
               prepared: Optional["DetectorInput"] = None) -> list[Detection]:
        """Faces in ``image``; ``prepared``: its ``prepare_input`` (else made here, into a
        buffer this detector keeps)."""
        if prepared is None:
            h, w = image.shape[:2]
            small, sx, sy = downscale(image, self.width, STRIDE, self._resized)
            prepared = DetectorInput(self._sizes.pad(small), sx, sy, w, h)
        floor = self.low if min_score is None else min(self.low, min_score)
        x = prepared.image
        boxes, scores, lms = self._decode(self.model.infer(x[None]), x.shape[:2], floor)
        return to_detections(boxes, scores, lms, prepared.sx, prepared.sy, prepared.w, prepared.h,
                             self.min_face_px)


@dataclass(frozen=True)
class DetectorInput:
    """A frame made ready for a grid detector: ``image`` (downscaled, padded), the scale from
    frame to input pixels, and the frame's own size."""

    image: np.ndarray = field(repr=False)
    sx: float
    sy: float
    w: int
    h: int


def prepare(detector, frame_size: tuple[int, int]) -> None:
    """Compile ``detector`` for a stream's frame size (w, h) now, at start-up, rather than on
    its first frame (a live stream would drop frames meanwhile). Detectors without a
    per-size model (or without ``prepare``) are left alone; a failure here only moves the
    compile to the first frame."""
    w, h = frame_size
    fn = getattr(detector, "prepare", None)
    if fn is None or w <= 0 or h <= 0:
        return
    try:
        fn(np.zeros((h, w, 3), np.uint8))
    except Exception as e:  # noqa: BLE001 - the first frame will compile and report
        import logging
        logging.getLogger(__name__).info("detector: no compile ahead of the first frame (%s)", e)


def pad_to(image: np.ndarray, align: int) -> np.ndarray:
    """Zero-pad bottom and right up to multiples of ``align`` (what FaceDetectorYN does)."""
    h, w = image.shape[:2]
    ph, pw = -h % align, -w % align
    if not ph and not pw:
        return image
    return cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)


def clip_box(x1, y1, x2, y2, w, h):
    return (max(0.0, min(float(x1), w)), max(0.0, min(float(y1), h)),
            max(0.0, min(float(x2), w)), max(0.0, min(float(y2), h)))


def to_detections(boxes: np.ndarray, scores: np.ndarray, lms: Optional[np.ndarray],
                  sx: float, sy: float, w: int, h: int, min_face_px: float) -> list[Detection]:
    """Rows of (x1, y1, x2, y2) + scores + (N, 5, 2) landmarks in the detector's input pixels
    -> Detections in the frame's pixels, faces narrower or shorter than ``min_face_px`` dropped."""
    out = []
    if len(boxes) == 0:
        return out
    b = boxes / np.array([sx, sy, sx, sy], np.float32)
    keep = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) >= min_face_px
    pts = lms / np.array([sx, sy], np.float32) if lms is not None else None
    for i in np.flatnonzero(keep).tolist():
        lm = tuple(map(tuple, pts[i].tolist())) if pts is not None else None
        out.append(Detection(clip_box(*b[i].tolist(), w, h), float(scores[i]), lm))
    return out


def build(cfg: DetectorConfig, models_dir: Optional[Path] = None) -> Detector:
    """Verify the configured detector's files and load it."""
    if cfg.kind == "yunet":
        from streamer.core.detectors.yunet import YuNetDetector
        return YuNetDetector.load(models_dir, cfg)
    if cfg.kind == "centerface":
        from streamer.core.detectors.centerface import CenterFaceDetector
        return CenterFaceDetector.load(models_dir, cfg)
    from streamer.core.detectors import ssd
    if cfg.kind == "ssd_tf":
        return ssd.load_ssd_tf(models_dir, cfg)
    return ssd.load_ssd_caffe(models_dir, cfg)
