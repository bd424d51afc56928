"""The site's log, for a box that runs for months: stderr always, plus ``log.file`` rotated
``hourly`` or ``daily`` (at midnight, local time) with the rotated files gzipped
(``site.log.2026-11-24.gz``) and the newest ``log.keep`` of them kept.

One writer: only the site process writes the file; camera processes log to their stderr, which
the supervisor forwards line by line into this log under ``streamer.camera.<name>`` (so a
rotation never races another process). Every line passes a redacting filter, so a URL with
credentials is written as ``rtsp://***@host/...`` whoever logged it.

Why a rotator and not a size cap: a daily file is what a person looking for "what happened on
Tuesday night" opens; gzip makes a month of them small. ``keep`` counts rotated files (the
current one is extra).
"""

from __future__ import annotations

import gzip
import logging
import logging.handlers
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Optional

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactFilter(logging.Filter):
    """Formats the record's message once, with credentials redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        from streamer.media.sources import redact

        try:
            msg = record.getMessage()
        except Exception:  # a bad format string: keep the raw text
            msg = str(record.msg)
        red = redact(msg)
        if red != msg or record.args:
            record.msg, record.args = red, None
        return True


def _namer(default_name: str) -> str:
    return default_name + ".gz"


def _rotator(source: str, dest: str) -> None:
    """Gzip the closed file to ``dest`` (written under a temp name, then renamed: a crash
    mid-way never leaves a truncated .gz with the real name)."""
    tmp = dest + ".tmp"
    with open(source, "rb") as src, gzip.open(tmp, "wb") as out:
        shutil.copyfileobj(src, out)
    os.replace(tmp, dest)
    os.unlink(source)


class GzipTimedRotatingHandler(logging.handlers.TimedRotatingFileHandler):
    """``TimedRotatingFileHandler`` whose rotated files are gzipped; ``getFilesToDelete`` is
    taught about the ``.gz`` suffix (the stdlib's own matching of namer'd files differs
    between Python versions)."""

    def __init__(self, filename: str | Path, when: str = "midnight", keep: int = 14):
        when = {"hourly": "H", "daily": "midnight"}.get(when, when)
        super().__init__(str(filename), when=when, backupCount=keep, encoding="utf-8", delay=False)
        self.namer = _namer
        self.rotator = _rotator
        # Date part of rotated names: Y-m-d_H (hourly) or Y-m-d (daily).
        self._rotated = re.compile(r"^" + re.escape(os.path.basename(self.baseFilename)) +
                                   r"\.\d{4}-\d{2}-\d{2}(_\d{2})?\.gz$")

    def getFilesToDelete(self) -> list[str]:
        d = os.path.dirname(self.baseFilename)
        names = sorted(n for n in os.listdir(d) if self._rotated.match(n))
        if len(names) <= self.backupCount:
            return []
        return [os.path.join(d, n) for n in names[: len(names) - self.backupCount]]


def setup(log_cfg, level: str = "info", base: Optional[Path] = None,
          stream=None) -> Optional[GzipTimedRotatingHandler]:
    """Root logging for the site: stderr and, with ``log_cfg.file``, the rotating file (a
    relative path is relative to ``base``, the site file's folder; the loader normally
    resolved it already). Returns the file handler (tests force rollovers on it)."""
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    fmt = logging.Formatter(FORMAT)
    redact = RedactFilter()
    err = logging.StreamHandler(stream or sys.stderr)
    err.setFormatter(fmt)
    err.addFilter(redact)
    root.addHandler(err)
    fh = None
    if log_cfg is not None and getattr(log_cfg, "file", None):
        path = Path(log_cfg.file)
        if not path.is_absolute() and base is not None:
            path = base / path
        from streamer.errors import ConfigError
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = GzipTimedRotatingHandler(path, log_cfg.rotate, log_cfg.keep)
        except OSError as e:
            raise ConfigError(f"log.file: cannot open {path}: {e.strerror}") from None
        fh.setFormatter(fmt)
        fh.addFilter(redact)
        root.addHandler(fh)
    return fh
