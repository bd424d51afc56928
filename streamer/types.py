"""Core types: the only data that crosses a stage boundary.

A box is always ``(x1, y1, x2, y2)`` in pixels of the original (full-resolution) frame.
Landmarks are YuNet's five points in the same coordinates, in YuNet's order: right eye, left
eye, nose tip, right mouth corner, left mouth corner ("right" = the subject's right, which is
on the left of the image for a frontal face).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

Box = tuple[float, float, float, float]
Point = tuple[float, float]


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured image.

    ``id`` counts frames read from the source (gaps mean drops), ``ts`` the frame's time for
    events (epoch seconds): ``clock`` "wall" = capture time (``time.time()``, live sources),
    "media" = the recording's start + the frame's presentation time (files and folders, see
    media/mediaclock.py); ``mono`` the monotonic capture time for latency.
    """

    id: int
    ts: float
    mono: float
    image: np.ndarray = field(repr=False)
    clock: str = "wall"  # "wall" | "media"
    # What ``Processor.prepare`` derived from the image on the capture thread (None: the
    # inference stage derives it itself).
    prepared: Optional[object] = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float
    landmarks: Optional[tuple[Point, ...]] = None


@dataclass(frozen=True)
class Track:
    """A tracked face as of one frame.

    ``confirmed`` once it has ``min_hits`` matches; ``misses`` counts consecutive frames without
    a match (the box is then the motion prediction and ``landmarks`` is None). ``detected`` is
    True when a detection was matched in this very frame.
    """

    id: int
    box: Box
    score: float
    confirmed: bool
    hits: int
    misses: int
    first_frame: int
    last_frame: int
    landmarks: Optional[tuple[Point, ...]] = None

    @property
    def detected(self) -> bool:
        return self.misses == 0


@dataclass(frozen=True)
class Attributes:
    """Per-person answer, smoothed over the views classified so far.

    When a face could not be judged, every value is None and ``reason`` says why
    (e.g. ``"face too small (28 px < 36 px)"``).
    """

    gender: Optional[str] = None  # "male" | "female"
    gender_confidence: Optional[float] = None
    age: Optional[float] = None  # years
    age_low: Optional[float] = None
    age_high: Optional[float] = None
    age_confidence: Optional[float] = None
    samples: int = 0  # views averaged into this answer
    reason: Optional[str] = None

    @property
    def known(self) -> bool:
        return self.gender is not None


@dataclass(frozen=True)
class Person:
    """A tracked person as of one frame: where they are (``track``) and who the nets think they
    are (``attributes``, smoothed over the views classified so far; None until the first one).

    The one object that crosses from the processor to events, counting and the overlay, so the
    box and the answer for one person can never drift apart.
    """

    track: Track
    attributes: Optional[Attributes] = None

    @property
    def id(self) -> int:
        return self.track.id


@dataclass(frozen=True)
class FaceResult:
    """One face of a single-image analysis (web API, batch)."""

    box: Box
    score: float
    attributes: Attributes
    landmarks: Optional[tuple[Point, ...]] = None


@dataclass(frozen=True)
class Event:
    """One per-person or per-camera event; ``to_dict`` gives the documented JSON form."""

    type: str  # start | update | end | cross | summary | source_down | source_up
    camera: str
    ts: float
    frame_id: int
    payload: dict = field(default_factory=dict)
    id: str = ""
    clock: str = "wall"  # what ``ts`` is: "wall" (live) or "media" (a file's own time)

    SCHEMA = "streamer.event/1"

    def to_dict(self) -> dict:
        from streamer.timefmt import iso_ms

        d = {"schema": self.SCHEMA, "id": self.id, "type": self.type, "camera": self.camera,
             "ts": iso_ms(self.ts), "clock": self.clock, "frame_id": self.frame_id}
        d.update(self.payload)
        return d


@dataclass(frozen=True)
class Stats:
    """Pipeline health as of one processed frame, for overlay, summary and /metrics."""

    frames_in: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0  # read but never processed: capture-queue drops + stale (Pipeline.frames_dropped)
    frames_stale: int = 0  # the stale part of frames_dropped
    fps: float = 0.0
    latency_ms: float = 0.0
    faces: int = 0
    tracks: int = 0
    reconnects: int = 0
    source_up: bool = True
    counts: dict = field(default_factory=dict)
    zones: dict = field(default_factory=dict)  # zone -> people inside now
