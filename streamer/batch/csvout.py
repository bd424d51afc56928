"""faces.csv and errors.csv: append-only, one ``write()`` per image, and what ``--resume``
reads back.

The parent process writes both files itself, all of one image's rows in one ``write()`` on an
unbuffered descriptor, so SIGINT/SIGTERM (or a kill) leaves only whole images; a partial last
line left by a hard kill is cut off when the file is read back.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Iterable

from streamer.errors import StreamerError

log = logging.getLogger(__name__)

FACE_COLUMNS = ("path", "face", "x1", "y1", "x2", "y2", "score", "gender", "gender_confidence",
                "age", "age_low", "age_high")
ERROR_COLUMNS = ("path", "error")


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
