"""The inference stage as a plain object: ``process(frame) -> Processed`` (no threads here).

Per frame: detect on every frame -> scene-cut check -> track -> attributes for the tracks that
are due -> lifecycle events (+ counting events when configured). A scene cut or a source outage
ends every track, so an id is never handed to a different face across a cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from streamer.types import Attributes, Event, Frame, Person


@dataclass(frozen=True)
class Processed:
    """What one frame produced: the people tracked in it (confirmed or not), its events."""

    people: tuple[Person, ...]
    events: tuple[Event, ...]
    faces: int  # detections at or above the detector's confidence threshold
    counts: dict = field(default_factory=dict)
    zones: dict = field(default_factory=dict)  # zone -> people inside now (overlay)


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

    def process(self, frame: Frame) -> Processed:
        image = frame.image
        run = self.cadence is None or self.cadence.due(image, self.tracker.live)
        dets = self.detector.detect(image) if run else []
        events: list[Event] = []
        if self.scenecut is not None and self.scenecut.is_cut(image):
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
