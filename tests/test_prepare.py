"""Work prepared on the capture thread (``Processor.prepare``) changes nothing the inference
stage produces: the real processor on a real clip gives the same people, boxes, answers and
events with the frame's detector input and scene-cut features made ahead as without them."""

import cv2
import pytest

from streamer import config
from streamer.core.processor import Prepared
from streamer.runtime import wiring
from streamer.types import Frame
from conftest import video_path

pytestmark = pytest.mark.models


def _frames(n=120):
    cap = cv2.VideoCapture(str(video_path("face_recognition__short_hamilton_clip.mp4")))
    out = []
    while len(out) < n:
        ok, img = cap.read()
        if not ok:
            break
        out.append(img)
    cap.release()
    return out


def _run(frames, prepare: bool, overrides=None):
    cfg = config.load(None, overrides or {})
    proc = wiring.build_processor(cfg)
    said = []
    made = 0
    for i, img in enumerate(frames):
        prepared = proc.prepare(img) if prepare else None
        made += prepared is not None
        p = proc.process(Frame(i, i / 25.0, i / 25.0, img, "media", prepared=prepared))
        said.append((p.faces, [(x.track.id, x.track.box, x.track.confirmed,
                                x.attributes and (x.attributes.gender, x.attributes.age))
                               for x in p.people],
                     [(e.type, e.ts, e.frame_id, sorted(e.payload.items(), key=str)) for e in p.events]))
    return said, made


def test_frames_prepared_ahead_give_what_the_inference_stage_gives_alone():
    frames = _frames()
    alone, _ = _run(frames, prepare=False)
    ahead, made = _run(frames, prepare=True)
    assert made == len(frames)
    assert sum(f for f, _, _ in alone) > 0, "the clip must show faces"
    assert ahead == alone


def test_with_a_detection_cadence_only_the_scene_features_are_made_ahead():
    frames = _frames(30)
    proc = wiring.build_processor(config.load(None, {"detector.interval": 2}))
    p = proc.prepare(frames[0])
    assert isinstance(p, Prepared) and p.detector_input is None and p.scene_features is not None
    alone, _ = _run(frames, False, {"detector.interval": 2})
    ahead, _ = _run(frames, True, {"detector.interval": 2})
    assert ahead == alone
