"""Face detection: ``detect(image) -> list[Detection]`` in full-frame pixels.

The detectors live in ``streamer.core.detectors`` (yunet, centerface, ssd); this module keeps
the names the rest of the program imports.
"""

from __future__ import annotations

from streamer.core.detectors import (  # noqa: F401
    STRIDE as YUNET_STRIDE, Detector, build, clip_box as _clip_box, confident, downscale as _downscale,
    prepare)
from streamer.core.detectors.centerface import MODEL as CENTERFACE  # noqa: F401
from streamer.core.detectors.ssd import SSD_CAFFE, SSD_TF, SsdDetector, caffe_supported  # noqa: F401
from streamer.core.detectors.yunet import MODEL as YUNET, YuNetDetector  # noqa: F401
