"""People counting on lines and zones: ``update(people, frame) -> list[Event]``.

Contract: call ``update`` once per processed frame with the tracker's output (every track,
confirmed or not) and the current per-track attributes, ``tick(ts, frame_id)`` often (every
frame and when idle: periodic summaries, the reset schedule, persistence), ``reset_tracks()``
at a scene cut or outage (per-track state is forgotten, counts are kept) and
``finish(ts, frame_id)`` once at the end (final summary, state written).

Geometry (``core/geometry.py``). Lines (two points) and zones (a polygon) come from config, in
frame pixels or, when every coordinate of that line or zone is <= 1, in fractions of the frame
width and height (resolved against the first frame, so one config fits any resolution).

Direction. Walk from p1 to p2 on the image as if it were a map seen from above: a track
moving from your right-hand side to your left-hand side goes ``in``, the other way ``out``.
Concretely (image y points down): a line drawn downwards, ``[[0.5, 0], [0.5, 1]]``, counts
left-to-right as ``in``; a line drawn rightwards, ``[[0, 0.5], [1, 0.5]]``, counts
bottom-to-top as ``in``. Swap p1 and p2 to swap in and out.

Crossing rule. Each track's anchor point (box centre, or bottom centre with ``anchor:
bottom``: better for full bodies, for faces the centre is steadier) has, per line, the side it
was last *firmly* on: at least ``hysteresis`` x frame diagonal away from the line. A crossing
is counted when the firm side changes, so a face jittering on the line (inside that band)
never counts twice, and is then counted once per real crossing. It counts only if
- the track is confirmed at that moment (tentative tracks update their side but never count:
  a crossing within the tracker's first ``min_hits`` frames is not counted), and
- the straight path from the last firm point to the new one cuts the segment p1-p2 itself,
  not the infinite line through it (walking around the end of a line is not a crossing).
Only boxes matched to a detection in this frame move a track; motion predictions of a lost
face never cross a line or leave a zone (the person is counted when seen again).
Raising ``hysteresis`` suppresses more jitter but misses people who turn back just past the
line; at 0.02 of a 1280x720 diagonal the band is +-29 px.

Zones. A confirmed, detected track enters a zone when its anchor is inside the polygon and
leaves when it is outside by more than the hysteresis margin (or the track ends). Occupancy =
tracks inside now; dwell = time from entering to leaving, reported in the ``zone_exit`` event
and aggregated (visits, total, mean, max) in summaries.

Events (``make_event(type, ts, frame_id, payload)``; pass ``EventBuilder.make`` to share one
id sequence with the lifecycle events). Every one carries ``counts`` (the retained MQTT
counts snapshot: ``period_start``, ``lines`` {name: {in, out}}, ``zones`` {name: occupancy},
``people``):
- ``cross``: ``track_id``, ``line``, ``direction``, ``box``, the attributes at that moment
  (``events.attributes_payload``), ``counts``;
- ``zone_enter`` / ``zone_exit``: ``track_id``, ``zone``, ``box``, attributes; exit adds
  ``entered``, ``dwell_s`` and ``reason`` (``left`` | ``lost`` | ``tracks_reset``);
- ``summary``: cumulative since ``period_start`` (the last reset), with ``reason``: ``start``
  (first tick of a run and first tick of a new period), ``interval`` (every
  ``summary_interval_s``; 0 disables only these), ``reset`` (closes a period, with
  ``period_end``), ``final`` (end of run). Per line: in/out, ``by_gender`` and ``by_age``
  (bins from ``age_bins``; attributes not known at the crossing count as ``unknown``; a later
  better guess does not revise a count). Per zone: occupancy, who is inside and for how long,
  visits and dwell statistics. ``people``: confirmed tracks seen (unique within a run; a
  person lost and re-acquired as a new track counts again).

Persistence and reset. The counter does no I/O: an injected ``state`` (``load() -> dict |
None``, ``save(dict) -> bool``; ``media/count_state.py`` keeps it in
``<state_dir>/counts-<camera>.json``, written atomically) gets the totals when they change, at
most once a second, on a reset and at finish; a restart continues from them. Without one the
counts live in memory only. ``reset: daily@HH:MM`` zeroes them at that local time; a counter
that was down over that time starts from zero (its period began at the missed reset).
``never`` keeps counting forever. The clock is injectable for tests.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Optional, Protocol, Sequence

from streamer.config import CountingConfig
from streamer.errors import ConfigError
from streamer.core.events import EventBuilder, attributes_payload
from streamer.core.geometry import Polygon, Segment, check_geometry, is_fraction, resolve
from streamer.timefmt import iso_ms
from streamer.types import Attributes, Event, Frame, Person, Point, Track

log = logging.getLogger(__name__)

GENDERS = ("male", "female", "unknown")
DIRECTIONS = ("in", "out")
PERSIST_MIN_INTERVAL_S = 1.0


# ---- schedule and labels -----------------------------------------------------------------

def parse_reset(spec: str) -> Optional[tuple[int, int]]:
    """``daily@HH:MM`` -> (hour, minute); ``never`` -> None."""
    if spec == "never":
        return None
    try:
        hh, mm = spec.removeprefix("daily@").split(":")
        h, m = int(hh), int(mm)
        if spec.startswith("daily@") and 0 <= h < 24 and 0 <= m < 60:
            return h, m
    except ValueError:
        pass
    raise ConfigError(f"counting.reset: expected never or daily@HH:MM (00:00-23:59), got {spec!r}")


def last_reset(now: float, at: tuple[int, int]) -> float:
    """The most recent local time ``at`` (hour, minute) at or before ``now``."""
    d = datetime.fromtimestamp(now)
    b = d.replace(hour=at[0], minute=at[1], second=0, microsecond=0)
    if b > d:
        b -= timedelta(days=1)
    return b.timestamp()


def age_labels(bins: list) -> list[str]:
    """``[13, 18, 65]`` -> ``["0-12", "13-17", "18-64", "65+"]``."""
    edges = [int(b) if float(b).is_integer() else b for b in bins]
    out, lo = [], 0
    for e in edges:
        out.append(f"{lo}-{e - 1}" if isinstance(e, int) else f"{lo}-<{e}")
        lo = e
    out.append(f"{lo}+")
    return out


# ---- state ---------------------------------------------------------------------------------

@dataclass
class _LineTotals:
    inn: int = 0
    out: int = 0
    by_gender: dict = field(default_factory=dict)  # direction -> {label: n}
    by_age: dict = field(default_factory=dict)


@dataclass
class _ZoneTotals:
    visits: int = 0
    dwell_total_s: float = 0.0
    dwell_max_s: float = 0.0


class CountState(Protocol):
    """Where the totals survive a restart (``media/count_state.JsonCountState``)."""

    def load(self) -> Optional[dict]: ...

    def save(self, state: dict) -> bool: ...


@dataclass
class _CountingTrackState:
    sides: dict = field(default_factory=dict)  # line -> (side, last firm point)
    zones: dict = field(default_factory=dict)  # zone -> enter ts
    last_ts: float = 0.0
    last_box: tuple = (0, 0, 0, 0)
    attrs: Optional[Attributes] = None  # kept: the processor drops a lost track's attributes


class Counter:
    """Lines and zones of one camera (see the module docstring for the rules).

    ``make_event(type, ts, frame_id, payload) -> Event`` stamps ids (default: a private
    ``EventBuilder``, ids unique across restarts); ``clock() -> epoch seconds`` drives the reset
    schedule and the persistence throttle (tests inject a fake one; event times always come
    from the frames and ``tick``); ``state`` keeps the totals across restarts (None: memory
    only).
    """

    def __init__(self, cfg: CountingConfig, camera: str,
                 make_event: Optional[Callable[[str, float, int, dict], Event]] = None,
                 clock: Callable[[], float] = time.time, state: Optional[CountState] = None):
        check_geometry(cfg)
        self.cfg = cfg
        self.camera = camera
        self.make_event = make_event or EventBuilder(camera).make
        self.clock = clock
        self._reset_at = parse_reset(cfg.reset)
        self._age_bins = [float(b) for b in cfg.age_bins]
        self._age_labels = age_labels(cfg.age_bins) + ["unknown"]
        self.state = state
        self._size: Optional[tuple[int, int]] = None
        self._lines: tuple[Segment, ...] = ()
        self._zones: tuple[Polygon, ...] = ()
        self._margin = 0.0
        self._tracks: dict[int, _CountingTrackState] = {}
        self._seen: set[int] = set()  # confirmed track ids of this run
        self._queued: list[Event] = []  # zone exits from reset_tracks, emitted on the next call
        self._last_ts = 0.0
        self._last_frame = -1
        self._started = False
        self._last_summary = 0.0
        self._dirty = False
        self._last_write = -1e18
        self._restored = False  # totals continued from the state file
        self._period_from_frames = False  # the first frame's time starts the period
        self._zero(clock())
        if state is not None:
            self._restore(state.load())

    # ---- totals ----------------------------------------------------------------------------
    def _zero(self, period_start: float) -> None:
        self._period_start = period_start
        self._people = 0
        self._totals = {ln.name: self._empty_line() for ln in self.cfg.lines}
        self._zone_totals = {z.name: _ZoneTotals() for z in self.cfg.zones}

    def _empty_line(self) -> _LineTotals:
        return _LineTotals(by_gender={d: dict.fromkeys(GENDERS, 0) for d in DIRECTIONS},
                           by_age={d: dict.fromkeys(self._age_labels, 0) for d in DIRECTIONS})

    def counts(self) -> dict:
        """``{line: {"in": n, "out": n}}`` (overlay and stats)."""
        return {k: {"in": v.inn, "out": v.out} for k, v in self._totals.items()}

    def snapshot(self) -> dict:
        """The ``counts`` object every counting event carries (the retained MQTT counts)."""
        occ = dict.fromkeys(self._zone_totals, 0)
        for st in self._tracks.values():
            for z in st.zones:
                occ[z] += 1
        return {"period_start": iso_ms(self._period_start), "lines": self.counts(),
                "zones": occ, "people": self._people}

    # ---- geometry --------------------------------------------------------------------------
    def _geometry(self, size: tuple[int, int]) -> None:
        if size == self._size:
            return
        if self._size is not None:
            log.info("frame size changed %s -> %s: counting geometry re-resolved", self._size, size)
            self._forget_tracks()
        self._size = size
        self._lines = tuple(Segment(ln.name, *resolve(ln.points, size)) for ln in self.cfg.lines)
        self._zones = tuple(Polygon(z.name, resolve(z.points, size)) for z in self.cfg.zones)
        self._margin = self.cfg.hysteresis * math.hypot(*size)

    def draw_lines(self, size: tuple[int, int]) -> list[tuple[Point, Point, str]]:
        """Lines and zone outlines in pixels for the overlay. Fractional geometry needs the
        frame size; with (0, 0) (a folder before its first image) it is left out."""
        known = size[0] > 0 and size[1] > 0
        out: list[tuple[Point, Point, str]] = []
        for ln in self.cfg.lines:
            if known or not is_fraction(ln.points):
                p1, p2 = resolve(ln.points, size)
                out.append((p1, p2, ln.name))
        for z in self.cfg.zones:
            if known or not is_fraction(z.points):
                pts = resolve(z.points, size)
                out += [(pts[i], pts[(i + 1) % len(pts)], z.name if i == 0 else "")
                        for i in range(len(pts))]
        return out

    def _anchor(self, box) -> Point:
        x1, y1, x2, y2 = box
        return ((x1 + x2) / 2, y2 if self.cfg.anchor == "bottom" else (y1 + y2) / 2)

    # ---- per frame -------------------------------------------------------------------------
    def update(self, people: Sequence[Person], frame: Frame) -> list[Event]:
        h, w = frame.image.shape[:2]
        self._geometry((w, h))
        ts, fid = frame.ts, frame.id
        self._last_ts, self._last_frame = ts, fid
        out = self._drain() + self._maybe_reset(ts, fid)
        alive = set()
        for person in people:
            t = person.track
            alive.add(t.id)
            st = self._tracks.setdefault(t.id, _CountingTrackState())
            if t.confirmed and t.id not in self._seen:
                self._seen.add(t.id)
                self._people += 1
                self._dirty = True
            st.attrs = person.attributes or st.attrs
            if not t.detected:
                continue
            st.last_ts, st.last_box = ts, t.box
            p = self._anchor(t.box)
            for ln in self._lines:
                out += self._line_step(ln, st, t, p, st.attrs, ts, fid)
            if t.confirmed:
                for z in self._zones:
                    out += self._zone_step(z, st, t, p, st.attrs, ts, fid)
        for tid in [i for i in self._tracks if i not in alive]:
            out += self._exit_all(tid, self._tracks.pop(tid), "lost")
        return out

    def _line_step(self, ln: Segment, st: _CountingTrackState, t: Track, p: Point,
                   a: Optional[Attributes], ts: float, fid: int) -> list[Event]:
        d = ln.signed(p)
        side = 1 if d > self._margin else -1 if d < -self._margin else 0
        if side == 0:
            return []  # inside the band: not firmly anywhere
        prev = st.sides.get(ln.name)
        st.sides[ln.name] = (side, p)
        if prev is None or prev[0] == side or not t.confirmed or not ln.cuts(prev[1], p):
            return []
        direction = "in" if prev[0] > 0 else "out"
        tot = self._totals[ln.name]
        if direction == "in":
            tot.inn += 1
        else:
            tot.out += 1
        tot.by_gender[direction][self._gender(a)] += 1
        tot.by_age[direction][self._age(a)] += 1
        self._dirty = True
        return [self.make_event("cross", ts, fid, {
            "track_id": t.id, "line": ln.name, "direction": direction, "box": _ibox(t.box),
            **attributes_payload(a), "counts": self.snapshot()})]

    def _zone_step(self, z: Polygon, st: _CountingTrackState, t: Track, p: Point,
                   a: Optional[Attributes], ts: float, fid: int) -> list[Event]:
        if z.name not in st.zones:
            if not z.contains(p):
                return []
            st.zones[z.name] = ts
            return [self.make_event("zone_enter", ts, fid, {
                "track_id": t.id, "zone": z.name, "box": _ibox(t.box), **attributes_payload(a),
                "counts": self.snapshot()})]
        if z.contains(p) or z.distance(p) <= self._margin:
            return []
        return [self._exit(t.id, st, z.name, ts, fid, "left", a)]

    def _exit(self, tid: int, st: _CountingTrackState, zone: str, ts: float, fid: int, reason: str,
              a: Optional[Attributes]) -> Event:
        entered = st.zones.pop(zone)
        dwell = max(0.0, ts - entered)
        zt = self._zone_totals[zone]
        zt.visits += 1
        zt.dwell_total_s += dwell
        zt.dwell_max_s = max(zt.dwell_max_s, dwell)
        self._dirty = True
        return self.make_event("zone_exit", ts, fid, {
            "track_id": tid, "zone": zone, "box": _ibox(st.last_box), **attributes_payload(a),
            "entered": iso_ms(entered), "dwell_s": round(dwell, 3), "reason": reason,
            "counts": self.snapshot()})

    def _exit_all(self, tid: int, st: _CountingTrackState, reason: str) -> list[Event]:
        return [self._exit(tid, st, z, st.last_ts, self._last_frame, reason, st.attrs)
                for z in list(st.zones)]

    def _gender(self, a: Optional[Attributes]) -> str:
        return a.gender if a is not None and a.gender in GENDERS else "unknown"

    def _age(self, a: Optional[Attributes]) -> str:
        if a is None or a.age is None:
            return "unknown"
        return self._age_labels[bisect.bisect_right(self._age_bins, a.age)]

    def _forget_tracks(self) -> None:
        for tid, st in self._tracks.items():
            self._queued += self._exit_all(tid, st, "tracks_reset")
        self._tracks.clear()
        self._seen.clear()  # a reset tracker may hand out the same ids to new people

    def reset_tracks(self) -> None:
        """Scene cut / outage: forget which side of each line every track was on (a new track
        must re-establish its side before it can count); close zone visits. Counts stay."""
        self._forget_tracks()

    def _drain(self) -> list[Event]:
        out, self._queued = self._queued, []
        return out

    # ---- time-driven -----------------------------------------------------------------------
    def tick(self, ts: float, frame_id: int) -> list[Event]:
        """Summaries, the reset schedule and persistence; cheap enough for every frame."""
        self._last_ts = max(self._last_ts, ts)
        out = self._drain() + self._maybe_reset(ts, frame_id)
        if not self._started:
            self._started = True
            self._last_summary = ts
            out.append(self._summary("start", ts, frame_id))
        elif self.cfg.summary_interval_s > 0 and ts - self._last_summary >= self.cfg.summary_interval_s:
            self._last_summary = ts
            out.append(self._summary("interval", ts, frame_id))
        self._maybe_persist()
        return out

    def finish(self, ts: float, frame_id: int) -> list[Event]:
        out = self._drain() + self._maybe_reset(ts, frame_id)
        out.append(self._summary("final", ts, frame_id))
        self._persist()
        return out

    def _maybe_reset(self, ts: float, frame_id: int) -> list[Event]:
        # Periods and resets follow the frames' clock (a file's own time, see
        # media/mediaclock.py; wall time live), so a recording counts the same at any speed.
        if not self._period_from_frames:
            self._period_from_frames = True
            if not self._restored:
                self._period_start = ts
        if self._reset_at is None:
            return []
        boundary = last_reset(ts, self._reset_at)
        if self._period_start >= boundary:
            return []
        closing = self._summary("reset", ts, frame_id, period_end=boundary)
        log.info("counters reset at %s (%s)", iso_ms(boundary), self.cfg.reset)
        self._zero(boundary)
        # People inside zones now are still inside, but their visit belongs to the new period
        # from now on; unique people restart from those present.
        self._seen = {tid for tid in self._seen if tid in self._tracks}
        self._people = len(self._seen)
        self._persist()
        self._last_summary = ts
        return [closing, self._summary("start", ts, frame_id)]

    def _summary(self, reason: str, ts: float, frame_id: int, period_end: Optional[float] = None) -> Event:
        lines = {}
        for name, t in self._totals.items():
            lines[name] = {"in": t.inn, "out": t.out,
                           "by_gender": {d: dict(t.by_gender[d]) for d in DIRECTIONS},
                           "by_age": {d: dict(t.by_age[d]) for d in DIRECTIONS}}
        snap = self.snapshot()
        zones = {}
        for name, zt in self._zone_totals.items():
            inside = [{"track_id": tid, "dwell_s": round(max(0.0, ts - st.zones[name]), 3)}
                      for tid, st in self._tracks.items() if name in st.zones]
            zones[name] = {"occupancy": snap["zones"][name], "inside": inside, "visits": zt.visits,
                           "dwell_total_s": round(zt.dwell_total_s, 3),
                           "dwell_mean_s": round(zt.dwell_total_s / zt.visits, 3) if zt.visits else None,
                           "dwell_max_s": round(zt.dwell_max_s, 3)}
        return self.make_event("summary", ts, frame_id, {
            "reason": reason, "period_start": iso_ms(self._period_start),
            "period_end": iso_ms(period_end) if period_end is not None else None,
            "interval_s": self.cfg.summary_interval_s, "lines": lines, "zones": zones,
            "people": self._people, "counts": snap})

    # ---- persistence -----------------------------------------------------------------------
    def _maybe_persist(self) -> None:
        if self._dirty:
            now = self.clock()
            # A clock stepped backwards (NTP) must not stop the writes.
            if now - self._last_write >= PERSIST_MIN_INTERVAL_S or now < self._last_write:
                self._persist()

    def _persist(self) -> None:
        if self.state is None:
            self._dirty = False
            return
        state = {"camera": self.camera, "period_start": self._period_start,
                 "saved_at": self.clock(), "people": self._people,
                 "lines": {k: {"in": v.inn, "out": v.out, "by_gender": v.by_gender, "by_age": v.by_age}
                           for k, v in self._totals.items()},
                 "zones": {k: vars(v) for k, v in self._zone_totals.items()}}
        self._last_write = state["saved_at"]
        if self.state.save(state):
            self._dirty = False

    def _restore(self, state: Optional[dict]) -> None:
        """Continue from saved totals, unless they belong to a period already reset."""
        if state is None:
            return
        period_start, people = state["period_start"], state["people"]
        lines, zones = state["lines"], state["zones"]
        if self._reset_at is not None and period_start < last_reset(self.clock(), self._reset_at):
            log.info("counters in %s are from before the last reset (%s): starting from zero",
                     self.state, self.cfg.reset)
            self._zero(last_reset(self.clock(), self._reset_at))
            self._dirty = True
            return
        self._period_start, self._people = period_start, people
        self._restored = True
        for name, t in self._totals.items():
            s = lines.get(name) or {}
            t.inn, t.out = int(s.get("in", 0)), int(s.get("out", 0))
            for key, dst in (("by_gender", t.by_gender), ("by_age", t.by_age)):
                for d in DIRECTIONS:
                    src = (s.get(key) or {}).get(d) or {}
                    for label in dst[d]:
                        dst[d][label] = int(src.get(label, 0))
        for name, zt in self._zone_totals.items():
            s = zones.get(name) or {}
            zt.visits = int(s.get("visits", 0))
            zt.dwell_total_s = float(s.get("dwell_total_s", 0.0))
            zt.dwell_max_s = float(s.get("dwell_max_s", 0.0))
        log.info("counters restored from %s (since %s)", self.state, iso_ms(period_start))


def _ibox(box) -> list[int]:
    return [int(round(v)) for v in box]
