"""The inference stage as a plain object: ``process(frame) -> Processed`` (no threads here).

Per frame: detect on every frame -> scene-cut check -> track -> attributes for the tracks that
are due -> lifecycle events (+ counting events when configured). A scene cut or a source outage
ends every track, so an id is never handed to a different face across a cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from streamer.core.scenecut import features as scene_features
from streamer.types import Attributes, Event, Frame, Person


@dataclass(frozen=True)
class Processed:
    """What one frame produced: the people tracked in it (confirmed or not), its events."""

    people: tuple[Person, ...]
    events: tuple[Event, ...]
    faces: int  # detections at or above the detector's confidence threshold
    counts: dict = field(default_factory=dict)
    zones: dict = field(default_factory=dict)  # zone -> people inside now (overlay)


@dataclass(frozen=True)
class Prepared:
    """What ``Processor.prepare`` derives from a frame's image alone."""

    detector_input: Optional[object] = None  # detectors.DetectorInput
    scene_features: Optional[tuple] = None  # scenecut.features


class Processor:
    def __init__(self, detector, tracker, events, attributes=None, scenecut=None, counter=None,
                 cadence=None):
        self.detector = detector
        self.tracker = tracker
        self.events = events
        self.attributes = attributes
        self.scenecut = scenecut
        self.cadence = cadence  # None: detect every frame (core/cadence.py)
        self.counter = counter
        self.attr_calls = 0  # faces sent through the attribute nets
        self.scene_cuts = 0
        self._attrs: dict[int, Attributes] = {}

    def _end_all(self, ts: float, frame_id: int) -> list[Event]:
        out = self.events.end_all(ts, frame_id)
        self.tracker.reset()
        if self.attributes is not None:
            for tid in list(self._attrs):
                self.attributes.forget(tid)
        if self.counter is not None:
            self.counter.reset_tracks()
        self._attrs.clear()
        return out

    def prepare(self, image) -> Optional[Prepared]:
        """The part of a frame's work that depends on the image alone (the detector's
        downscaled input, the scene-cut features), for the pipeline to run on the capture
        thread while this stage works on the previous frame: it takes ~2.5 ms per 1080p frame
        off the inference thread, the one that bounds a stream's fps. None when there is
        nothing to prepare. With a detection cadence the detector's input is left to
        ``process`` (most frames would not use it)."""
        make = getattr(self.detector, "prepare_input", None)
        det = make(image) if make is not None and self.cadence is None else None
        scene = None
        if self.scenecut is not None and self.scenecut.threshold:
            scene = scene_features(image)
        return Prepared(det, scene) if det is not None or scene is not None else None

    def process(self, frame: Frame) -> Processed:
        image = frame.image
        prep = frame.prepared if isinstance(frame.prepared, Prepared) else Prepared()
        run = self.cadence is None or self.cadence.due(image, self.tracker.live)
        if not run:
            dets = []
        elif prep.detector_input is not None:
            dets = self.detector.detect(image, prepared=prep.detector_input)
        else:
            dets = self.detector.detect(image)
        events: list[Event] = []
        if self.scenecut is not None and self.scenecut.is_cut(image, prep.scene_features):
            self.scene_cuts += 1
            events += self._end_all(frame.ts, frame.id)
        # A frame the cadence skips moves every track to its prediction (no miss counted).
        tracks = self.tracker.update(dets, frame.id) if run else self.tracker.predict(frame.id)
        if self.attributes is not None:
            before = self.attributes.calls
            self._attrs.update(self.attributes.estimate(image, tracks, frame.id))
            self.attr_calls += self.attributes.calls - before
        alive = {t.id for t in tracks}
        for tid in [i for i in self._attrs if i not in alive]:
            self._attrs.pop(tid)
            if self.attributes is not None:
                self.attributes.forget(tid)
        people = tuple(Person(t, self._attrs.get(t.id)) for t in tracks)
        events += self.events.update(people, frame.ts, frame.id)
        counts, zones = {}, {}
        if self.counter is not None:
            events += self.counter.update(people, frame)
            counts = self.counter.counts()
            zones = self.counter.snapshot()["zones"]
        faces = (sum(1 for d in dets if d.score >= self.detector.score_threshold) if run
                 else sum(1 for t in tracks if t.confirmed))
        return Processed(people, tuple(events), faces, counts, zones)

    def outage(self, ts: float, frame_id: int) -> list[Event]:
        """The source went down: end every track cleanly; the next frame starts a new scene."""
        if self.scenecut is not None:
            self.scenecut.reset()
        if self.cadence is not None:
            self.cadence.reset()
        return self._end_all(ts, frame_id)

    def finish(self, ts: float, frame_id: int) -> list[Event]:
        """End of run: final ``end`` events (and the counter's last summary)."""
        out = self._end_all(ts, frame_id)
        if self.counter is not None:
            out += self.counter.finish(ts, frame_id)
        return out

    def tick(self, ts: float, frame_id: int) -> list[Event]:
        """Time-driven events (periodic summaries) even when no frame arrives."""
        return self.counter.tick(ts, frame_id) if self.counter is not None else []
