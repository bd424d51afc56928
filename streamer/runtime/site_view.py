"""What the web server may ask of a running site: the contract between the site runner
(``streamer.runtime.site``, which owns the camera processes) and the HTTP layer (``streamer.web``).

The web layer never touches processes, pipes or the supervisor; it reads through this
interface only, so it is tested with a fake and the runner with a real server.
Every method is thread-safe and returns quickly (no blocking I/O beyond a local SQLite read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence

CAMERA_STATES = ("starting", "running", "restarting", "down")


@dataclass(frozen=True)
class CameraStatus:
    """One camera as the supervisor sees it (``GET /api/cameras`` is a list of ``to_dict()``)."""

    name: str
    status: str  # one of CAMERA_STATES
    pid: Optional[int]
    fps: float
    restarts: int
    source: str  # credentials redacted
    last_frame_age_s: Optional[float]  # None before the first frame
    source_connected: bool = False
    reason: Optional[str] = None  # why it is down / restarting, one line
    counts: dict = field(default_factory=dict)  # today's {line: {"in": n, "out": m}}, zones too
    stats: dict = field(default_factory=dict)  # the camera pipeline's latest summary counters
    mqtt: Optional[dict] = None  # {"connected": bool, "backlog": int, ...} when MQTT is on

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "pid": self.pid, "fps": self.fps,
                "restarts": self.restarts, "source": self.source,
                "last_frame_age_s": self.last_frame_age_s, "source_connected": self.source_connected,
                "reason": self.reason, "counts": self.counts}


class EventStore(Protocol):
    """Every event of every camera, queryable. SQLite today (``streamer.store``); a server
    database implements the same five methods."""

    def add(self, events: Sequence[dict], crops: Optional[dict] = None) -> None:
        """Store event dicts (duplicates by ``id`` ignored). Added by the site runner (an
        optional, additive argument): ``crops`` maps an ``end`` event id to its face JPEG
        bytes, given only with ``privacy.keep_crops``."""

    def events(self, camera: Optional[str] = None, type: Optional[str] = None,
               since: Optional[float] = None, until: Optional[float] = None,
               limit: int = 100) -> list[dict]:
        """Event dicts (the documented JSON form), newest first; ``since``/``until`` are epoch s."""

    def counts(self, camera: Optional[str] = None, line: Optional[str] = None, bucket: str = "hour",
               since: Optional[float] = None, until: Optional[float] = None) -> list[dict]:
        """``[{"start": iso, "in": n, "out": m, "by_gender": {...}, "by_age": {...}}]`` from
        ``cross`` events, oldest bucket first. ``by_gender`` is ``{male, female, unknown: n}``
        and ``by_age`` ``{bin label: n}`` over both directions (sums = in + out); additive,
        from the site runner: ``by_direction: {"in"|"out": {"by_gender", "by_age"}}``."""

    def crop_path(self, event_id: str) -> Optional[str]:
        """The face thumbnail kept for an ``end`` event (only with ``privacy.keep_crops``)."""

    def prune(self, retention_days: float) -> int: ...


class SiteView(Protocol):
    store: EventStore

    def cameras(self) -> list[CameraStatus]: ...

    def snapshot(self, name: str) -> Optional[bytes]:
        """The latest annotated frame of camera ``name`` as JPEG bytes (None before one exists).
        Raises KeyError for an unknown camera."""

    def health(self) -> tuple[bool, list[str]]:
        """(all up, one reason line per camera or MQTT link that is down)."""

    def geometry(self, name: str) -> dict:
        """``{"lines": [{"name", "points"}], "zones": [{"name", "points"}], "size": [w, h]}``
        of one camera's counting config. Raises KeyError for an unknown camera."""

    def save_geometry(self, name: str, lines: list[dict], zones: list[dict]) -> None:
        """Validate, write the camera's config atomically (old file kept as ``.bak``), restart
        the camera with it. Raises ``streamer.errors.ConfigError`` (nothing changed) when the
        geometry is invalid (e.g. a degenerate polygon), KeyError for an unknown camera."""
