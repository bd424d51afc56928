"""The worker side of a batch: decode, analyse and annotate one image (``Worker``), and the
functions a worker process runs (``init_worker`` once, ``run_item`` per image).

Each worker process loads the models once in its initializer and runs OpenCV with the
thread count the parent gives it (``cores // workers``). A decode refusal (``ImageError``) is
final, as the same bytes give the same answer; a read error or an unexpected exception is
marked retryable. Annotated copies never leave ``--output``: the destination folder must
resolve inside it, and the file goes through a temporary file and ``os.replace``, so a
symlink planted there is replaced, never followed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import signal
import time
from typing import Callable, Optional

from streamer.batch.discover import inside
from streamer.batch.records import FaceRow, ImageResult, Item, Options, one_line
from streamer.errors import ImageError, StreamerError


class Worker:
    """Decode, analyse, annotate one image. Lives in a worker process (or a test)."""

    def __init__(self, analyzer, opts: Options):
        self.analyzer = analyzer
        self.opts = opts
        self._out_real = os.path.realpath(opts.output)

    def process(self, item: Item) -> ImageResult:
        from streamer.media import images as imageio

        o = self.opts
        try:
            data = imageio.read_file(item.src)
            dec = imageio.decode(data, o.max_side, o.max_pixels, min_side=o.min_side)
        except ImageError as e:
            return ImageResult(item.rel, error=f"{e.code}: {one_line(e)}",
                               retryable=e.code == "unreadable")
        try:
            analysis = self.analyzer.analyze(dec.image, o.conf)
            if self._needs_full_resolution(dec, analysis):
                dec = imageio.decode(data, o.max_side, o.max_pixels)
                analysis = self.analyzer.analyze(dec.image, o.conf)
            faces, rows = [], []
            for f in analysis.faces:
                box = dec.to_original(f.box)
                if min(box[2] - box[0], box[3] - box[1]) < o.min_face_px:
                    continue  # detector.min_face_px, in original pixels whatever the scale
                a = f.attributes
                rows.append(FaceRow(len(faces), box, f.score, a.gender, a.gender_confidence,
                                    a.age, a.age_low, a.age_high))
                faces.append(f)
            if o.annotate:
                self._write_annotated(item.rel, dec.image, faces)
        except Exception as e:  # noqa: BLE001 - one bad image must not stop the batch
            return ImageResult(item.rel, error=f"failed: {type(e).__name__}: {one_line(e)}",
                               retryable=True)
        return ImageResult(item.rel, tuple(rows))

    def _needs_full_resolution(self, dec, analysis) -> bool:
        """After a reduced decode: is some face too small to judge at this scale but not at
        the full one? Then the image is analysed again at full resolution, so reducing never
        costs an attribute answer."""
        sx = dec.scale[0]
        if sx <= 1.0:
            return False
        full = min(1.0, self.opts.max_side / max(dec.width, dec.height)) * sx
        limit = self.opts.attr_min_face_px
        return any((f.box[2] - f.box[0]) < limit <= (f.box[2] - f.box[0]) * full
                   and not f.attributes.known for f in analysis.faces)

    def _write_annotated(self, rel: str, image, faces) -> None:
        from streamer.media.overlay import draw_faces

        dest = os.path.join(self.opts.output, *rel.split("/"))
        folder = os.path.dirname(dest)
        os.makedirs(folder, exist_ok=True)
        if not inside(os.path.realpath(folder), self._out_real):
            raise StreamerError(f"annotated copy would leave the output folder ({folder})")
        data = encode(draw_faces(image, faces), os.path.splitext(rel)[1].lower(),
                      self.opts.jpeg_quality)
        tmp = os.path.join(folder, f".{os.path.basename(dest)}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)  # replaces a planted symlink itself, never its target
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def encode(image, ext: str, quality: int) -> bytes:
    """The annotated copy in the input's format (``ext`` lower-case, with the dot)."""
    import cv2

    if ext in (".jpg", ".jpeg", ".jpe"):
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    elif ext in (".png", ".bmp", ".tif", ".tiff", ".webp"):
        ok, buf = cv2.imencode(ext, image)
    else:  # .gif: OpenCV builds differ; Pillow always writes it
        from PIL import Image

        b = io.BytesIO()
        Image.fromarray(image[:, :, ::-1]).save(b, "GIF")
        return b.getvalue()
    if not ok:
        raise StreamerError(f"cannot encode the annotated copy as {ext}")
    return buf.tobytes()


# ---- in the worker process --------------------------------------------------------------

_WORKER: Optional[Worker] = None  # one per worker process, set by the initializer
_INIT_ERROR: Optional[str] = None


def init_worker(make_analyzer: Callable, cfg, opts: Options, threads: int) -> None:
    """The pool initializer: models loaded once per process; a failure is reported through
    the first task (``run_item`` returns a fatal result), not lost in the pool."""
    import cv2

    # The parent decides when to stop (a terminal's Ctrl-C reaches the whole process group);
    # workers finish the image in hand and exit when the pool shuts down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(threads)
    global _WORKER, _INIT_ERROR
    try:
        _WORKER = Worker(make_analyzer(cfg), opts)
    except Exception as e:  # noqa: BLE001 - reported through the first task, see run_item
        _INIT_ERROR = f"{type(e).__name__}: {one_line(e)}"


def run_item(item: Item) -> ImageResult:
    if _WORKER is None:
        return ImageResult(item.rel, error=f"worker cannot start: {_INIT_ERROR}", fatal=True)
    t0 = time.process_time()
    res = _WORKER.process(item)
    return dataclasses.replace(res, cpu_s=time.process_time() - t0)


def real_analyzer(cfg):
    """The default ``make_analyzer``: the product's single-image path."""
    from streamer.core.analyze import Analyzer
    return Analyzer(cfg)
