"""Alignment (streamer/core/align.py) by its properties: exact sampling at the borders, the
pose measure on the templates, box framing, quality terms. Written to close the survivors of
mutation testing (`make mutate`); the byte-for-byte dlib chips are in test_attributes.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamer.core import align


def rot(points: np.ndarray, angle: float, scale: float, shift) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return points @ (scale * np.array([[c, -s], [s, c]])).T + np.asarray(shift, float)


# ---- sampling -----------------------------------------------------------------------------

def test_bilinear_identity_copies_pixels_and_blanks_the_last_row_and_column():
    img = np.random.default_rng(3).integers(0, 256, (5, 6, 3)).astype(np.uint8)
    eye = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    out = align._bilinear(img, eye, 6)
    assert out.shape == (6, 6, 3) and out.dtype == np.uint8
    # a pixel needs all four neighbours inside: the last column and the last row(s) are 0
    np.testing.assert_array_equal(out[:4, :5], img[:4, :5])
    assert not out[4:, :].any() and not out[:, 5:].any()


def test_bilinear_truncates_the_weighted_mean():
    img = np.array([[0, 10], [20, 31]], np.uint8)
    half = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5]])  # chip (0, 0) samples image (0.5, 0.5)
    out = align._bilinear(img, half, 1)
    assert out.shape == (1, 1) and out[0, 0] == 15  # (0 + 10 + 20 + 31) / 4 = 15.25 -> 15
    quarter = np.array([[1.0, 0, 0.25], [0, 1.0, 0.0]])
    assert align._bilinear(img, quarter, 1)[0, 0] == 2  # 0.75 * 0 + 0.25 * 10 = 2.5 -> 2


def test_bilinear_on_an_image_too_small_or_fully_outside_is_black():
    eye = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    for img in (np.full((1, 8, 3), 200, np.uint8), np.full((8, 1, 3), 200, np.uint8)):
        out = align._bilinear(img, eye, 4)
        assert out.shape == (4, 4, 3) and out.dtype == np.uint8 and not out.any()
    far = np.array([[1.0, 0, 100.0], [0, 1.0, 100.0]])
    out = align._bilinear(np.full((8, 8), 200, np.uint8), far, 4)
    assert out.shape == (4, 4) and not out.any()


def test_sample_linear_is_warp_affine_with_replicated_borders_and_dlib_is_warp_chip():
    img = np.random.default_rng(4).integers(0, 256, (60, 80, 3)).astype(np.uint8)
    M = align.box_transform((10, 10, 50, 50), 32)
    want = cv2.warpAffine(img, M, (32, 32), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_array_equal(align.sample(img, M, 32, "linear"), want)
    np.testing.assert_array_equal(align.sample(img, M, 32, "dlib"), align.warp_chip(img, M, 32))


# ---- pose ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(align.TEMPLATES))
@pytest.mark.parametrize("angle, scale", [(0.0, 100.0), (0.6, 37.0), (-2.0, 250.0)])
def test_a_template_face_is_fully_frontal_at_any_roll_and_scale(name, angle, scale):
    tpl = align.TEMPLATES[name]
    lm = rot(tpl, angle, scale, (300, 200))
    assert align.frontalness(lm, tpl) == pytest.approx(1.0, abs=1e-4)  # the face frame follows the eye line, the template is not quite level


def test_frontalness_falls_as_documented_with_yaw_and_pitch():
    tpl = align.TEMPLATE
    iod = np.linalg.norm(tpl[1] - tpl[0])
    eye_y, mouth_y = (tpl[0, 1] + tpl[1, 1]) / 2, (tpl[3, 1] + tpl[4, 1]) / 2
    yawed = tpl.copy()
    yawed[2, 0] += 0.3 * iod  # the nose off the midline by 0.3 eye distances: one sigma
    pitched = tpl.copy()
    pitched[2, 1] += 0.15 * (mouth_y - eye_y)  # the nose lower by 0.15 of the eye-mouth span
    # the eyes of the template are not quite level: measure in the face frame, so use the exact
    # sigma only up to that tilt (well under 1 %)
    assert align.frontalness(yawed * 100) == pytest.approx(np.exp(-0.5), abs=0.01)
    assert align.frontalness(pitched * 100) == pytest.approx(np.exp(-0.5), abs=0.01)
    both = yawed.copy()
    both[2, 1] = pitched[2, 1]
    assert align.frontalness(both * 100) == pytest.approx(np.exp(-1.0), abs=0.01)


def test_frontalness_without_a_usable_face_frame():
    assert align.frontalness(None) == 0.7
    same_eyes = np.array([[10, 10], [10, 10], [10, 20], [5, 30], [15, 30]], float)
    assert align.frontalness(same_eyes) == 0.0
    flat = np.array([[0, 10], [10, 10], [5, 10], [0, 10], [10, 10]], float)  # mouth on the eye line
    assert align.frontalness(flat) == 0.0


def test_each_template_has_its_own_pose_reference():
    """CenterFace's points judged against YuNet's template are off-pose (its nose sits higher);
    against their own template they are frontal."""
    cf = align.CENTERFACE_TEMPLATE * 100
    assert align.frontalness(cf, align.CENTERFACE_TEMPLATE) == pytest.approx(1.0, abs=1e-4)  # the face frame follows the eye line, the template is not quite level
    assert align.frontalness(cf) < 0.95


# ---- framing ------------------------------------------------------------------------------

def test_chip_transform_puts_the_landmarks_on_the_template():
    lm = rot(align.TEMPLATE, 0.3, 120.0, (400, 250))
    for size in (32, 64):
        M = align.chip_transform(lm, size)
        got = lm @ M[:, :2].T + M[:, 2]
        np.testing.assert_allclose(got, align.TEMPLATE * (size - 1), atol=1e-6)
        padded = align.chip_transform(lm, size, padding=0.4)
        np.testing.assert_allclose(lm @ padded[:, :2].T + padded[:, 2],
                                   align.template(0.4) * (size - 1), atol=1e-6)


def test_template_at_dlib_padding_is_the_template():
    np.testing.assert_allclose(align.template(align.CHIP_PADDING), align.TEMPLATE, atol=1e-12)
    wider = align.template(0.5)
    centre = np.array([0.5, 0.5])
    # more padding shows more around the face: the points move towards the centre
    assert np.all(np.linalg.norm(wider - centre, axis=1) < np.linalg.norm(align.TEMPLATE - centre, axis=1))


def test_box_transform_centres_and_scales_as_measured():
    box = (100.0, 50.0, 180.0, 150.0)  # w 80, h 100
    size = 64
    M = align.box_transform(box, size)
    cx = 140.0 + align.BOX_CENTRE_OFFSET[0] * 80
    cy = 100.0 + align.BOX_CENTRE_OFFSET[1] * 100
    np.testing.assert_allclose(M @ [cx, cy, 1.0], [(size - 1) / 2] * 2, atol=1e-9)
    side = align.BOX_SIDE_SCALE * np.sqrt(80 * 100)
    assert M[0, 0] == M[1, 1] == pytest.approx((size - 1) / side) and M[0, 1] == M[1, 0] == 0.0
    # twice the padding of dlib's (relative to 1 + 2p) widens the side by that ratio
    p = 0.5
    wide = align.box_transform(box, size, padding=p)
    ratio = (1 + 2 * p) / (1 + 2 * align.CHIP_PADDING)
    assert wide[0, 0] == pytest.approx(M[0, 0] / ratio)
    # a degenerate box still gives a finite transform (sides floored at 1 px)
    assert np.isfinite(align.box_transform((5.0, 5.0, 5.0, 5.0), size)).all()


@pytest.mark.parametrize("zoom", [1.0, 1.05, 2.0])
def test_zoom_padding_shows_the_face_zoom_times_larger(zoom):
    p = align.zoom_padding(zoom)
    assert (1 + 2 * align.CHIP_PADDING) / (1 + 2 * p) == pytest.approx(zoom)


# ---- quality ------------------------------------------------------------------------------

@pytest.mark.parametrize("face_px, sharp, front, score", [
    (48.0, 400.0, 0.5, 0.5 * 0.25 * 0.5),  # half size, half sharpness (squared), half frontal
    (200.0, 5000.0, 0.8, 0.8),  # size and sharpness saturate at 1
    (0.0, 0.0, 1.0, max(1e-4, (1 / 96) * (1 / 800) ** 2)),  # floors: 1 px, variance 1, score 1e-4
    (96.0, 800.0, 1.0, 1.0),
])
def test_quality_terms(face_px, sharp, front, score):
    q = align.quality(face_px, sharp, front)
    assert q.score == pytest.approx(score)
    assert (q.face_px, q.sharpness, q.frontalness) == (face_px, sharp, front)


def test_dlib_exact_spec_is_the_reference_pipeline():
    s = align.ChipSpec.dlib_exact()
    assert (s.age_sampling, s.gender_sampling, s.age_zoom) == ("dlib", "dlib", 1.0)
    assert s.template is align.TEMPLATE
    assert align.ChipSpec.dlib_exact(align.CENTERFACE_TEMPLATE).template is align.CENTERFACE_TEMPLATE
    d = align.ChipSpec()
    assert (d.age_sampling, d.gender_sampling, d.age_zoom) == ("linear", "dlib", 1.05)


def test_face_chips_sizes_alignment_and_gray_input():
    img = np.random.default_rng(5).integers(0, 256, (200, 300, 3)).astype(np.uint8)
    lm = rot(align.TEMPLATE, 0.0, 80.0, (100, 50))
    fc = align.face_chips(img, (100, 50, 180, 130), lm, sizes=(64, 32))
    assert fc.aligned and fc.age.shape == (64, 64, 3) and fc.gender.shape == (32, 32, 3)
    np.testing.assert_array_equal(fc.age, align.warp_chip(img, align.chip_transform(lm, 64), 64))
    box_only = align.face_chips(img, (100, 50, 180, 130), None, sizes=(64, 64))
    assert not box_only.aligned and box_only.gender is box_only.age  # one chip for both nets
    assert box_only.quality.frontalness == 0.7 and box_only.quality.face_px == 80.0
    gray = align.face_chips(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (100, 50, 180, 130), lm)
    assert gray.age.ndim == 3 and gray.age.shape[2] == 3
