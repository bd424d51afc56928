"""Batch: every image in a folder -> ``faces.csv``, ``errors.csv`` and annotated copies.

``python run.py batch --input DIR --output DIR [--conf 0.5] [--workers N] [--recursive]
[--no-annotate] [--resume] [--config FILE]``; the flags override ``batch.conf``,
``batch.workers``, ``batch.recursive`` and ``batch.annotate``. Images are decoded by
``media/images.py`` with the web API's limits (``web.max_side``, ``web.max_pixels``) and analysed
by ``core.analyze.Analyzer``, the same path as ``/analyze``.

Outputs (contract):

- ``faces.csv``: ``path,face,x1,y1,x2,y2,score,gender,gender_confidence,age,age_low,age_high``.
  One row per face; an image with no face still gets one row with ``face`` and the rest empty,
  so every analysed image appears. ``path`` is relative to ``--input`` with ``/`` separators.
  Boxes are in pixels of the upright image (EXIF orientation applied) at its original
  resolution, whatever size it was analysed at. Attribute cells are empty when the face was not
  judged (too small, too blurred). Rows are in path order (sorted walk).
- ``errors.csv``: ``path,error``, one row per image that could not be analysed, ``error`` being
  ``<code>: <reason>`` on one line (codes: ``media/images.py``'s, plus ``refused`` for unsafe paths,
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

Modules: ``records`` (the data crossing the process boundary), ``discover`` (which files, path
safety), ``worker`` (one image: decode, analyse, annotate; the worker-process entry points),
``scheduler`` (the pool: bounded in flight, ordered results, retries, crash blame),
``csvout`` (faces.csv / errors.csv, resume), ``runner`` (one run), ``cli`` (the subcommand,
signals, exit codes). The names below are the package's API.
"""

from streamer.batch.csvout import ERROR_COLUMNS, FACE_COLUMNS, CsvLog, read_done
from streamer.batch.discover import IMAGE_EXTENSIONS, discover
from streamer.batch.records import FaceRow, ImageResult, Item, Options, Summary
from streamer.batch.runner import check_paths, run
from streamer.batch.worker import Worker

__all__ = ["ERROR_COLUMNS", "FACE_COLUMNS", "IMAGE_EXTENSIONS", "CsvLog", "FaceRow", "ImageResult",
           "Item", "Options", "Summary", "Worker", "check_paths", "discover", "read_done", "run"]
