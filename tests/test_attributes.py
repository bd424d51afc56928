"""Attributes: chip geometry, the per-track policy (with a fake net), and the model sets.

Policy tests drive ``TrackAttributes`` with scripted tracks on a synthetic textured frame and
a counting fake ``AttributeNets``; only tests marked ``models`` load real weights.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.core import align, attributes
from streamer.core.attributes import (LOOK_AGAIN_FRAMES, DLIB_AGES, LH_AGES, AttributeEstimator, DlibNets, LeviHassnerNets,
                                 TrackAttributes, summarize)
from streamer.config import AttributesConfig
from streamer.errors import ModelError
from streamer.types import Detection, Track

CAFFE = hasattr(cv2.dnn, "readNetFromCaffe")


# ---- helpers --------------------------------------------------------------------------------

def textured_frame(h=480, w=640, seed=0) -> np.ndarray:
    """Sharp, face-agnostic texture: every chip cut from it passes the sharpness gate."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(img, (0, 0), 0.8)


def landmarks_for(box, yaw=0.0):
    """YuNet-style points placed by the template inside ``box`` (optionally nose shifted)."""
    x1, y1, x2, y2 = box
    # Invert the SSD-style box placement: good enough to get a chip of the right size.
    M = align.box_transform(box, 64)
    Minv = cv2.invertAffineTransform(M)
    pts = align.TEMPLATE * 63
    img_pts = pts @ Minv[:, :2].T + Minv[:, 2]
    if yaw:
        iod = np.linalg.norm(img_pts[1] - img_pts[0])
        img_pts[2, 0] += yaw * iod
    return tuple((float(x), float(y)) for x, y in img_pts)


def track(tid, box, *, confirmed=True, misses=0, frame=0, landmarks="auto"):
    lm = landmarks_for(box) if landmarks == "auto" else landmarks
    return Track(id=tid, box=tuple(float(v) for v in box), score=0.9, confirmed=confirmed,
                 hits=5, misses=misses, first_frame=0, last_frame=frame,
                 landmarks=None if misses else lm)


def box_at(x, y, size):
    return (x, y, x + size, y + size)


class FakeNets:
    """Counts calls; answers ``p_male`` and a sharp age distribution at ``age`` for every chip."""

    chip_sizes = (64, 32)
    chip_padding = 0.2
    ages = DLIB_AGES

    def __init__(self, p_male=0.9, age=30):
        self.p_male, self.age = p_male, age
        self.calls = 0
        self.batches: list[int] = []

    def forward(self, age_chips, gender_chips):
        assert age_chips.shape[1:] == (64, 64, 3) and gender_chips.shape[1:] == (32, 32, 3)
        assert len(age_chips) == len(gender_chips)
        self.calls += 1
        self.batches.append(len(age_chips))
        n = len(age_chips)
        pa = np.zeros((n, 81), np.float32)
        pa[:, self.age] = 1.0
        pg = np.tile(np.array([1 - self.p_male, self.p_male], np.float32), (n, 1))
        return pa, pg


def make(cfg=None, **kw):
    """Fake nets and the track policy with the identity calibration: these tests are about
    averaging probabilities (test_calibration.py covers the calibrated answer)."""
    nets = FakeNets(**kw)
    return nets, TrackAttributes(nets, cfg or AttributesConfig(), calibration=attributes.IDENTITY)


# ---- align ----------------------------------------------------------------------------------

def test_template_landmarks_map_onto_the_template():
    lm = landmarks_for(box_at(100, 80, 120))
    M = align.chip_transform(lm, 64)
    got = np.asarray(lm) @ M[:, :2].T + M[:, 2]
    np.testing.assert_allclose(got, align.TEMPLATE * 63, atol=1e-6)


def test_similarity_recovers_rotation_and_scale():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (5, 2))
    a = 0.7 * np.exp(1j * 0.4)
    A = np.array([[a.real, -a.imag], [a.imag, a.real]])
    dst = src @ A.T + (3.0, -2.0)
    M = align._similarity(src, dst, np.ones(5))
    np.testing.assert_allclose(M[:, :2], A, atol=1e-9)
    np.testing.assert_allclose(M[:, 2], (3.0, -2.0), atol=1e-9)


# sha256 of dlib 20.0.1's extract_image_chip(img, chip_details(drectangle(*rect), chip_dims(n, n),
# angle)) for the image of _dlib_test_image(): warp_chip must give the same bytes.
DLIB_CHIPS = [
    ((40.3, 30.7, 250.2, 240.6), 0.2, 64, "98950ae15339a1b76242bd457fbfbe95c8511330d0c8fd0662e01e0834594162"),
    ((100.5, 60.25, 180.75, 140.5), -0.35, 32, "bfd611bfe4d931b20a1f5a5bb8a43882f6304e9cc81eadc22dfa06c0c1f77912"),
    ((-30.0, 100.0, 90.0, 220.0), 0.1, 64, "56b784464c429f8b412ad8da0880dd2a80fe5b5b1bfe879063fa56a314e52766"),
    ((150.0, 100.0, 165.0, 115.0), 0.05, 64, "af1c85cb6375f78458be6384bdbd7052b56badd3d51bd8cd8c6c02aba2a1e650"),
]


def _dlib_test_image() -> np.ndarray:
    # numpy only (no OpenCV filtering), so the bytes are the same on every OpenCV version
    base = np.random.default_rng(7).integers(0, 256, (240, 320, 3)).astype(np.int32)
    return ((base + np.roll(base, 1, 0) + np.roll(base, 1, 1)
             + np.roll(np.roll(base, 1, 0), 1, 1)) // 4).astype(np.uint8)


def _dlib_mapping(rect, angle, n):
    """dlib's get_mapping_to_chip: rect corners (rotated about its centre) -> chip 0 / n-1."""
    l, t, r, b = rect
    c = np.array([(l + r) / 2, (t + b) / 2])
    R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = np.array([R @ (np.array(p) - c) + c for p in [(l, t), (r, t), (r, b)]])
    return np.linalg.solve(np.c_[src, np.ones(3)], np.array([(0, 0), (n - 1, 0), (n - 1, n - 1)], float)).T


@pytest.mark.parametrize("rect, angle, n, sha", DLIB_CHIPS)
def test_warp_chip_reproduces_dlib_byte_for_byte(rect, angle, n, sha):
    import hashlib
    chip = align.warp_chip(_dlib_test_image(), _dlib_mapping(rect, angle, n), n)
    assert chip.shape == (n, n, 3)
    assert hashlib.sha256(chip.tobytes()).hexdigest() == sha


def test_pyramid_matches_dlib_layout():
    img = np.arange(41 * 37, dtype=np.float64).reshape(41, 37) % 251
    down = align._pyr_down(img.astype(np.uint8))
    assert down.shape == ((41 - 3) // 2, (37 - 3) // 2)
    k = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])
    src = img.astype(np.uint8).astype(np.int64)
    assert down[3, 5] == (src[6:11, 10:15] * k).sum() // 256  # centred on (2r + 2, 2c + 2)


def test_warp_chip_at_one_to_one_copies_pixels():
    img = textured_frame(200, 200)
    M = np.array([[1.0, 0.0, -50.0], [0.0, 1.0, -60.0]])
    chip = align.warp_chip(img, M, 64)
    np.testing.assert_array_equal(chip, img[60:124, 50:114])


def test_warp_chip_antialiases_large_faces():
    # A 1-px checkerboard shrunk 8x must average to grey, not alias into stripes.
    img = (np.indices((512, 512)).sum(0) % 2 * 255).astype(np.uint8)
    img = cv2.merge([img, img, img])
    M = np.array([[1 / 8, 0.0, 0.0], [0.0, 1 / 8, 0.0]])
    chip = align.warp_chip(img, M, 64)
    assert abs(float(chip[4:-4, 4:-4].mean()) - 127.5) < 3
    assert float(chip[4:-4, 4:-4].std()) < 6


def test_warp_chip_outside_the_frame_is_black():
    img = textured_frame(100, 100)
    M = np.array([[1.0, 0.0, 500.0], [0.0, 1.0, 500.0]])
    assert not align.warp_chip(img, M, 32).any()


@pytest.mark.parametrize("yaw, low, high", [(0.0, 0.99, 1.0), (0.15, 0.8, 0.95), (0.5, 0.0, 0.4)])
def test_frontalness_falls_with_yaw(yaw, low, high):
    f = align.frontalness(landmarks_for(box_at(100, 100, 100), yaw=yaw))
    assert low <= f <= high


def test_sharpness_separates_blur():
    img = textured_frame()
    lm = landmarks_for(box_at(200, 150, 100))
    sharp = align.face_chips(img, box_at(200, 150, 100), lm).quality.sharpness
    blurred = align.face_chips(cv2.GaussianBlur(img, (0, 0), 6), box_at(200, 150, 100), lm).quality.sharpness
    assert blurred < 15 < sharp


def test_box_only_chip_is_centred_on_the_box():
    img = np.zeros((300, 300, 3), np.uint8)
    cv2.circle(img, (150, 150), 40, (255, 255, 255), -1)
    chips = align.face_chips(img, (100.0, 100.0, 200.0, 200.0), None)
    assert not chips.aligned
    m = cv2.moments(cv2.cvtColor(chips.age, cv2.COLOR_BGR2GRAY))
    assert abs(m["m10"] / m["m00"] - 31.5) < 1.5 and abs(m["m01"] / m["m00"] - 31.5) < 2.5


# ---- summarize ------------------------------------------------------------------------------

def test_summarize_reads_the_distribution():
    pa = np.zeros(81)
    pa[[28, 30, 32]] = (0.25, 0.5, 0.25)
    a = summarize(pa, np.array([0.2, 0.8]), DLIB_AGES, samples=3)
    assert (a.gender, a.gender_confidence, a.samples) == ("male", 0.8, 3)
    assert a.age == 30.0
    assert 27.5 <= a.age_low < 30 < a.age_high <= 32.5
    assert a.age_confidence == pytest.approx(1.0)
    assert a.known and a.reason is None


def test_summarize_levi_hassner_buckets():
    pa = np.zeros(8)
    pa[4] = 1.0  # (25-32)
    a = summarize(pa, np.array([0.9, 0.1]), LH_AGES, samples=1)
    assert a.gender == "female" and a.age == 28.5
    assert 22.5 <= a.age_low < a.age_high <= 35.0


# ---- single image ---------------------------------------------------------------------------

def test_classify_batches_all_faces_of_an_image_in_one_call():
    nets = FakeNets()
    est = AttributeEstimator(nets, AttributesConfig())
    img = textured_frame()
    faces = [Detection(box_at(20 + 150 * i, 100, 100), 0.9, landmarks_for(box_at(20 + 150 * i, 100, 100)))
             for i in range(4)] + [Detection(box_at(10, 400, 20), 0.9, None)]
    out = est.classify(img, faces)
    assert nets.calls == 1 and nets.batches == [8]  # 4 faces + 4 mirrors
    assert [a.gender for a in out[:4]] == ["male"] * 4
    assert out[4].gender is None and "too small (20 px < 36 px)" in out[4].reason
    assert est.faces_classified == 4 and est.forward_calls == 1


def test_flip_average_off_sends_one_chip_per_face():
    nets = FakeNets()
    est = AttributeEstimator(nets, AttributesConfig(flip_average=False))
    est.classify(textured_frame(), [Detection(box_at(100, 100, 100), 0.9, landmarks_for(box_at(100, 100, 100)))])
    assert nets.batches == [1]


def test_flip_average_mirrors_the_chip():
    seen = []

    class Spy(FakeNets):
        def forward(self, a, g):
            seen.append(a.copy())
            return super().forward(a, g)

    est = AttributeEstimator(Spy(), AttributesConfig())
    est.classify(textured_frame(), [Detection(box_at(100, 100, 100), 0.9, landmarks_for(box_at(100, 100, 100)))])
    np.testing.assert_array_equal(seen[0][1], seen[0][0][:, ::-1])


# ---- per-track policy -----------------------------------------------------------------------

def test_classifies_on_confirm_not_before():
    nets, ta = make()
    img, b = textured_frame(), box_at(100, 100, 100)
    out = ta.estimate(img, [track(1, b, confirmed=False)], 0)
    assert nets.calls == 0 and out[1].reason == "track not confirmed yet"
    out = ta.estimate(img, [track(1, b)], 1)
    assert nets.calls == 1 and out[1].gender == "male" and out[1].samples == 1


@pytest.mark.parametrize("every", [1, 5, 15])
def test_not_again_before_reclassify_every(every):
    nets, ta = make(AttributesConfig(reclassify_every=every))
    img, b = textured_frame(), box_at(100, 100, 100)
    calls_at = []
    for f in range(0, 3 * every + 1):
        before = nets.calls
        ta.estimate(img, [track(1, b, frame=f)], f)
        if nets.calls > before:
            calls_at.append(f)
    assert calls_at == list(range(0, 3 * every + 1, every))


def test_missed_frames_are_not_classified():
    nets, ta = make(AttributesConfig(reclassify_every=2))
    img, b = textured_frame(), box_at(100, 100, 100)
    ta.estimate(img, [track(1, b)], 0)
    out = ta.estimate(img, [track(1, b, misses=1)], 2)
    assert nets.calls == 1 and out[1].known  # keeps its answer while coasting


def test_better_view_triggers_early_reclassification():
    nets, ta = make(AttributesConfig(reclassify_every=100, better_view_ratio=1.25))
    img = textured_frame()
    ta.estimate(img, [track(1, box_at(100, 100, 40))], 0)  # size term 40/64
    ta.estimate(img, [track(1, box_at(100, 100, 44))], 1)  # 10% better: not enough
    assert nets.calls == 1
    out = ta.estimate(img, [track(1, box_at(100, 100, 80))], 2)  # 1.6x: clearly better
    assert nets.calls == 2 and out[1].samples == 2
    ta.estimate(img, [track(1, box_at(100, 100, 90))], 3)  # already saturated: no gain possible
    assert nets.calls == 2


@pytest.mark.parametrize("image, size, reason", [
    ("sharp", 30, "face too small (30 px < 36 px)"),
    ("blurred", 100, "face too blurred or dark"),
    ("dark", 100, "face too blurred or dark"),
])
def test_bad_views_are_skipped_with_a_reason(image, size, reason):
    nets, ta = make()
    img = {"sharp": textured_frame(), "blurred": cv2.GaussianBlur(textured_frame(), (0, 0), 6),
           "dark": (textured_frame() // 40).astype(np.uint8)}[image]
    out = ta.estimate(img, [track(1, box_at(100, 100, size))], 0)
    assert nets.calls == 0
    assert out[1].gender is None and out[1].age is None and out[1].reason.startswith(reason)
    # ... until a good view arrives. A rejected chip (blur) makes the track wait a few frames
    # before the next look; a box too small costs no chip and no wait.
    wait = 0 if image == "sharp" else LOOK_AGAIN_FRAMES
    for f in range(1, wait + 1):
        out = ta.estimate(textured_frame(), [track(1, box_at(100, 100, 100))], f)
        assert nets.calls == (1 if f >= wait else 0)
    if wait == 0:
        out = ta.estimate(textured_frame(), [track(1, box_at(100, 100, 100))], 1)
    assert nets.calls == 1 and out[1].known and out[1].reason is None


def test_a_view_that_stays_blurred_is_not_cut_every_frame(monkeypatch):
    nets, ta = make()
    cuts = []
    real = attributes.align.face_chips
    monkeypatch.setattr(attributes.align, "face_chips", lambda *a, **k: cuts.append(1) or real(*a, **k))
    blurred = cv2.GaussianBlur(textured_frame(), (0, 0), 6)
    for f in range(20):
        ta.estimate(blurred, [track(1, box_at(100, 100, 100))], f)
    assert nets.calls == 0 and len(cuts) == 20 // LOOK_AGAIN_FRAMES


def test_a_bad_view_keeps_the_answer():
    nets, ta = make()
    ta.estimate(textured_frame(), [track(1, box_at(100, 100, 100))], 0)
    out = ta.estimate(textured_frame(), [track(1, box_at(100, 100, 20))], 50)
    assert out[1].known and out[1].samples == 1


def test_one_forward_per_frame_for_all_due_tracks():
    nets, ta = make()
    img = textured_frame()
    tracks = [track(i, box_at(10 + 120 * i, 100, 100)) for i in range(5)]
    out = ta.estimate(img, tracks, 0)
    assert nets.calls == 1 and nets.batches == [10]
    assert all(out[i].known for i in range(5))
    assert ta.calls == 5 and ta.forward_calls == 1


def test_cap_per_frame_serves_the_oldest_due_first():
    nets, ta = make(AttributesConfig(max_per_frame=2, reclassify_every=100))
    img = textured_frame()
    tracks = [track(i, box_at(10 + 120 * i, 100, 100)) for i in range(5)]
    out = ta.estimate(img, tracks[:3], 0)
    assert [out[i].known for i in range(3)] == [True, True, False]
    assert out[2].reason == "waiting for a classification slot"
    out = ta.estimate(img, tracks, 1)  # 2 has waited since frame 0; 3 and 4 are new
    assert [out[i].known for i in range(5)] == [True, True, True, True, False]
    out = ta.estimate(img, tracks, 2)
    assert all(out[i].known for i in range(5))
    assert nets.batches == [4, 4, 2]


def test_chips_are_cut_only_when_needed(monkeypatch):
    cut = []
    real = align.face_chips
    monkeypatch.setattr(attributes.align, "face_chips", lambda *a, **k: cut.append(1) or real(*a, **k))
    nets, ta = make(AttributesConfig(max_per_frame=2, reclassify_every=100))
    img = textured_frame()
    tracks = [track(i, box_at(10 + 120 * i, 100, 100)) for i in range(5)]
    ta.estimate(img, tracks, 0)
    assert len(cut) == 2  # the three waiting faces cost nothing
    ta.estimate(img, tracks, 1)
    ta.estimate(img, tracks, 2)
    assert len(cut) == 5
    ta.estimate(img, tracks, 3)  # all known, same views: the size/pose bound rules out a better one
    assert len(cut) == 5 and nets.calls == 3


def test_smoothing_keeps_a_settled_gender():
    nets, ta = make(AttributesConfig(reclassify_every=1))
    img, b = textured_frame(), box_at(100, 100, 100)
    for f in range(6):
        out = ta.estimate(img, [track(1, b)], f)
    assert out[1].gender == "male" and out[1].gender_confidence == pytest.approx(0.9)
    nets.p_male = 0.1  # one contrary view
    out = ta.estimate(img, [track(1, b)], 6)
    assert out[1].gender == "male" and out[1].samples == 7
    assert out[1].gender_confidence == pytest.approx((6 * 0.9 + 0.1) / 7, abs=1e-3)


def test_quality_weights_the_average():
    nets, ta = make(AttributesConfig(reclassify_every=1))
    img = textured_frame()
    nets.p_male = 0.1
    ta.estimate(img, [track(1, box_at(100, 100, 40))], 0)  # weak view: female
    nets.p_male = 0.9
    out = ta.estimate(img, [track(1, box_at(100, 100, 100))], 1)  # strong view: male
    assert out[1].gender == "male" and out[1].gender_confidence > 0.5 + 1e-3


def test_forget_drops_the_track():
    nets, ta = make()
    img, b = textured_frame(), box_at(100, 100, 100)
    ta.estimate(img, [track(1, b)], 0)
    ta.forget(1)
    out = ta.estimate(img, [track(1, b)], 1)
    assert nets.calls == 2 and out[1].samples == 1
    ta.forget(99)  # unknown ids are fine


def test_box_only_tracks_are_classified():
    nets, ta = make()
    out = ta.estimate(textured_frame(), [track(1, box_at(100, 100, 100), landmarks=None)], 0)
    assert nets.calls == 1 and out[1].known


# ---- model sets -----------------------------------------------------------------------------

class CountingNet:
    """Wraps a cv2.dnn.Net and counts forward calls."""

    def __init__(self, net):
        self.net, self.forwards, self.batches = net, 0, []

    def setInput(self, blob):
        self.batches.append(blob.shape[0])
        self.net.setInput(blob)

    def forward(self):
        self.forwards += 1
        return self.net.forward()


@pytest.mark.models
def test_dlib_nets_one_forward_per_net_per_frame():
    from streamer.media import modelstore
    age = CountingNet(cv2.dnn.readNet(str(modelstore.path_of(attributes.AGE_ONNX))))
    gender = CountingNet(cv2.dnn.readNet(str(modelstore.path_of(attributes.GENDER_ONNX))))
    ta = TrackAttributes(DlibNets(age_net=age, gender_net=gender), AttributesConfig())
    img = textured_frame()
    tracks = [track(i, box_at(10 + 120 * i, 100, 100)) for i in range(5)]
    out = ta.estimate(img, tracks, 0)
    assert (age.forwards, gender.forwards) == (1, 1) and age.batches == [10] and gender.batches == [10]
    assert all(out[i].gender in ("male", "female") for i in range(5))
    # The net's classes stop at 80; the dev-fitted age map may answer beyond (dev ages reach 110).
    assert all(0 <= out[i].age <= 110 for i in range(5))


@pytest.mark.models
def test_dlib_nets_batched_equals_one_by_one():
    nets = DlibNets()
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    g = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    pa, pg = nets.forward(a, g)
    assert pa.shape == (3, 81) and pg.shape == (3, 2)
    np.testing.assert_allclose(pa.sum(1), 1, atol=1e-4)
    for i in range(3):
        pa1, pg1 = nets.forward(a[i:i + 1], g[i:i + 1])
        np.testing.assert_allclose(pa1[0], pa[i], atol=1e-5)
        np.testing.assert_allclose(pg1[0], pg[i], atol=1e-5)


@pytest.mark.models
def test_dlib_nets_missing_file_names_it(tmp_path):
    with pytest.raises(ModelError, match="age-v1.onnx"):
        DlibNets(tmp_path)


# ---- Levi-Hassner: a tiny Caffe classifier written by hand ----------------------------------
# caffe.proto fields used: NetParameter.name=1, .layer=100; LayerParameter.name=1, .type=2,
# .blobs=7; BlobProto.data=5 (packed float), .shape=7; BlobShape.dim=1 (packed int64).

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:  # length-delimited (wire type 2)
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _blob(arr: np.ndarray) -> bytes:
    shape = _field(1, b"".join(_varint(d) for d in arr.shape))
    return _field(7, shape) + _field(5, struct.pack(f"<{arr.size}f", *arr.ravel().tolist()))


def _caffemodel(layers: list[tuple[str, str, list[np.ndarray]]]) -> bytes:
    body = _field(1, b"tiny")
    for name, kind, blobs in layers:
        layer = _field(1, name.encode()) + _field(2, kind.encode())
        layer += b"".join(_field(7, _blob(b)) for b in blobs)
        body += _field(100, layer)
    return body


def _deploy(n: int) -> str:
    return f"""name: "tiny"
input: "data"
input_shape {{ dim: 1 dim: 3 dim: 227 dim: 227 }}
layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool"
        pooling_param {{ pool: AVE global_pooling: true }} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
        inner_product_param {{ num_output: {n} }} }}
layer {{ name: "prob" type: "Softmax" bottom: "fc" top: "prob" }}
"""


def write_levi_hassner(folder: Path) -> None:
    """Age: bucket 4 (25-32) most likely; gender: [Male, Female] biased to Female."""
    age_bias = np.zeros(8, np.float32)
    age_bias[4] = 4.0
    for prefix, n, bias in (("age", 8, age_bias), ("gender", 2, np.array([0.0, 3.0], np.float32))):
        (folder / f"{prefix}_deploy.prototxt").write_text(_deploy(n))
        weights = np.zeros((n, 3), np.float32)
        (folder / f"{prefix}_net.caffemodel").write_bytes(_caffemodel([("fc", "InnerProduct", [weights, bias])]))


@pytest.mark.models
@pytest.mark.skipif(not CAFFE, reason=f"OpenCV {cv2.__version__} has no Caffe importer")
def test_levi_hassner_loads_and_runs(tmp_path):
    write_levi_hassner(tmp_path)
    nets = LeviHassnerNets(tmp_path)
    est = AttributeEstimator(nets, AttributesConfig())
    img = textured_frame()
    faces = [Detection(box_at(100, 100, 100), 0.9, landmarks_for(box_at(100, 100, 100))),
             Detection(box_at(300, 100, 100), 0.9, None)]
    out = est.classify(img, faces)
    female = float(np.exp(3) / (1 + np.exp(3)))
    for a in out:
        assert a.gender == "female" and a.gender_confidence == pytest.approx(female, abs=1e-3)
        assert 22.5 < a.age < 40 and a.age_low < a.age < a.age_high
    assert est.forward_calls == 1


@pytest.mark.models
@pytest.mark.skipif(CAFFE, reason="this OpenCV still reads Caffe")
def test_levi_hassner_on_opencv5_is_one_clear_line(tmp_path):
    write_levi_hassner(tmp_path)
    with pytest.raises(ModelError) as e:
        LeviHassnerNets(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "removed" in msg and "model_set: dlib" in msg and "opencv-python<5" in msg


@pytest.mark.models
@pytest.mark.parametrize("missing", ["age_deploy.prototxt", "age_net.caffemodel",
                                     "gender_deploy.prototxt", "gender_net.caffemodel"])
def test_levi_hassner_missing_file(tmp_path, missing):
    write_levi_hassner(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(ModelError) as e:
        LeviHassnerNets(tmp_path)
    # On OpenCV 5 the importer is gone, which is the more useful thing to say first.
    assert (missing in str(e.value)) if CAFFE else ("Caffe" in str(e.value))


@pytest.mark.models
@pytest.mark.skipif(not CAFFE, reason=f"OpenCV {cv2.__version__} has no Caffe importer")
def test_levi_hassner_corrupt_file(tmp_path):
    write_levi_hassner(tmp_path)
    (tmp_path / "gender_net.caffemodel").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match="gender_net.caffemodel"):
        LeviHassnerNets(tmp_path)


def test_build_nets_picks_the_configured_set(tmp_path):
    with pytest.raises(ModelError):
        attributes.build_nets(AttributesConfig(model_set="levi_hassner"), tmp_path)
