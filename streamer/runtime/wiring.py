"""Wiring: builds every stage from a Config. The CLI, the web server and the bench use this,
so the stream, ``/analyze`` and ``batch`` share one detection + alignment + attribute path."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from streamer.core import detect
from streamer.media import sources
from streamer.config import Config
from streamer.core.events import EventBuilder
from streamer.media.output import LatestJpeg, OutputStage, check_display
from streamer.runtime.deadline import in_background
from streamer.runtime.pipeline import Pipeline
from streamer.core.processor import Processor
from streamer.sinks.basic import JsonlSink, SinkSet, StdoutSink

log = logging.getLogger(__name__)


def models_dir(cfg: Config) -> Optional[Path]:
    return Path(cfg.models_dir) if cfg.models_dir else None


def configure_inference(cfg: Config, stream: bool = False) -> None:
    """The process's inference backend and threads (``inference.*``). Threads 0 (auto): a
    stream's nets get every core but one, since its capture thread keeps one busy decoding
    and preparing frames (measured at 1080p on 2 cores: 75 fps at 22 ms CPU per frame with
    1 thread, 71 fps at 27 ms with 2); elsewhere it keeps what the process already chose (a
    batch worker's share of the cores), else every core."""
    from streamer import inference
    i = cfg.inference
    threads = i.threads or (inference.backend.stream_threads() if stream else None)
    inference.configure(backend=i.backend, threads=threads, cache_dir=i.cache_dir)


def build_detector(cfg: Config, stream: bool = False):
    configure_inference(cfg, stream)
    return detect.build(cfg.detector, models_dir(cfg))


def build_attribute_nets(cfg: Config):
    from streamer.core import attributes
    configure_inference(cfg)
    return attributes.build_nets(cfg.attributes, models_dir(cfg))


def build_processor(cfg: Config, detector=None, nets=None) -> Processor:
    from streamer.core import scenecut, track

    detector = detector or build_detector(cfg)
    attrs = None
    if cfg.attributes.enabled:
        from streamer.core import attributes
        attrs = attributes.TrackAttributes(nets or build_attribute_nets(cfg), cfg.attributes,
                                            detector_kind=cfg.detector.kind)
    cut = scenecut.SceneCutDetector(cfg.tracker.scene_cut_threshold) if cfg.tracker.scene_cut_threshold > 0 else None
    from streamer.media.sources import is_live_uri
    # Files and folders carry their own time (media/mediaclock.py); live sources the wall clock.
    events = EventBuilder(cfg.camera, cfg.events, clock="wall" if is_live_uri(cfg.source.uri) else "media")
    counter = None
    if cfg.counting.lines or cfg.counting.zones or cfg.mqtt.enabled:
        from streamer.core import counting
        from streamer.media import count_state
        counter = counting.Counter(cfg.counting, cfg.camera, make_event=events.make,
                                   state=count_state.for_camera(cfg.counting.state_dir, cfg.camera))
    from streamer.core import cadence
    return Processor(detector, track.Tracker(cfg.tracker, high_score=cfg.detector.score_threshold),
                     events, attrs, cut, counter,
                     cadence.build(cfg.detector.interval, cfg.detector.motion_gate))


def build_sinks(cfg: Config, extra=()) -> SinkSet:
    sinks = []
    if cfg.events.jsonl:
        sinks.append(JsonlSink(cfg.events.jsonl))
    if cfg.events.stdout:
        sinks.append(StdoutSink())
    if cfg.mqtt.enabled:
        from streamer.sinks import mqtt
        # The counting lines, so Home Assistant discovery can announce their sensors at once.
        sinks.append(mqtt.MqttSink(cfg.mqtt, cfg.camera, lines=[l.name for l in cfg.counting.lines]))
    sinks.extend(extra)
    return SinkSet(sinks)


def build_pipeline(cfg: Config, mjpeg: Optional[LatestJpeg] = None, on_result=None,
                   extra_sinks=()) -> Pipeline:
    """Open the source and load models first, so bad input fails before any thread starts.
    ``extra_sinks`` join the configured ones (the site runner's channel to its parent)."""
    from streamer.core.track import Tracker

    if cfg.output.display:
        check_display()
    preload = in_background(Tracker.warm_up)
    source = sources.open_source(cfg.source)
    # The detector is compiled for the source's frame size beside the attribute nets' loading,
    # so the first frame does not pay for it (see detectors.prepare).
    detector = build_detector(cfg, stream=True)
    warm = in_background(lambda: detect.prepare(detector, source.size))
    processor = build_processor(cfg, detector=detector)
    warm.join(10.0)
    preload.join(10.0)
    from streamer.media import overlay
    lines = overlay.Geometry.of_counting(cfg.counting, source.size) if processor.counter is not None else ()
    output = OutputStage(cfg.output.video, source.fps or 25.0, cfg.output.display, mjpeg, lines)
    try:
        sinks = build_sinks(cfg, extra_sinks)
    except Exception:
        output.close()
        raise
    return Pipeline(cfg, source, processor, sinks, output, on_result)


BUILD_DEADLINE_S = 900.0  # start-up (open + model load) that takes longer than this is a fault


def build_pipeline_unless_stopped(cfg: Config, stop, **kw) -> Optional[Pipeline]:
    """``build_pipeline`` on a helper thread, so the caller's (main) thread stays free to run
    signal handlers while the first open of a live source or the model loading blocks inside
    cv2. Returns the pipeline, or None soon (<= 0.1 s) after ``stop`` (a threading.Event) is
    set: the helper, possibly stuck in an FFmpeg open, is abandoned (a daemon; the process exits
    without it; nothing has been accepted yet, so nothing is lost). Build errors (SourceError,
    ModelError, ...) are raised here, in the caller's thread."""
    from streamer.errors import StreamerError
    from streamer.runtime.deadline import CallTimeout, DeadlineCaller

    caller = DeadlineCaller("build")
    try:
        return caller.call(lambda: build_pipeline(cfg, **kw), BUILD_DEADLINE_S, stop)
    except CallTimeout:
        if stop.is_set():
            return None
        raise StreamerError(f"start-up did not finish within {BUILD_DEADLINE_S:g} s") from None
    finally:
        caller.close()
