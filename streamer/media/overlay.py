"""Overlay drawing: ``draw(image, people, stats, lines)`` draws in place and returns it.

Only called when something shows the picture (window, video file, MJPEG), so headless runs
with no video output pay nothing for it.
"""

from __future__ import annotations

from typing import Iterable, Optional

import cv2
import numpy as np

from streamer.types import Attributes, FaceResult, Person, Stats

BOX = (0, 255, 0)  # confirmed faces: pure green, easy to find again in a decoded frame
TENTATIVE = (160, 160, 160)
TEXT_BG = (0, 0, 0)
LINE = (255, 0, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _label(a: Optional[Attributes]) -> str:
    if a is None:
        return ""
    if not a.known:
        return "?"
    g = "M" if a.gender == "male" else "F"
    return f"{g} {a.gender_confidence:.0%} {a.age:.0f}y ({a.age_low:.0f}-{a.age_high:.0f})"


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color,
          weight: int = 1) -> None:
    (w, h), base = cv2.getTextSize(text, FONT, scale, weight)
    x, y = org
    y = max(h + 2, y)
    cv2.rectangle(img, (x, y - h - 3), (x + w + 2, y + base - 1), TEXT_BG, -1)
    cv2.putText(img, text, (x + 1, y - 1), FONT, scale, color, weight, cv2.LINE_AA)


def _scale(img: np.ndarray) -> tuple[float, int]:
    s = max(0.4, img.shape[1] / 1280 * 0.6)
    return s, max(1, round(img.shape[1] / 640))


def draw_box(img, box, color, label: str, thick: int, scale: float, weight: int = 1) -> None:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(img, (x1, y1), (x2, y2), color, thick)
    if label:
        _text(img, label, (x1, y1 - 2), scale, color, weight)


def draw(img: np.ndarray, people: Iterable[Person], stats: Optional[Stats] = None,
         lines: Iterable[tuple] = ()) -> np.ndarray:
    scale, thick = _scale(img)
    for (p1, p2, name) in lines:
        cv2.line(img, tuple(map(int, p1)), tuple(map(int, p2)), LINE, thick)
        _text(img, name, tuple(map(int, p1)), scale, LINE)
    for person in people:
        t = person.track
        if t.misses:
            continue
        if t.confirmed:
            draw_box(img, t.box, BOX, f"#{t.id} {_label(person.attributes)}".strip(), thick + 1, scale)
        else:
            draw_box(img, t.box, TENTATIVE, "", thick, scale)
    if stats is not None:
        s = (f"{stats.fps:4.1f} fps  {stats.latency_ms:3.0f} ms  faces {stats.faces}  "
             f"dropped {stats.frames_dropped}")
        if stats.counts:
            s += "  " + "  ".join(f"{k} in {v.get('in', 0)} out {v.get('out', 0)}"
                                  for k, v in stats.counts.items())
        if not stats.source_up:
            s += "  SOURCE DOWN, reconnecting"
        _text(img, s, (4, 4), scale, (255, 255, 255))
    return img


def draw_faces(img: np.ndarray, faces: Iterable[FaceResult],
               view_width: Optional[int] = None) -> np.ndarray:
    """Annotate a single analysed image (web API, batch); faces numbered in the order given.

    ``view_width``: the width (px) the picture will be shown at (the web page says); text,
    stroke and lines then scale with the image so a label stays ~13 px tall there."""
    scale, thick = _scale(img)
    weight = 1
    if view_width:
        k = img.shape[1] / view_width  # image pixels per shown pixel
        scale, thick, weight = max(0.4, 0.6 * k), max(1, round(1.5 * k)), max(1, round(1.5 * k))
    for i, f in enumerate(faces):
        draw_box(img, f.box, BOX, f"{i} {_label(f.attributes)}".strip(), thick + 1, scale, weight)
    return img
