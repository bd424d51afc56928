"""Work prepared on the capture thread (``Processor.prepare``, for the frames read while the
inference stage has a backlog) changes nothing the inference stage produces: the real processor on a real clip gives the same people, boxes, answers and
events with the frame's detector input and scene-cut features made ahead as without them."""

import threading

import cv2
import pytest

from streamer import config
from streamer.core.processor import Prepared
from streamer.runtime import wiring
from streamer.runtime.capture import CaptureStage
from streamer.runtime.queues import EOS, BoundedQueue
from streamer.types import Frame
from conftest import video_path
from helpers.pipeline_fakes import FakeSource

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


def _run(frames, prepare, overrides=None):
    """``prepare``: True, False, or a predicate on the frame index (the capture thread
    prepares only the frames read while inference has a backlog)."""
    cfg = config.load(None, overrides or {})
    proc = wiring.build_processor(cfg)
    said = []
    made = 0
    for i, img in enumerate(frames):
        ahead = prepare(i) if callable(prepare) else prepare
        prepared = proc.prepare(img) if ahead else None
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


def test_a_stream_with_some_frames_prepared_ahead_gives_the_same():
    frames = _frames()
    alone, _ = _run(frames, prepare=False)
    mixed, made = _run(frames, prepare=lambda i: (i // 7) % 2 == 0)
    assert 0 < made < len(frames)
    assert mixed == alone


def test_the_capture_thread_prepares_only_while_inference_has_a_backlog():
    """No consumer: the first frame meets an empty queue (inference waiting: the capture
    thread is the bound, the frame goes as read); every later one finds frames waiting."""
    calls = []
    frames = BoundedQueue(10, drop_oldest=False)
    cap = CaptureStage(config.load(None, {}), FakeSource(n=5), frames, threading.Event(),
                       prepare=lambda img: calls.append(img.shape) or "made")
    cap.run()
    got = [frames.get(0.1) for _ in range(6)]
    assert got[-1] is EOS
    assert [f.prepared for f in got[:-1]] == [None, "made", "made", "made", "made"]
    assert cap.prepared == len(calls) == 4


def test_with_a_detection_cadence_only_the_scene_features_are_made_ahead():
    frames = _frames(30)
    proc = wiring.build_processor(config.load(None, {"detector.interval": 2}))
    p = proc.prepare(frames[0])
    assert isinstance(p, Prepared) and p.detector_input is None and p.scene_features is not None
    alone, _ = _run(frames, False, {"detector.interval": 2})
    ahead, _ = _run(frames, True, {"detector.interval": 2})
    assert ahead == alone
