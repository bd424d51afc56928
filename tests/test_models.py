"""Model verification and loading. Marked `models`: also run on the other OpenCV major."""

import shutil

import cv2
import pytest

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


def test_fetch_refuses_a_bad_mirror_copy(copy_dir, tmp_path_factory):
    (copy_dir / "gender-v1.onnx").write_bytes(b"not a model")
    dest = tmp_path_factory.mktemp("fresh")
    # The mirror copy fails verification and the public source is unreachable offline (or
    # gives the right file): either way no unverified file is left behind.
    modelstore.fetch(dest, mirror=copy_dir, names=["gender-v1.onnx"], log=lambda *_: None)
    p = dest / "gender-v1.onnx"
    if p.exists():
        modelstore.verify(["gender-v1.onnx"], dest)
    assert not (dest / "gender-v1.onnx.part").exists()


def test_yunet_and_ssd_tf_load_and_detect_on_every_opencv():
    import numpy as np

    img = np.full((360, 640, 3), 127, np.uint8)
    for kind in ("yunet", "ssd_tf"):
        d = detect.build(DetectorConfig(kind=kind))
        assert d.detect(img) == []


def test_ssd_caffe_loads_on_opencv4_and_fails_clearly_on_5():
    if detect.caffe_supported():
        d = detect.build(DetectorConfig(kind="ssd_caffe"))
        import numpy as np
        assert d.detect(np.zeros((300, 300, 3), np.uint8)) == []
    else:
        with pytest.raises(ModelError) as e:
            detect.build(DetectorConfig(kind="ssd_caffe"))
        msg = str(e.value)
        assert "Caffe" in msg and "ssd_tf" in msg and "\n" not in msg
