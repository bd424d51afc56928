"""Query-string and body values of the site API, checked: each bad value is a 400 JSON that
names the parameter (``{"error", "code": "bad_param", "param"}``), never a 500 or a silent
default.

Times (``since``, ``until``) are epoch seconds or ISO 8601 (``2024-05-01``,
``2024-05-01T08:00``, ``...Z`` or ``+02:00``; a time without an offset is the server's local
time, like the counting resets).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Optional

from streamer.web.errors import ApiError

# The event types of schema/event.schema.json (a test keeps the two in step).
EVENT_TYPES = ("start", "update", "end", "cross", "summary", "source_down", "source_up",
               "zone_enter", "zone_exit")
BUCKETS = ("hour", "day")
MAX_LIMIT = 1000
MAX_NAME = 200
MAX_POINTS = 64


def bad(param: str, message: str) -> ApiError:
    return ApiError(400, "bad_param", f"{param}: {message}", param=param)


def text(args, name: str) -> Optional[str]:
    v = args.get(name)
    if v is None or v == "":
        return None
    if len(v) > MAX_NAME or any(ord(c) < 32 for c in v):
        raise bad(name, f"expected a name of at most {MAX_NAME} printable characters")
    return v


def timestamp(args, name: str) -> Optional[float]:
    v = args.get(name)
    if v is None or v == "":
        return None
    try:
        t = float(v)
    except ValueError:
        try:
            t = datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            raise bad(name, f"expected epoch seconds or an ISO 8601 time, got {v[:40]!r}") from None
    if not math.isfinite(t) or not 0 <= t < 1e11:
        raise bad(name, f"expected a time between 1970 and 5138, got {v[:40]!r}")
    return t


def time_range(args) -> tuple[Optional[float], Optional[float]]:
    since, until = timestamp(args, "since"), timestamp(args, "until")
    if since is not None and until is not None and since > until:
        raise bad("until", "must not be before since")
    return since, until


def limit(args, default: int = 100) -> int:
    v = args.get("limit")
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except ValueError:
        raise bad("limit", f"expected an integer 1..{MAX_LIMIT}, got {v[:20]!r}") from None
    if not 1 <= n <= MAX_LIMIT:
        raise bad("limit", f"expected an integer 1..{MAX_LIMIT}, got {n}")
    return n


def event_type(args) -> Optional[str]:
    v = args.get("type")
    if v is None or v == "":
        return None
    if v not in EVENT_TYPES:
        raise bad("type", f"expected one of {', '.join(EVENT_TYPES)}, got {v[:40]!r}")
    return v


def bucket(args) -> str:
    v = args.get("bucket") or "hour"
    if v not in BUCKETS:
        raise bad("bucket", f"expected hour or day, got {v[:20]!r}")
    return v


def camera(args, known: list[str]) -> Optional[str]:
    v = text(args, "camera")
    if v is not None and v not in known:
        raise ApiError(404, "unknown_camera", f"camera: no camera named {v!r} (known: "
                                              f"{', '.join(known) or 'none'})", param="camera")
    return v


def _point(q, where: str) -> list[float]:
    if not (isinstance(q, (list, tuple)) and len(q) == 2 and all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
            and 0 <= c <= 100_000 for c in q)):
        raise bad(where, "expected a point [x, y] of two non-negative numbers")
    return [float(q[0]), float(q[1])]


def _area(pts: list[list[float]]) -> float:
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]))) / 2


def geometry(doc) -> tuple[list[dict], list[dict]]:
    """``(lines, zones)`` from the editor's PUT body, shape-checked: a line is two distinct
    points, a zone at least 3 points enclosing an area; names non-empty and unique. The site
    validates again against the camera's config (``save_geometry``)."""
    if not isinstance(doc, dict):
        raise bad("body", 'expected a JSON object {"lines": [...], "zones": [...]}')
    extra = set(doc) - {"lines", "zones", "size"}
    if extra:
        raise bad(sorted(extra)[0], "unknown key (expected lines and zones)")
    out = {}
    names = set()
    for kind, need in (("lines", 2), ("zones", 3)):
        items = doc.get(kind, [])
        if not isinstance(items, list) or len(items) > MAX_POINTS:
            raise bad(kind, f"expected a list of at most {MAX_POINTS} {{name, points}} objects")
        got = []
        for i, item in enumerate(items):
            where = f"{kind}[{i}]"
            if not isinstance(item, dict) or set(item) - {"name", "points"}:
                raise bad(where, "expected {\"name\": ..., \"points\": [[x, y], ...]}")
            name = item.get("name")
            if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME \
                    or any(ord(c) < 32 for c in name):
                raise bad(f"{where}.name", "expected a non-empty printable name")
            if name in names:
                raise bad(f"{where}.name", f"{name!r} is used twice")
            names.add(name)
            pts = item.get("points")
            if not isinstance(pts, list) or len(pts) > MAX_POINTS:
                raise bad(f"{where}.points", "expected a list of [x, y] points")
            pts = [_point(q, f"{where}.points[{j}]") for j, q in enumerate(pts)]
            if kind == "lines" and (len(pts) != 2 or pts[0] == pts[1]):
                raise bad(f"{where}.points", "a line needs exactly two distinct points")
            if kind == "zones" and (len(pts) < need or _area(pts) <= 1e-9):
                raise bad(f"{where}.points", "a zone needs at least 3 points enclosing an area "
                                             "(this polygon is degenerate)")
            got.append({"name": name, "points": pts})
        out[kind] = got
    return out["lines"], out["zones"]
