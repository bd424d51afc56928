"""A fake ``SiteView`` (``streamer.runtime.site_view``) for the web layer's tests: cameras,
snapshots, geometry and an in-memory event store that answers ``events`` and ``counts`` from
real schema-shaped events (so a chart drawn from it is drawn from events, not from numbers
typed into the test)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timezone
from typing import Optional, Sequence

import cv2
import numpy as np

from streamer.errors import ConfigError
from streamer.runtime.site_view import CameraStatus

AGE_BINS = (13, 18, 25, 35, 45, 55, 65)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(t * 1000) % 1000:03d}Z"


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def age_bin(years: Optional[float]) -> str:
    if years is None:
        return "unknown"
    lo = 0
    for b in AGE_BINS:
        if years < b:
            return f"{lo}-{b - 1}"
        lo = b
    return f"{lo}+"


def person(camera: str, seq: int, t: float, kind: str = "end", gender="female", years=31.0,
           **extra) -> dict:
    """A schema-shaped person event (start/end/cross)."""
    ev = {"schema": "streamer.event/1", "id": f"run1-{camera}-{seq}", "type": kind, "camera": camera,
          "ts": iso(t), "frame_id": seq, "track_id": seq, "box": [10, 10, 50, 60], "score": 0.9,
          "gender": {"label": gender, "confidence": 0.9} if gender else None,
          "age": {"years": years, "low": years - 5, "high": years + 5,
                  "range": f"{int(years - 5)}-{int(years + 5)}", "confidence": 0.5} if years else None,
          "attributes_reason": None if gender else "face too small",
          "first_seen": iso(t - 4.0), "dwell_s": 4.0}
    ev.update(extra)
    return ev


class FakeEventStore:
    def __init__(self, events: Sequence[dict] = ()):
        self._events: list[dict] = list(events)
        self.crops: dict[str, str] = {}
        self.calls: list[tuple[str, dict]] = []
        self._lock = threading.Lock()

    def add(self, events: Sequence[dict]) -> None:
        with self._lock:
            self._events.extend(events)

    def events(self, camera=None, type=None, since=None, until=None, limit=100) -> list[dict]:
        self.calls.append(("events", dict(camera=camera, type=type, since=since, until=until, limit=limit)))
        with self._lock:
            got = [e for e in self._events if (camera is None or e["camera"] == camera)
                   and (type is None or e["type"] == type)
                   and (since is None or epoch(e["ts"]) >= since)
                   and (until is None or epoch(e["ts"]) < until)]
        return sorted(got, key=lambda e: e["ts"], reverse=True)[:limit]

    def counts(self, camera=None, line=None, bucket="hour", since=None, until=None) -> list[dict]:
        self.calls.append(("counts", dict(camera=camera, line=line, bucket=bucket, since=since, until=until)))
        size = 3600 if bucket == "hour" else 86400
        rows: dict[int, dict] = {}
        for e in self.events(camera, "cross", since, until, limit=10**9):
            if line is not None and e.get("line") != line:
                continue
            start = int(epoch(e["ts"]) // size * size)
            r = rows.setdefault(start, {"start": iso(start)[:-5] + "Z", "in": 0, "out": 0,
                                        "by_gender": {}, "by_age": {}})
            r[e["direction"]] += 1
            g = (e.get("gender") or {}).get("label", "unknown")
            a = age_bin((e.get("age") or {}).get("years"))
            r["by_gender"][g] = r["by_gender"].get(g, 0) + 1
            r["by_age"][a] = r["by_age"].get(a, 0) + 1
        return [rows[k] for k in sorted(rows)]

    def crop_path(self, event_id: str) -> Optional[str]:
        return self.crops.get(event_id)

    def prune(self, retention_days: float) -> int:
        return 0


def snapshot_jpeg(color=(40, 120, 200), size=(320, 240), text: str = "") -> bytes:
    img = np.full((size[1], size[0], 3), color, np.uint8)
    if text:
        cv2.putText(img, text, (10, size[1] // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


class FakeSite:
    """Two cameras by default: ``door`` (running, a line) and ``yard`` (down, its reason)."""

    def __init__(self, cameras: Optional[list[CameraStatus]] = None, events: Sequence[dict] = ()):
        self._cams = {c.name: c for c in (cameras if cameras is not None else default_cameras())}
        self.store = FakeEventStore(events)
        self.snapshots: dict[str, Optional[bytes]] = {
            n: snapshot_jpeg(text=n) for n in self._cams}
        self._geometry = {n: {"lines": [], "zones": [], "size": [320, 240]} for n in self._cams}
        self.saved: list[tuple[str, list, list]] = []
        self.mqtt_down: Optional[str] = None

    def set_camera(self, name: str, **changes) -> None:
        self._cams[name] = replace(self._cams[name], **changes)

    def cameras(self) -> list[CameraStatus]:
        return list(self._cams.values())

    def snapshot(self, name: str) -> Optional[bytes]:
        if name not in self._cams:
            raise KeyError(name)
        return self.snapshots.get(name)

    def health(self) -> tuple[bool, list[str]]:
        reasons = [f"camera {c.name}: {c.status}" + (f" ({c.reason})" if c.reason else "")
                   for c in self._cams.values() if c.status != "running"]
        reasons += [f"camera {c.name}: MQTT disconnected, {c.mqtt.get('backlog', 0)} events in the spool"
                    for c in self._cams.values() if c.mqtt and c.mqtt.get("connected") is False]
        return not reasons, reasons

    def geometry(self, name: str) -> dict:
        if name not in self._cams:
            raise KeyError(name)
        return self._geometry[name]

    def save_geometry(self, name: str, lines: list, zones: list) -> None:
        if name not in self._cams:
            raise KeyError(name)
        for z in zones:  # the real site validates through the config; the fake at least this
            if len({tuple(p) for p in z["points"]}) < 3:
                raise ConfigError(f"cameras.{name}.counting.zones: {z['name']!r} is degenerate")
        self.saved.append((name, lines, zones))
        self._geometry[name] = {**self._geometry[name], "lines": lines, "zones": zones}


def default_cameras() -> list[CameraStatus]:
    return [
        CameraStatus("door", "running", 4242, 12.5, 0, "rtsp://***@door.cam.example/stream", 0.1,
                     source_connected=True, counts={"entrance": {"in": 7, "out": 3}},
                     stats={"frames_in": 900, "frames_processed": 880},
                     mqtt={"connected": True, "backlog": 0}),
        CameraStatus("yard", "down", None, 0.0, 3, "rtsp://***@yard.cam.example/stream", None,
                     source_connected=False, reason="source: connection refused"),
    ]
