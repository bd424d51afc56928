"""The data of a batch run: what crosses the process boundary (``Item`` in, ``ImageResult``
with its ``FaceRow``s out, ``Options`` to the worker initializer) and the run's ``Summary``.
All frozen (and picklable: they travel to and from the worker processes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class Item:
    """One input file. ``src`` is None when the path was refused (``refusal`` says why)."""

    rel: str  # relative to --input, POSIX separators
    src: Optional[str] = None
    refusal: Optional[str] = None


@dataclass(frozen=True)
class FaceRow:
    face: int
    box: tuple[float, float, float, float]
    score: float
    gender: Optional[str]
    gender_confidence: Optional[float]
    age: Optional[float]
    age_low: Optional[float]
    age_high: Optional[float]

    def cells(self, rel: str) -> list[str]:
        """The faces.csv cells of this face (``csvout.FACE_COLUMNS``)."""
        return [rel, str(self.face), *(f"{v:.1f}" for v in self.box), f"{self.score:.4f}",
                self.gender or "", _num(self.gender_confidence, 4), _num(self.age, 1),
                _num(self.age_low, 1), _num(self.age_high, 1)]


@dataclass(frozen=True)
class ImageResult:
    rel: str
    faces: tuple[FaceRow, ...] = ()
    error: Optional[str] = None  # "<code>: <reason>"
    retryable: bool = False
    cpu_s: float = 0.0  # worker CPU time of the attempt that gave this result
    fatal: bool = False  # the worker could not start: no image can succeed, stop the run

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Options:
    input: Path
    output: Path
    conf: float
    workers: int
    recursive: bool
    annotate: bool
    resume: bool
    max_side: int
    max_pixels: int
    jpeg_quality: int
    min_side: int = 0  # JPEG DCT-reduction floor on the long side; 0 = full resolution
    attr_min_face_px: int = 36  # attributes.min_face_px (see Worker._needs_full_resolution)
    min_face_px: int = 0  # detector.min_face_px, applied here in original pixels (see run)


@dataclass(frozen=True)
class Summary:
    images: int  # found in the input
    skipped: int  # already in faces.csv (--resume)
    analysed: int
    faces: int
    errors: int
    elapsed_s: float
    interrupted: bool
    cpu_s: float = 0.0  # CPU time of the workers on the images of this run
    startup_s: float = 0.0  # until the first result: worker start and model loading

    @property
    def images_per_s(self) -> float:
        """Overall rate, start-up included."""
        return (self.analysed + self.errors) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def steady_images_per_s(self) -> float:
        """Rate after the first result (workers up): what a long batch converges to."""
        n, t = self.analysed + self.errors - 1, self.elapsed_s - self.startup_s
        return n / t if n > 0 and t > 0 else self.images_per_s

    def format(self) -> str:
        return (f"batch: {self.images} images ({self.skipped} already done), {self.analysed} analysed, "
                f"{self.faces} faces, {self.errors} errors, {self.images_per_s:.1f} images/s, "
                f"{self.elapsed_s:.1f} s (start-up {self.startup_s:.1f} s, then "
                f"{self.steady_images_per_s:.1f} images/s), CPU {self.cpu_ms_per_image:.0f} ms/image"
                + (" (interrupted)" if self.interrupted else ""))

    @property
    def cpu_ms_per_image(self) -> float:
        """Worker CPU per image: on a shared or busy machine a steadier measure than images/s
        (cores / this = the throughput the work itself allows)."""
        n = self.analysed + self.errors
        return self.cpu_s * 1000 / n if n else 0.0


def _num(v: Optional[float], digits: int) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def one_line(e: BaseException) -> str:
    """An exception as one line for a CSV cell (its type name when it has no message)."""
    text = " ".join(str(e).split())
    return text or type(e).__name__
