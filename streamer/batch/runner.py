"""Batch: every image in a folder -> ``faces.csv``, ``errors.csv`` and annotated copies.

``python run.py batch --input DIR --output DIR [--conf 0.5] [--workers N] [--recursive]
[--no-annotate] [--resume] [--config FILE]``; the flags override ``batch.conf``,
``batch.workers``, ``batch.recursive`` and ``batch.annotate``. Images are decoded by
``imageio`` with the web API's limits (``web.max_side``, ``web.max_pixels``) and analysed by
``analyze.Analyzer``, the same path as ``/analyze``.

Outputs (contract):

- ``faces.csv``: ``path,face,x1,y1,x2,y2,score,gender,gender_confidence,age,age_low,age_high``.
  One row per face; an image with no face still gets one row with ``face`` and the rest empty,
  so every analysed image appears. ``path`` is relative to ``--input`` with ``/`` separators.
  Boxes are in pixels of the upright image (EXIF orientation applied) at its original
  resolution, whatever size it was analysed at. Attribute cells are empty when the face was not
  judged (too small, too blurred). Rows are in path order (sorted walk).
- ``errors.csv``: ``path,error``, one row per image that could not be analysed, ``error`` being
  ``<code>: <reason>`` on one line (codes: imageio's, plus ``refused`` for unsafe paths,
  ``crashed`` when a worker process died on the image twice, ``failed`` for anything else).
- annotated copies at ``--output/<path>`` (unless ``--no-annotate``), in the same format, at
  the size the image was analysed at (see below; long side <= ``web.max_side``).

Resolution: JPEGs at least 3x ``detector.width`` on their long side (1080p and up) are
decoded with libjpeg's DCT scaling to no less than 1.5x ``detector.width`` (960 px): the
detector only sees a copy ``detector.width`` wide, and decoding plus annotating at half size
costs a third of the full-size work. When a face is then too narrow for the attribute nets
(``attributes.min_face_px``) but would not be at full size, the image is analysed again at full
resolution, so no attribute answer is lost to the reduction; ``detector.min_face_px`` is applied
to boxes in original pixels, so no face is lost either.

Safety: outputs never leave ``--output``. Symlinks with an absolute target, symlinks resolving
outside the input tree, broken symlinks and symlinked folders (with ``--recursive``) are not
read and are listed in ``errors.csv``; a relative symlink to a file inside the tree is read.
Annotated copies are written through a temporary file and ``os.replace`` after checking that
the destination folder resolves inside ``--output``, so a symlink planted there is never
followed. ``--output`` may not be, or lie inside, ``--input``.

Processes: ``workers`` (0 = one per core) processes from a ``forkserver`` (``spawn`` where that
is missing) context; each loads the models once in its initializer and runs OpenCV with
``cores // workers`` threads, so cores are never oversubscribed. A failed image is retried once:
unexpected exceptions and read errors are retried, decode refusals (``ImageError``) are not, as
the same bytes give the same answer. When a worker process dies, every image it might have
been running is retried one at a time, so only the image that kills a worker is blamed.

Interrupts and resume: the parent writes both CSVs itself, one ``write()`` per image (all of
its rows at once) and nothing is buffered, so SIGINT/SIGTERM (or a kill) leaves only whole
images; the first SIGINT stops cleanly, a second one aborts. ``--resume`` skips every image
already in ``faces.csv`` (a partial last line left by a hard kill is cut off) and re-attempts
everything else, including the images in ``errors.csv``, which is rewritten. Without
``--resume`` an existing ``faces.csv`` is never overwritten.

Exit codes: 0 every image analysed, 2 some images failed (counted on stderr), 1 usage error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from streamer import config as config_mod
from streamer.errors import ImageError, StreamerError

log = logging.getLogger(__name__)

FACE_COLUMNS = ("path", "face", "x1", "y1", "x2", "y2", "score", "gender", "gender_confidence",
                "age", "age_low", "age_high")
ERROR_COLUMNS = ("path", "error")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp",
                              ".tif", ".tiff"})
MAX_ATTEMPTS = 2  # a failed image is retried once
# Large JPEGs are decoded with libjpeg's DCT scaling (1/2, 1/4, 1/8) while the long side stays
# >= this many times detector.width: the detector sees a copy downscaled to detector.width
# anyway, and an image with a face too small to judge at that scale is decoded again in full
# (Worker._needs_full_resolution). On 1080p JPEGs this halves decode and annotation costs
# (scripts/bench_batch.py). 0 disables it.
DECODE_FLOOR_PER_DETECTOR_WIDTH = 1.5
EXIT_OK, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130


# ---- data crossing the process boundary ------------------------------------------------

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


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


# ---- discovery --------------------------------------------------------------------------

def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def discover(root: Path, recursive: bool) -> list[Item]:
    """Every image file under ``root`` (by extension), sorted, with unsafe paths refused."""
    root_real = os.path.realpath(root)
    items: list[Item] = []

    def walk(folder: str, prefix: str) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            items.append(Item(prefix.rstrip("/") or ".", refusal=f"unreadable: cannot list folder: "
                                                                   f"{e.strerror}"))
            return
        for e in entries:
            rel = prefix + e.name
            is_image = os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
            if not _safe_rel(rel):
                items.append(Item(_printable(rel), refusal="refused: the name is not a safe relative "
                                                           "path (.., empty part or not UTF-8)"))
                continue
            if e.is_symlink():
                item = _symlink_item(e, rel, root_real, recursive, is_image)
                if item is not None:
                    items.append(item)
            elif e.is_dir(follow_symlinks=False):
                if recursive:
                    walk(e.path, rel + "/")
            elif is_image and e.is_file(follow_symlinks=False):
                items.append(Item(rel, src=e.path))

    walk(str(root), "")
    return items


def _symlink_item(e: os.DirEntry, rel: str, root_real: str, recursive: bool,
                  is_image: bool) -> Optional[Item]:
    target = os.readlink(e.path)
    real = os.path.realpath(e.path)
    is_dir = os.path.isdir(real)
    if not is_image and not (is_dir and recursive):
        return None  # not something batch would read anyway
    if os.path.isabs(target):
        return Item(rel, refusal=f"refused: absolute symlink (-> {target}); only relative links "
                                 "inside the input folder are followed")
    if not _inside(real, root_real):
        return Item(rel, refusal=f"refused: symlink points outside the input folder (-> {target})")
    if is_dir:
        return Item(rel, refusal="refused: symlinked folder not followed (could loop)")
    if not os.path.isfile(real):
        return Item(rel, refusal=f"refused: broken symlink or not a regular file (-> {target})")
    return Item(rel, src=real)


def _safe_rel(rel: str) -> bool:
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts) or os.path.isabs(rel):
        return False
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the name (surrogateescape)
        return False
    return True


def _printable(rel: str) -> str:
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# ---- the worker side --------------------------------------------------------------------

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
            return ImageResult(item.rel, error=f"{e.code}: {_one_line(e)}",
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
            return ImageResult(item.rel, error=f"failed: {type(e).__name__}: {_one_line(e)}",
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
        if not _inside(os.path.realpath(folder), self._out_real):
            raise StreamerError(f"annotated copy would leave the output folder ({folder})")
        data = _encode(draw_faces(image, faces), os.path.splitext(rel)[1].lower(),
                       self.opts.jpeg_quality)
        tmp = os.path.join(folder, f".{os.path.basename(dest)}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)  # replaces a planted symlink itself, never its target
        except BaseException:
            with _suppress():
                os.unlink(tmp)
            raise


def _encode(image, ext: str, quality: int) -> bytes:
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


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError)


_WORKER: Optional[Worker] = None  # one per worker process, set by the initializer
_INIT_ERROR: Optional[str] = None


def _init_worker(make_analyzer: Callable, cfg, opts: Options, threads: int) -> None:
    import cv2

    # The parent decides when to stop (a terminal's Ctrl-C reaches the whole process group);
    # workers finish the image in hand and exit when the pool shuts down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(threads)
    global _WORKER, _INIT_ERROR
    try:
        _WORKER = Worker(make_analyzer(cfg), opts)
    except Exception as e:  # noqa: BLE001 - reported through the first task, see _run_item
        _INIT_ERROR = f"{type(e).__name__}: {_one_line(e)}"


def _run_item(item: Item) -> ImageResult:
    if _WORKER is None:
        return ImageResult(item.rel, error=f"worker cannot start: {_INIT_ERROR}", fatal=True)
    t0 = time.process_time()
    res = _WORKER.process(item)
    return dataclasses.replace(res, cpu_s=time.process_time() - t0)


def real_analyzer(cfg):
    from streamer.core.analyze import Analyzer
    return Analyzer(cfg)


# ---- scheduling -------------------------------------------------------------------------

class Scheduler:
    """Runs items on a process pool and yields results in input order.

    At most ``2 * workers`` images are in flight and at most ``8 * workers`` results wait for a
    slow predecessor, so memory stays bounded and the CSV is sorted. Retry policy: see the
    module doc. ``stop`` ends the run after the images in flight (their results are dropped).
    """

    MAX_DEAD_POOLS = 5  # pools in a row that die before finishing any image: workers can't run

    def __init__(self, make_pool: Callable[[], ProcessPoolExecutor], workers: int,
                 stop: threading.Event):
        self.make_pool = make_pool
        self.workers = workers
        self.stop = stop

    def run(self, items: list[Item]) -> Iterator[ImageResult]:
        position = {it.rel: p for p, it in enumerate(items)}
        pending = deque(it for it in items if it.src is not None)
        ready = {position[it.rel]: ImageResult(it.rel, error=it.refusal)
                 for it in items if it.src is None}
        attempts: dict[str, int] = {}
        suspects: set[str] = set()
        inflight: dict = {}
        next_pos = 0
        pool = None
        pool_results = dead_pools = 0
        try:
            while next_pos < len(items):
                while next_pos in ready:
                    yield ready.pop(next_pos)
                    next_pos += 1
                if next_pos >= len(items) or self.stop.is_set():
                    return
                if pool is None:
                    pool = self.make_pool()
                    pool_results = 0
                while pending:
                    it = pending[0]
                    if suspects:
                        if inflight:
                            break  # isolation: one image at a time until suspects are cleared
                    elif (len(inflight) >= 2 * self.workers
                          or position[it.rel] >= next_pos + 8 * self.workers):
                        break
                    pending.popleft()
                    attempts[it.rel] = attempts.get(it.rel, 0) + 1
                    inflight[pool.submit(_run_item, it)] = it
                done, _ = wait(list(inflight), timeout=0.25, return_when=FIRST_COMPLETED)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                    if self.stop.is_set():
                        return
                    # Every future of a broken pool fails; let them settle, keep the results
                    # that made it, then judge the crash and start a fresh pool.
                    wait(list(inflight), timeout=10)
                    lost = []
                    for fut, it in list(inflight.items()):
                        if fut.done() and not isinstance(fut.exception(), BrokenProcessPool):
                            self._settle(it, fut, attempts, suspects, pending, ready, position)
                            pool_results += 1
                        else:
                            lost.append(it)
                    inflight.clear()
                    dead_pools = 0 if pool_results else dead_pools + 1
                    if dead_pools >= self.MAX_DEAD_POOLS:
                        raise StreamerError(
                            f"worker processes died {dead_pools} times in a row before finishing "
                            "any image; see the messages above")
                    self._crashed(lost, attempts, suspects, pending, ready, position)
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = None
                    continue
                for fut in done:
                    self._settle(inflight.pop(fut), fut, attempts, suspects, pending, ready, position)
                    pool_results += 1
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _settle(it: Item, fut, attempts, suspects, pending, ready, position) -> None:
        exc = fut.exception()
        res = fut.result() if exc is None else ImageResult(
            it.rel, error=f"failed: {type(exc).__name__}: {_one_line(exc)}", retryable=True)
        if res.fatal:
            raise StreamerError(res.error)
        suspects.discard(it.rel)
        if res.retryable and attempts[it.rel] < MAX_ATTEMPTS:
            log.info("retrying %s after: %s", it.rel, res.error)
            pending.appendleft(it)
        else:
            ready[position[it.rel]] = res

    @staticmethod
    def _crashed(lost: list[Item], attempts, suspects, pending, ready, position) -> None:
        """A worker died with ``lost`` in flight. Alone, the image is to blame (a second time:
        recorded); shared, nobody is charged and each is re-run alone."""
        if len(lost) == 1:
            it = lost[0]
            if it.rel in suspects or attempts[it.rel] >= MAX_ATTEMPTS:
                suspects.discard(it.rel)
                ready[position[it.rel]] = ImageResult(
                    it.rel, error="crashed: the worker process died while analysing this image (twice)")
                return
        for it in reversed(lost):
            if len(lost) > 1:
                attempts[it.rel] -= 1
            log.warning("a worker process died; re-running %s on its own", it.rel)
            suspects.add(it.rel)
            pending.appendleft(it)


def make_pool_factory(make_analyzer: Callable, cfg, opts: Options, workers: int,
                      threads: int) -> Callable[[], ProcessPoolExecutor]:
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    if method == "forkserver":
        # Workers fork from a server that has already imported these (about 0.5 s each per
        # worker otherwise); no effect once the server runs, e.g. on a second run in a process.
        ctx.set_forkserver_preload(["numpy", "cv2", "streamer.batch.runner", "streamer.core.analyze",
                                    "streamer.core.attributes", "streamer.runtime.wiring"])

    def make() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(make_analyzer, cfg, opts, threads))
    return make


# ---- CSV files --------------------------------------------------------------------------

class CsvLog:
    """An append-only CSV. ``append(rows)`` renders all rows and hands them to one ``write()``
    on an unbuffered descriptor, so an interrupt or a kill never leaves part of an image."""

    def __init__(self, path: Path, header: Iterable[str], fresh: bool):
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if fresh else 0)
        self._fd = os.open(path, flags, 0o644)
        if fresh or os.fstat(self._fd).st_size == 0:
            self.append([list(header)])

    def append(self, rows: list[list[str]]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        data = buf.getvalue().encode("utf-8")
        while data:
            n = os.write(self._fd, data)
            data = data[n:]

    def close(self) -> None:
        os.close(self._fd)


def read_done(path: Path) -> set[str]:
    """Paths already in ``faces.csv``; a partial last line (hard kill) is cut off the file."""
    if not path.exists():
        return set()
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        cut = raw.rfind(b"\n") + 1
        log.warning("%s: dropping an incomplete last line", path)
        os.truncate(path, cut)
        raw = raw[:cut]
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8", "replace"))))
    if not rows:
        return set()
    if tuple(rows[0]) != FACE_COLUMNS:
        raise StreamerError(f"{path} was not written by batch (header {','.join(rows[0])[:80]!r}); "
                            "choose another --output")
    return {r[0] for r in rows[1:] if r}


# ---- orchestration ----------------------------------------------------------------------

def check_paths(opts: Options) -> None:
    """Usage errors, each one line naming the bad value."""
    inp, out = opts.input, opts.output
    if not inp.is_dir():
        raise StreamerError(f"--input {inp}: no such folder" if not inp.exists()
                            else f"--input {inp}: not a folder")
    if out.exists() and not out.is_dir():
        raise StreamerError(f"--output {out}: exists and is not a folder")
    if _inside(os.path.realpath(out), os.path.realpath(inp)):
        raise StreamerError(f"--output {out} is inside --input {inp}: outputs would be read back "
                            "as inputs; choose a folder outside it")
    if not opts.resume and (out / "faces.csv").exists():
        raise StreamerError(f"--output {out} already has faces.csv: add --resume to continue that "
                            "run, or choose another folder")


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def run(opts: Options, cfg, make_analyzer: Callable = real_analyzer,
        stop: Optional[threading.Event] = None, progress: bool = True) -> Summary:
    """Process the folder; returns the counts of this run. Raises StreamerError on usage errors."""
    from tqdm import tqdm

    check_paths(opts)
    # The detector drops faces under detector.min_face_px in the pixels it is given; batch
    # applies that limit itself in original pixels (Options.min_face_px), so a reduced decode
    # does not drop faces a full-size one keeps.
    cfg = dataclasses.replace(cfg, detector=dataclasses.replace(cfg.detector, min_face_px=0))
    # Load the models once here first: a missing or altered model file is then one clear error
    # instead of every worker's initializer failing.
    make_analyzer(cfg)
    stop = stop or threading.Event()
    opts.output.mkdir(parents=True, exist_ok=True)
    faces_path, errors_path = opts.output / "faces.csv", opts.output / "errors.csv"
    done = read_done(faces_path) if opts.resume else set()
    items = discover(opts.input, opts.recursive)
    todo = [it for it in items if it.rel not in done]
    n_cores = cores()
    workers = max(1, min(opts.workers or n_cores, max(1, len(todo))))
    threads = max(1, n_cores // workers)
    log.info("%d images (%d to do) with %d workers x %d OpenCV threads",
             len(items), len(todo), workers, threads)

    faces_log = CsvLog(faces_path, FACE_COLUMNS, fresh=not opts.resume)
    errors_log = CsvLog(errors_path, ERROR_COLUMNS, fresh=True)  # failures are re-attempted
    sched = Scheduler(make_pool_factory(make_analyzer, cfg, opts, workers, threads), workers, stop)
    analysed = faces = errors = 0
    cpu_s = 0.0
    first: Optional[float] = None
    t0 = time.monotonic()
    bar = tqdm(total=len(todo), unit="img", disable=None if progress else True,
               dynamic_ncols=True, file=sys.stderr)
    try:
        for res in sched.run(todo):
            if first is None and res.cpu_s:
                first = time.monotonic() - t0
            cpu_s += res.cpu_s
            if res.ok:
                rows = [f.cells(res.rel) for f in res.faces] or [[res.rel] + [""] * 11]
                faces_log.append(rows)
                analysed += 1
                faces += len(res.faces)
            else:
                errors_log.append([[res.rel, res.error]])
                errors += 1
            bar.update(1)
            bar.set_postfix(faces=faces, errors=errors, refresh=False)
    finally:
        bar.close()
        faces_log.close()
        errors_log.close()
    return Summary(len(items), len(items) - len(todo), analysed, faces, errors,
                   time.monotonic() - t0, stop.is_set() and analysed + errors < len(todo), cpu_s,
                   first or 0.0)


# ---- command line -----------------------------------------------------------------------

def add_parser(subparsers) -> None:
    p = subparsers.add_parser("batch", help="analyse a folder of images into faces.csv")
    p.add_argument("--input", required=True, help="folder of images")
    p.add_argument("--output", required=True,
                   help="folder for faces.csv, errors.csv and annotated copies (not inside --input)")
    p.add_argument("--conf", type=float, help="face score threshold (batch.conf)")
    p.add_argument("--workers", type=int, help="worker processes, 0 = one per core (batch.workers)")
    p.add_argument("--recursive", action="store_const", const=True,
                   help="also images in subfolders (batch.recursive)")
    p.add_argument("--no-annotate", dest="annotate", action="store_const", const=False,
                   help="do not write annotated copies (batch.annotate)")
    p.add_argument("--resume", action="store_true",
                   help="skip images already in faces.csv; re-attempt those in errors.csv")
    p.add_argument("--config", help="YAML config (default config/default.yaml)")
    p.error = _usage_error  # argparse exits 2, which here means "some images failed"


def _usage_error(message: str) -> None:
    print(f"error: batch: {message} (see run.py batch --help)", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def options_from(a: argparse.Namespace, cfg) -> Options:
    return Options(Path(a.input), Path(a.output), cfg.batch.conf, cfg.batch.workers,
                   cfg.batch.recursive, cfg.batch.annotate, bool(a.resume), cfg.web.max_side,
                   cfg.web.max_pixels, cfg.web.jpeg_quality,
                   min_side=round(DECODE_FLOOR_PER_DETECTOR_WIDTH * cfg.detector.width),
                   attr_min_face_px=cfg.attributes.min_face_px if cfg.attributes.enabled else 0,
                   min_face_px=cfg.detector.min_face_px)


def run_cli(a: argparse.Namespace) -> int:
    cfg = config_mod.load(a.config, {"batch.conf": a.conf, "batch.workers": a.workers,
                                     "batch.recursive": a.recursive, "batch.annotate": a.annotate})
    logging.basicConfig(level=getattr(logging, cfg.log_level.upper(), logging.INFO),
                        stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    opts = options_from(a, cfg)
    stop = threading.Event()

    def _on_signal(signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt
        print(f"\nbatch: signal {signum}, stopping after the images in flight "
              "(again to abort)", file=sys.stderr)
        stop.set()

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = run(opts, cfg, stop=stop)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    print(summary.format())
    if summary.interrupted:
        print("batch: interrupted; run again with --resume to finish", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary.errors:
        print(f"batch: {summary.errors} image(s) failed, see {opts.output / 'errors.csv'}",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
