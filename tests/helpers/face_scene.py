"""Clips with ground truth, built from real faces: UTKFace dev crops moving on known paths over a
real background frame (the shared data has no track, count or dwell ground truth).

A ``Walker`` is one person: a crop (its labels from labels.csv) and its centre per frame,
starting at frame ``start``. ``write_clip`` pastes every walker present in a frame with a soft
elliptical edge and writes an mp4; the truth (frames on screen, line crossings, time in a zone)
follows from the paths alone.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np


@dataclass(frozen=True)
class Walker:
    name: str  # crop path relative to the dev folder (labels.csv's "path")
    path: tuple[tuple[float, float], ...]  # face centre per frame
    start: int = 0  # first frame it is on screen
    size: int = 160  # face side in pixels
    sizes: Optional[tuple[int, ...]] = None  # per frame (a face coming closer), overrides size
    blur: Optional[tuple[float, ...]] = None  # per frame Gaussian sigma (motion, focus), 0 = sharp

    def size_at(self, frame: int) -> int:
        return self.sizes[frame - self.start] if self.sizes else self.size

    @property
    def end(self) -> int:
        """One past its last frame on screen."""
        return self.start + len(self.path)

    def at(self, frame: int) -> Optional[tuple[float, float]]:
        i = frame - self.start
        return self.path[i] if 0 <= i < len(self.path) else None


def labels(faces_dir: Path) -> dict[str, dict]:
    with open(faces_dir / "labels.csv", newline="") as f:
        return {r["path"]: r for r in csv.DictReader(f)}


def line_path(x0: float, x1: float, y: float, speed: float) -> tuple[tuple[float, float], ...]:
    """Straight horizontal walk from x0 towards x1 at ``speed`` px per frame (x1 included when
    the distance is a multiple of the speed)."""
    n = int(abs(x1 - x0) // speed) + 1
    step = speed if x1 > x0 else -speed
    return tuple((x0 + i * step, y) for i in range(n))


def alpha(size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    d = np.sqrt(((xx - size / 2) / (size * 0.48)) ** 2 + ((yy - size / 2) / (size * 0.5)) ** 2)
    return np.clip((1.0 - d) / 0.12, 0, 1)[..., None].astype(np.float32)


def paste(img: np.ndarray, crop: np.ndarray, a: np.ndarray, cx: float, cy: float) -> None:
    s = crop.shape[0]
    x0, y0 = int(round(cx - s / 2)), int(round(cy - s / 2))
    h, w = img.shape[:2]
    if x0 < 0 or y0 < 0 or x0 + s > w or y0 + s > h:
        raise ValueError(f"face at ({cx}, {cy}) leaves the {w}x{h} frame: keep paths inside")
    roi = img[y0:y0 + s, x0:x0 + s].astype(np.float32)
    img[y0:y0 + s, x0:x0 + s] = (a * crop + (1 - a) * roi).astype(np.uint8)


def background(video: Path, size: tuple[int, int]) -> np.ndarray:
    """The first frame of a real clip, resized to ``size`` (w, h)."""
    cap = cv2.VideoCapture(str(video))
    ok, bg = cap.read()
    cap.release()
    if not ok:
        raise RuntimeError(f"cannot read a frame of {video}")
    return cv2.resize(bg, size, interpolation=cv2.INTER_AREA)


def write_clip(out: Path, faces_dir: Path, bg: np.ndarray, walkers: Sequence[Walker], fps: float,
               frames: Optional[int] = None) -> int:
    """Write the scene to ``out`` (mp4v); returns the number of frames written."""
    originals: dict[str, np.ndarray] = {}
    crops: dict[tuple[str, int, float], np.ndarray] = {}
    masks: dict[int, np.ndarray] = {}

    def crop(name: str, size: int, sigma: float) -> np.ndarray:
        if name not in originals:
            img = cv2.imread(str(faces_dir / name), cv2.IMREAD_COLOR)
            if img is None:
                raise RuntimeError(f"cannot read {faces_dir / name}")
            originals[name] = img
        key = (name, size, sigma)
        if key not in crops:
            c = cv2.resize(originals[name], (size, size), interpolation=cv2.INTER_AREA)
            if sigma > 0:
                c = cv2.GaussianBlur(c, (0, 0), sigma)
            crops[key] = c.astype(np.float32)
        if size not in masks:
            masks[size] = alpha(size)
        return crops[key]
    n = frames if frames is not None else max(w.end for w in walkers)
    h, wd = bg.shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (wd, h))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {out}")
    try:
        for f in range(n):
            img = bg.copy()
            for w in walkers:
                p = w.at(f)
                if p is not None:
                    size = w.size_at(f)
                    sigma = w.blur[f - w.start] if w.blur else 0.0
                    c = crop(w.name, size, sigma)
                    paste(img, c, masks[size], *p)
            writer.write(img)
    finally:
        writer.release()
    return n
