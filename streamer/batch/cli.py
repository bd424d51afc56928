"""``run.py batch``: the subcommand (``add_parser``, ``run_cli``) around ``runner.run``.

Flags override ``batch.conf``, ``batch.workers``, ``batch.recursive`` and ``batch.annotate``.
The first SIGINT/SIGTERM stops after the images in flight, a second one aborts. Exit codes:
0 every image analysed, 2 some images failed (counted on stderr), 1 usage error (argparse's
own 2 is remapped: 2 means failed images here), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from streamer import config as config_mod
from streamer.batch.records import Options
from streamer.batch.runner import run

EXIT_OK, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130
# Large JPEGs are decoded with libjpeg's DCT scaling (1/2, 1/4, 1/8) while the long side stays
# >= this many times detector.width: the detector sees a copy downscaled to detector.width
# anyway, and an image with a face too small to judge at that scale is decoded again in full
# (Worker._needs_full_resolution). On 1080p JPEGs this halves decode and annotation costs
# (scripts/bench_batch.py). 0 disables it.
DECODE_FLOOR_PER_DETECTOR_WIDTH = 1.5


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
