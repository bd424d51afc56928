"""Single-image analysis: ``analyze(image) -> Analysis``, shared by ``/analyze`` and ``batch``.

The same detector, chip alignment and attribute nets as the stream, with no tracking: every
confident face is classified once (one batched forward pass per net).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from streamer.config import Config
from streamer.core.detect import confident
from streamer.types import FaceResult


@dataclass(frozen=True)
class Analysis:
    faces: tuple[FaceResult, ...]
    timing_ms: dict = field(default_factory=dict)


class Analyzer:
    """``pair_detector``: a second landmark detector whose points also place each face's
    gender chip (``AttributeEstimator.pair_kind``; measured in the README's "Accuracy and
    honest uncertainty"). Built when the estimator has a pair kind and none is given; its
    faces are matched to the primary's by box overlap (IoU >= 0.5)."""

    def __init__(self, cfg: Config, detector=None, estimator=None, pair_detector=None):
        from streamer.runtime import wiring as app
        from streamer.core import attributes

        # Single images use their own detector (detector.image_kind): no frame budget here.
        d = cfg.detector
        cfg = dataclasses.replace(cfg, detector=dataclasses.replace(
            d, kind=d.image_kind, score_threshold=d.image_score_threshold,
            low_score_threshold=min(d.low_score_threshold, d.image_score_threshold)))
        self.cfg = cfg
        self.detector = detector or app.build_detector(cfg)
        self.estimator = estimator
        if self.estimator is None and cfg.attributes.enabled:
            nets = app.build_attribute_nets(cfg)
            self.estimator = attributes.AttributeEstimator(nets, cfg.attributes, detector_kind=cfg.detector.kind,
                                                            pair_kind=attributes.pair_for(nets, cfg.detector.kind))
        self.pair_detector = pair_detector
        pair = getattr(self.estimator, "pair_kind", None)
        if self.pair_detector is None and pair:
            self.pair_detector = app.build_detector(dataclasses.replace(
                cfg, detector=dataclasses.replace(cfg.detector, kind=pair)))

    def analyze(self, image: np.ndarray, conf: Optional[float] = None) -> Analysis:
        t0 = time.perf_counter()
        # A requested threshold below the detector's floor lowers the floor for this call.
        dets = confident(self.detector.detect(image) if conf is None else self.detector.detect(image, min_score=conf),
                         self.cfg.detector.score_threshold if conf is None else conf)
        t1 = time.perf_counter()
        attrs = []
        if self.estimator and dets:
            pair = None
            if self.pair_detector is not None and getattr(self.estimator, "pair_kind", None):
                from streamer.core.attributes import match_landmarks
                pair = match_landmarks(dets, confident(self.pair_detector.detect(image),
                                                       self.cfg.detector.score_threshold))
            attrs = self.estimator.classify(image, dets, pair) if pair else self.estimator.classify(image, dets)
        t2 = time.perf_counter()
        faces = tuple(FaceResult(d.box, d.score, attrs[i] if attrs else _none(), d.landmarks)
                      for i, d in enumerate(dets))
        return Analysis(faces, {"detect": round((t1 - t0) * 1000, 2),
                                "attributes": round((t2 - t1) * 1000, 2)})


def _none():
    from streamer.types import Attributes
    return Attributes(reason="attributes disabled")
