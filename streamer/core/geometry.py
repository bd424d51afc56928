"""Counting geometry in frame pixels: lines (``Segment``) and zones (``Polygon``), how config
coordinates become pixels (``resolve``), and the checks that refuse a bad line or zone.

Config coordinates are pixels or, when every coordinate of that line or zone is <= 1,
fractions of the frame width and height (resolved against the first frame, so one config
fits any resolution). Zone tests go through ``cv2.pointPolygonTest`` (inside / outside and
the distance to the outline), which treats a point on the outline as inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from streamer.errors import ConfigError
from streamer.types import Point


def iou(a, b) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; 0 for disjoint or empty boxes.
    (The tracker scores all pairs at once with its own vectorised form.)"""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def cross(o: Point, a: Point, b: Point) -> float:
    """z of (a - o) x (b - o): > 0 when b lies to the left of o -> a (image y down: right)."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


@dataclass(frozen=True)
class Segment:
    """A counting line from ``p1`` to ``p2`` (pixels); the direction p1 -> p2 defines in/out."""

    name: str
    p1: Point
    p2: Point

    def signed(self, p: Point) -> float:
        """Signed distance in pixels; an ``in`` crossing goes from > 0 to < 0."""
        return cross(self.p1, self.p2, p) / math.dist(self.p1, self.p2)

    def cuts(self, a: Point, b: Point) -> bool:
        """Does the path a -> b (on opposite sides) cross the line within p1-p2?"""
        da, db = self.signed(a), self.signed(b)
        if da == db:
            return False
        k = da / (da - db)
        x = (a[0] + k * (b[0] - a[0]), a[1] + k * (b[1] - a[1]))
        dx, dy = self.p2[0] - self.p1[0], self.p2[1] - self.p1[1]
        t = ((x[0] - self.p1[0]) * dx + (x[1] - self.p1[1]) * dy) / (dx * dx + dy * dy)
        return 0.0 <= t <= 1.0


@dataclass(frozen=True)
class Polygon:
    """A zone outline (pixels, closed: the last point joins the first)."""

    name: str
    points: tuple[Point, ...]

    @cached_property
    def _contour(self) -> np.ndarray:
        return np.asarray(self.points, np.float32).reshape(-1, 1, 2)

    def contains(self, p: Point) -> bool:
        return cv2.pointPolygonTest(self._contour, (float(p[0]), float(p[1])), False) >= 0

    def distance(self, p: Point) -> float:
        """Distance in pixels from ``p`` to the outline (inside or outside)."""
        return abs(cv2.pointPolygonTest(self._contour, (float(p[0]), float(p[1])), True))


def is_fraction(points: list) -> bool:
    return all(v <= 1 for p in points for v in p)


def resolve(points: list, size: tuple[int, int]) -> tuple[Point, ...]:
    """Fractions (every coordinate <= 1) scale by the frame size; pixels pass through."""
    pts = [(float(x), float(y)) for x, y in points]
    if is_fraction(pts):
        return tuple((x * size[0], y * size[1]) for x, y in pts)
    return tuple(pts)


def check_geometry(cfg) -> None:
    """Refuse (``ConfigError`` naming the key) non-numeric or non-finite coordinates,
    duplicate names, a line whose two points coincide and a zone without area. ``cfg`` is a
    ``CountingConfig`` (anything with ``lines`` and ``zones`` of ``name`` / ``points``)."""
    for kind, items in (("lines", cfg.lines), ("zones", cfg.zones)):
        names = set()
        for i, it in enumerate(items):
            key = f"counting.{kind}[{i}]"
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for p in it.points for v in p):
                raise ConfigError(f"{key}.points: expected numbers, got {it.points!r}")
            if it.name in names:
                raise ConfigError(f"{key}.name: duplicate name {it.name!r}")
            names.add(it.name)
            pts = resolve(it.points, (1000, 1000))
            if kind == "lines" and pts[0] == pts[1]:
                raise ConfigError(f"{key}.points: the two points are the same ({it.points!r})")
            if kind == "zones":
                area = sum(cross((0, 0), pts[j - 1], pts[j]) for j in range(len(pts)))
                if abs(area) < 1e-9:
                    raise ConfigError(f"{key}.points: the polygon has no area ({it.points!r})")
