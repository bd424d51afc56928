"""Detection accuracy floors on the labelled dev photos (facebox), through the product's
detectors and the bench's own scorer (``bench.accuracy.eval_detection``: VOC AP50, faces under
20 px scored apart). Floors sit below the measured values (README "Detectors") but high
enough that a wrong channel order, a broken decode or a lost landmark order fails them.
"""

import pytest

from bench.accuracy import eval_detection
from conftest import data_path
from streamer import config

pytestmark = pytest.mark.slow

# measured (python run.py bench --only detectors): centerface 0.927 / 1.0, yunet 0.813 / 0.967
FLOORS = {("centerface", "face_mask_dev"): 0.90, ("centerface", "dlib_faces"): 0.97,
          ("yunet", "face_mask_dev"): 0.79, ("yunet", "dlib_faces"): 0.94}


def test_the_single_image_default_is_centerface():
    assert config.load().detector.image_kind == "centerface"


@pytest.mark.parametrize("kind,subset", sorted(FLOORS))
def test_ap50_floor(kind, subset):
    r = eval_detection(data_path("facebox", subset), kind)
    assert r["ap50"] >= FLOORS[(kind, subset)], r
    assert r["recall"] <= 1 and r["precision"] <= 1
