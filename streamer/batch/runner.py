"""One batch run: check the paths, find the images, schedule them on the workers and write
each result to faces.csv / errors.csv as it arrives (in input order).

The package docstring (``streamer/batch/__init__.py``) states the contract; ``cli.py`` is the
``run.py batch`` subcommand around ``run``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time
from typing import Callable, Optional

from streamer.batch.csvout import ERROR_COLUMNS, FACE_COLUMNS, CsvLog, read_done
from streamer.batch.discover import discover, inside
from streamer.batch.records import Options, Summary
from streamer.batch.scheduler import Scheduler, make_pool_factory
from streamer.batch.worker import real_analyzer
from streamer.errors import StreamerError

log = logging.getLogger(__name__)


def check_paths(opts: Options) -> None:
    """Usage errors, each one line naming the bad value."""
    inp, out = opts.input, opts.output
    if not inp.is_dir():
        raise StreamerError(f"--input {inp}: no such folder" if not inp.exists()
                            else f"--input {inp}: not a folder")
    if out.exists() and not out.is_dir():
        raise StreamerError(f"--output {out}: exists and is not a folder")
    if inside(os.path.realpath(out), os.path.realpath(inp)):
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
