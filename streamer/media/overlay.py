"""Overlay drawing: labels you can read, wherever the faces are.

``render(image, people, stats, geometry)`` draws in place and returns the ``Layout``: every
label's text and rectangle, the stats bar's rectangle and the number of boxes drawn (tests check
the geometry, not just pixels). ``draw(...)`` is the same returning the image; ``draw_faces``
annotates one analysed image (web, batch) with the same placement.

Rules (the reasons are what went wrong before):

- Text size and line width follow the frame's shorter side (720 px -> scale 0.55, 2 px lines):
  a 1080p frame no longer gets 360p-sized text, a 320 px one no longer gets giant text.
- The stats bar is a full-width band at the top; nothing else is placed on it.
- A face label goes above its box; if that rectangle is off the frame, under the bar or on an
  earlier label, then below the box, then right of it, then left, then stacked further up or
  down; every candidate is first shifted inside the frame, so a label is never cut at an edge.
- A face narrower than about five characters gets a short label ("#3 M 34"); narrower than
  two, its number only.
- Counting lines get their name, an arrow showing the ``in`` direction across the line and
  ``in`` / ``out`` on the two sides; zones their name and current occupancy. These labels are
  placed first, with the same no-overlap rule.
- The bar's face count is the number of face boxes drawn in this picture.

Only called when something shows the picture (window, video file, MJPEG), so headless runs
with no video output pay nothing for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

from streamer.types import Attributes, FaceResult, Person, Stats

BOX = (0, 255, 0)  # confirmed faces: pure green, easy to find again in a decoded frame
TENTATIVE = (160, 160, 160)
TEXT_BG = (0, 0, 0)
LINE = (255, 0, 255)
ZONE = (255, 200, 0)
WHITE = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 (x2, y2 exclusive)
Point = tuple[float, float]


@dataclass(frozen=True)
class Geometry:
    """What the overlay draws besides faces: counting lines (name, p1, p2; an ``in`` crossing
    goes from the left of p1 -> p2 to its right, as counting.Segment defines it) and zones
    (name, outline), in frame pixels."""

    lines: tuple[tuple[str, Point, Point], ...] = ()
    zones: tuple[tuple[str, tuple[Point, ...]], ...] = ()

    @staticmethod
    def of_counting(counting, size: tuple[int, int]) -> "Geometry":
        """Lines and zones of a ``CountingConfig`` in pixels of a ``size`` frame; fractional
        ones are left out while the size is unknown (a folder before its first image)."""
        from streamer.core.geometry import is_fraction, resolve
        known = size[0] > 0 and size[1] > 0
        lines = tuple((ln.name, *resolve(ln.points, size)) for ln in counting.lines
                      if known or not is_fraction(ln.points))
        zones = tuple((z.name, tuple(resolve(z.points, size))) for z in counting.zones
                      if known or not is_fraction(z.points))
        return Geometry(lines, zones)

    @staticmethod
    def of_segments(segments: Iterable[tuple]) -> "Geometry":
        """From the old ``(p1, p2, name)`` list: each named segment is a line."""
        return Geometry(tuple((str(n), tuple(p1), tuple(p2)) for p1, p2, n in segments if n))


@dataclass(frozen=True)
class Label:
    text: str
    rect: Rect
    kind: str  # "face" | "line" | "zone"


@dataclass
class Layout:
    """What ``render`` drew: labels with their rectangles, the bar, the face boxes."""

    size: tuple[int, int]  # (w, h)
    bar: Optional[Rect] = None
    bar_text: str = ""
    labels: list[Label] = field(default_factory=list)
    boxes: int = 0
    scale: float = 0.5
    thick: int = 1


# -- sizes ---------------------------------------------------------------------------------

def sizes(shape: Sequence[int], view_width: Optional[int] = None) -> tuple[float, int, int]:
    """(font scale, line thickness, text weight) for a frame of ``shape``.

    By default they follow the shorter side (0.55 and 2 px at 720). With ``view_width`` (the
    width the picture will be shown at, web page) the text is ~13 px tall there instead.
    """
    h, w = shape[:2]
    if view_width:
        k = w / view_width  # image pixels per shown pixel
        return max(0.4, 0.6 * k), max(1, round(1.5 * k)), max(1, round(1.5 * k))
    short = min(h, w)
    return max(0.35, 0.55 * short / 720), max(1, round(short / 360)), max(1, round(short / 540))


def _text_size(text: str, scale: float, weight: int) -> tuple[int, int, int]:
    (tw, th), base = cv2.getTextSize(text, FONT, scale, weight)
    return tw, th, base


def _label_wh(text: str, scale: float, weight: int) -> tuple[int, int]:
    tw, th, base = _text_size(text, scale, weight)
    pad = max(2, int(round(th * 0.25)))
    return tw + 2 * pad, th + base + 2 * pad


def _put_label(img: np.ndarray, text: str, rect: Rect, color, scale: float, weight: int) -> None:
    x1, y1, x2, y2 = rect
    tw, th, base = _text_size(text, scale, weight)
    pad = max(2, int(round(th * 0.25)))
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), TEXT_BG, -1)
    cv2.putText(img, text, (x1 + pad, y1 + pad + th), FONT, scale, color, weight, cv2.LINE_AA)


# -- placement -----------------------------------------------------------------------------

def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(r: Rect, w: int, h: int, top: int) -> Rect:
    """``r`` shifted (not cut) into the frame below ``top`` (the bar's bottom)."""
    x1, y1, x2, y2 = r
    rw, rh = x2 - x1, y2 - y1
    x1 = min(max(0, x1), max(0, w - rw))
    y1 = min(max(top, y1), max(top, h - rh))
    return (x1, y1, x1 + rw, y1 + rh)


class _Placer:
    def __init__(self, w: int, h: int, top: int):
        self.w, self.h, self.top = w, h, top
        self.taken: list[Rect] = []

    def free(self, r: Rect) -> bool:
        return (r[1] >= self.top and r[0] >= 0 and r[1] >= 0 and r[2] <= self.w and r[3] <= self.h
                and not any(_overlaps(r, t) for t in self.taken))

    def place(self, lw: int, lh: int, anchors: Sequence[tuple[int, int]]) -> Rect:
        """The first free rectangle among the anchors (top-left corners, each shifted inside),
        then the same anchors stepped up and down by label heights; if the frame is full, the
        first anchor (inside the frame, overlapping as little as it must)."""
        cands = [_inside((x, y, x + lw, y + lh), self.w, self.h, self.top) for x, y in anchors]
        for r in cands:
            if self.free(r):
                self.taken.append(r)
                return r
        for k in range(1, 2 * max(1, self.h // max(lh, 1))):
            for x, y in anchors[:2]:
                for dy in (-k * lh, k * lh):
                    r = _inside((x, y + dy, x + lw, y + dy + lh), self.w, self.h, self.top)
                    if self.free(r):
                        self.taken.append(r)
                        return r
        best = min(cands, key=lambda r: sum(_overlap_area(r, t) for t in self.taken))
        self.taken.append(best)
        return best


def _overlap_area(a: Rect, b: Rect) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


# -- labels --------------------------------------------------------------------------------

def face_labels(prefix: str, a: Optional[Attributes]) -> list[str]:
    """Label variants for one face, longest first: full, short, number only."""
    if a is None:
        return [prefix]
    if not a.known:
        return [f"{prefix} ?", prefix]
    g = "M" if a.gender == "male" else "F"
    conf = min(a.gender_confidence, 0.99)  # never "100%"
    full = f"{prefix} {g} {conf:.0%} {a.age:.0f}y ({a.age_low:.0f}-{a.age_high:.0f})"
    return [full, f"{prefix} {g} {a.age:.0f}", prefix]


def _pick_label(variants: list[str], box_w: float, scale: float, weight: int) -> str:
    """Full label for a face at least five characters wide, short for two, number below."""
    char = _text_size("M", scale, weight)[0]
    if box_w >= 5 * char:
        return variants[0]
    if box_w >= 2 * char and len(variants) > 1:
        return variants[min(1, len(variants) - 1)]
    return variants[-1]


def _face_anchors(box: Rect, lw: int, lh: int, gap: int) -> list[tuple[int, int]]:
    x1, y1, x2, y2 = box
    return [(x1, y1 - lh - gap // 2), (x1, y2 + gap // 2), (x2 + gap, y1), (x1 - lw - gap, y1),
            (x1, y1 + gap)]


def _ibox(box) -> Rect:
    return tuple(int(round(v)) for v in box)  # type: ignore[return-value]


def _stats_text(stats: Stats, boxes: int) -> str:
    s = (f"{stats.fps:4.1f} fps  {stats.latency_ms:3.0f} ms  faces {boxes}  "
         f"dropped {stats.frames_dropped}")
    if stats.counts:
        s += "  " + "  ".join(f"{k} in {v.get('in', 0)} out {v.get('out', 0)}"
                              for k, v in stats.counts.items())
    if not stats.source_up:
        s += "  SOURCE DOWN, reconnecting"
    return s


def _bar_size(w: int, h: int, text: str, scale: float, weight: int) -> tuple[Rect, float, int]:
    """The bar's rectangle, and the text scale and width that fit it (the text shrinks rather
    than run off a narrow frame)."""
    lw, lh = _label_wh(text, scale, weight)
    while lw > w and scale > 0.3:
        scale *= 0.9
        lw, lh = _label_wh(text, scale, weight)
    return (0, 0, w, min(h, lh)), scale, lw


def _paint_bar(img: np.ndarray, text: str, rect: Rect, scale: float, lw: int, weight: int) -> None:
    cv2.rectangle(img, (0, 0), (rect[2] - 1, rect[3] - 1), TEXT_BG, -1)
    _put_label(img, text, (0, 0, lw, rect[3]), WHITE, scale, weight)


def _arrow_and_sides(name: str, p1: Point, p2: Point, size: int) -> tuple[Point, Point, Point, Point]:
    """Arrow (tail, head) across the line's midpoint in the ``in`` direction, and where the
    ``in`` and ``out`` side labels go."""
    mx, my = (p1[0] + p2[0]) / 2, (p1[1] + p2[1]) / 2
    dx, dy = p2[0] - p1[0], p2[1] - p1[1]
    n = math.hypot(dx, dy) or 1.0
    # counting.Segment: signed = cross(p1, p2, p) > 0 before an "in" crossing, < 0 after.
    # cross(p1, p2, p) = dx * (py - y1) - dy * (px - x1); its gradient is (-dy, dx).
    ux, uy = dy / n, -dx / n  # unit normal pointing to the negative ("in") side
    tail = (mx - ux * size, my - uy * size)
    head = (mx + ux * size, my + uy * size)
    in_at = (mx + ux * size * 1.6, my + uy * size * 1.6)
    out_at = (mx - ux * size * 1.6, my - uy * size * 1.6)
    return tail, head, in_at, out_at


def render(img: np.ndarray, people: Iterable[Person], stats: Optional[Stats] = None,
           geometry: Optional[Geometry] = None, occupancy: Optional[dict] = None) -> Layout:
    """Draw boxes, labels, lines, zones and the stats bar in place; return what was placed."""
    h, w = img.shape[:2]
    scale, thick, weight = sizes(img.shape)
    people = [p for p in people if not p.track.misses]
    layout = Layout((w, h), scale=scale, thick=thick, boxes=len(people))
    bar = None
    if stats is not None:
        layout.bar_text = _stats_text(stats, len(people))
        bar, bar_scale, bar_w = _bar_size(w, h, layout.bar_text, scale, weight)
        layout.bar = bar
    placer = _Placer(w, h, bar[3] if bar else 0)
    geometry = geometry or Geometry()
    occupancy = occupancy if occupancy is not None else getattr(stats, "zones", None) or {}
    gap = max(2, thick * 2)
    for name, pts in geometry.zones:
        ipts = np.array([[int(round(x)), int(round(y))] for x, y in pts], np.int32)
        cv2.polylines(img, [ipts], True, ZONE, thick, cv2.LINE_AA)
        text = f"{name}: {occupancy[name]} inside" if name in occupancy else name
        lw, lh = _label_wh(text, scale, weight)
        top = min(pts, key=lambda p: (p[1], p[0]))
        r = placer.place(lw, lh, [(int(top[0]) + gap, int(top[1]) + gap), (int(top[0]), int(top[1]) - lh - gap)])
        layout.labels.append(Label(text, r, "zone"))
    arrow_len = max(12, int(round(24 * scale / 0.55)))
    for name, p1, p2 in geometry.lines:
        a, b = tuple(map(int, map(round, p1))), tuple(map(int, map(round, p2)))
        cv2.line(img, a, b, LINE, thick, cv2.LINE_AA)
        tail, head, in_at, out_at = _arrow_and_sides(name, p1, p2, arrow_len)
        cv2.arrowedLine(img, tuple(map(int, tail)), tuple(map(int, head)), LINE, max(thick, 2),
                        cv2.LINE_AA, tipLength=0.35)
        for text, at in ((name, (p1[0] + gap, p1[1] + gap)), ("in", in_at), ("out", out_at)):
            lw, lh = _label_wh(text, scale, weight)
            r = placer.place(lw, lh, [(int(at[0] - (0 if text == name else lw / 2)),
                                       int(at[1] - (0 if text == name else lh / 2)))])
            layout.labels.append(Label(text, r, "line"))
    # Faces top to bottom, left to right: an upper face keeps the place above it.
    for person in sorted(people, key=lambda p: (p.track.box[1], p.track.box[0])):
        t = person.track
        box = _ibox(t.box)
        if not t.confirmed:
            cv2.rectangle(img, box[:2], box[2:], TENTATIVE, thick)
            continue
        cv2.rectangle(img, box[:2], box[2:], BOX, thick + 1)
        text = _pick_label(face_labels(f"#{t.id}", person.attributes), box[2] - box[0], scale, weight)
        lw, lh = _label_wh(text, scale, weight)
        r = placer.place(lw, lh, _face_anchors(box, lw, lh, gap))
        layout.labels.append(Label(text, r, "face"))
    for lab in layout.labels:
        color = {"face": BOX, "line": LINE, "zone": ZONE}[lab.kind]
        _put_label(img, lab.text, lab.rect, color, scale, weight)
    if bar is not None:  # last: boxes and lines pass under it, never over it
        _paint_bar(img, layout.bar_text, bar, bar_scale, bar_w, weight)
    return layout


def draw(img: np.ndarray, people: Iterable[Person], stats: Optional[Stats] = None,
         lines=(), occupancy: Optional[dict] = None) -> np.ndarray:
    """``render`` returning the image. ``lines``: a ``Geometry`` or the old ``(p1, p2, name)``
    list (named segments drawn as lines)."""
    geo = lines if isinstance(lines, Geometry) else Geometry.of_segments(lines)
    render(img, people, stats, geo, occupancy)
    return img


def layout_faces(img: np.ndarray, faces: Sequence[FaceResult],
                 view_width: Optional[int] = None) -> Layout:
    """Annotate a single analysed image (web API, batch) and return the layout; faces are
    numbered in the order given (callers sort them left to right)."""
    h, w = img.shape[:2]
    scale, thick, weight = sizes(img.shape, view_width)
    layout = Layout((w, h), scale=scale, thick=thick, boxes=len(faces))
    placer = _Placer(w, h, 0)
    gap = max(2, thick * 2)
    order = sorted(range(len(faces)), key=lambda i: (faces[i].box[1], faces[i].box[0]))
    placed: dict[int, Label] = {}
    for i in order:
        box = _ibox(faces[i].box)
        cv2.rectangle(img, box[:2], box[2:], BOX, thick + 1)
        text = _pick_label(face_labels(str(i), faces[i].attributes), box[2] - box[0], scale, weight)
        lw, lh = _label_wh(text, scale, weight)
        placed[i] = Label(text, placer.place(lw, lh, _face_anchors(box, lw, lh, gap)), "face")
    layout.labels = [placed[i] for i in range(len(faces))]
    for lab in layout.labels:
        _put_label(img, lab.text, lab.rect, BOX, scale, weight)
    return layout


def draw_faces(img: np.ndarray, faces: Iterable[FaceResult],
               view_width: Optional[int] = None) -> np.ndarray:
    """``layout_faces`` returning the image. ``view_width``: the width (px) the picture will
    be shown at (the web page says); text and strokes then scale so a label stays ~13 px tall
    there."""
    layout_faces(img, list(faces), view_width)
    return img
