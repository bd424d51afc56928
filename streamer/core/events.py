"""Per-person events as a pure lifecycle diff: ``update(...) -> list[Event]``.

Contract: call ``update`` once per processed frame with the tracker's tracks and the current
per-track attributes. It emits
- ``start``  when a track is confirmed (once per track),
- ``update`` when its attributes settle (first known answer) or change materially (gender label
  flips, or the age moves by ``age_change_years``), at most once per ``update_min_interval_s``,
- ``end``    when a started track disappears from the tracker output (or ``end_all`` is called
  at a scene cut, an outage or shutdown), with final attributes and dwell time.
Tentative tracks that die before confirmation emit nothing. Event ids are ``<run>-<seq>``:
unique across restarts, so an at-least-once consumer can deduplicate on them.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Optional, Sequence

from streamer.config import EventsConfig
from streamer.timefmt import iso_ms
from streamer.types import Attributes, Event, Person


def attributes_payload(a: Optional[Attributes]) -> dict:
    """The ``gender``/``age`` part of an event (also used by the web API's JSON)."""
    if a is None or not a.known:
        return {"gender": None, "age": None,
                "attributes_reason": (a.reason if a else None) or "not classified yet"}
    return {
        "gender": {"label": a.gender, "confidence": round(a.gender_confidence, 3)},
        "age": {"years": round(a.age, 1), "low": round(a.age_low, 1), "high": round(a.age_high, 1),
                "range": f"{int(round(a.age_low))}-{int(round(a.age_high))}",
                "confidence": None if a.age_confidence is None else round(a.age_confidence, 3)},
        "attributes_reason": None,
    }


@dataclass
class _TrackLifecycle:
    """What the builder remembers of one track between frames: when it was first seen,
    whether its ``start`` went out, the attributes last reported (a change is an ``update``)
    and its last box and score (for the ``end`` event)."""

    first_ts: float
    first_frame: int
    started: bool = False
    last_update_ts: float = 0.0
    reported: Optional[Attributes] = None
    last_box: tuple = (0, 0, 0, 0)
    last_score: float = 0.0
    last_seen_ts: Optional[float] = None  # last frame with a detection (the end's dwell stops there)


class EventBuilder:
    def __init__(self, camera: str, cfg: EventsConfig = EventsConfig(), run_id: str | None = None,
                 clock: str = "wall"):
        self.camera = camera
        self.cfg = cfg
        self.clock = clock  # what event times are: "wall" (live) or "media" (a file's own time)
        self.run_id = run_id or os.urandom(4).hex()
        self._seq = itertools.count(1)
        self._lifecycles: dict[int, _TrackLifecycle] = {}
        self._attrs: dict[int, Attributes] = {}
        self.people_started = 0  # confirmed tracks so far (faces seen)

    def make(self, type_: str, ts: float, frame_id: int, payload: dict) -> Event:
        return Event(type_, self.camera, ts, frame_id, payload, f"{self.run_id}-{next(self._seq):08d}",
                     self.clock)

    def _person(self, tid: int, life: _TrackLifecycle, ts: float, box, score) -> dict:
        return {"track_id": tid, "box": [int(round(v)) for v in box], "score": round(score, 3),
                **attributes_payload(self._attrs.get(tid)),
                "first_seen": iso_ms(life.first_ts), "dwell_s": round(max(0.0, ts - life.first_ts), 3)}

    def _material(self, old: Optional[Attributes], new: Attributes) -> bool:
        if not new.known:
            return False
        if old is None or not old.known:
            return True
        return old.gender != new.gender or abs(old.age - new.age) >= self.cfg.age_change_years

    def update(self, people: Sequence[Person], ts: float, frame_id: int) -> list[Event]:
        """Call once per frame with every tracked person (even none): the lifecycle diff."""
        self._attrs.update((p.id, p.attributes) for p in people if p.attributes is not None)
        out: list[Event] = []
        alive = set()
        for t in (p.track for p in people):
            alive.add(t.id)
            life = self._lifecycles.get(t.id)
            if life is None:
                life = self._lifecycles[t.id] = _TrackLifecycle(ts, frame_id)
            if t.detected:
                life.last_box, life.last_score = t.box, t.score
                life.last_seen_ts = ts
            if not t.confirmed:
                continue
            if not life.started:
                life.started = True
                self.people_started += 1
                life.last_update_ts = ts
                life.reported = self._attrs.get(t.id)
                out.append(self.make("start", ts, frame_id, self._person(t.id, life, ts, t.box, t.score)))
                continue
            cur = self._attrs.get(t.id)
            if (cur is not None and ts - life.last_update_ts >= self.cfg.update_min_interval_s
                    and self._material(life.reported, cur)):
                life.reported = cur
                life.last_update_ts = ts
                out.append(self.make("update", ts, frame_id, self._person(t.id, life, ts, t.box, t.score)))
        for tid in [i for i in self._lifecycles if i not in alive]:
            out.extend(self._end(tid, ts, frame_id))
        return out

    def _end(self, tid: int, ts: float, frame_id: int) -> list[Event]:
        life = self._lifecycles.pop(tid)
        ev = []
        if life.started:
            # Dwell ends at the last detection, not when the tracker gave up coasting
            # (tracker.max_misses frames later: 0.6 s at 25 fps, 12% of a 5 s walk).
            seen = life.last_seen_ts if life.last_seen_ts is not None else ts
            ev.append(self.make("end", ts, frame_id,
                                self._person(tid, life, seen, life.last_box, life.last_score)))
        self._attrs.pop(tid, None)
        return ev

    def end_all(self, ts: float, frame_id: int) -> list[Event]:
        """End every live track (scene cut, outage, shutdown)."""
        out = []
        for tid in list(self._lifecycles):
            out.extend(self._end(tid, ts, frame_id))
        return out
