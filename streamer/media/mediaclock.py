"""The video's own clock: when a recording started, so its frames carry media time.

Events from a file or an image folder are stamped ``start + presentation time`` (``clock:
"media"`` in each event), never the moment this machine happened to decode the frame: dwell,
zone dwell, ``first_seen``, summary intervals and counting resets then come out the same with
and without ``--realtime``, on a fast or a loaded machine. Live sources (cameras, RTSP/HTTP)
keep the wall clock (``clock: "wall"``).

The start of a recording, first that applies:

1. ``source.start_time`` / ``--start-time ISO`` (e.g. ``2026-12-01T08:00:00Z``; no zone =
   UTC) when given: the operator knows best, and it overrides what the file says;
2. the container's ``creation_time`` tag (MP4/MOV/MKV from most cameras and phones), read
   with ``ffprobe`` (5 s timeout; OpenCV does not expose container tags);
3. the file's modification time (for a folder: its first image's). Copying a file changes
   it, so pass ``--start-time`` when the time of day matters.

Presentation time: ``CAP_PROP_POS_MSEC`` of the frame just read (the container's timestamp,
so variable-frame-rate files and skipped corrupt frames keep their real times), else frame
index / fps. A folder plays at ``source.folder_fps``: image i is at i / folder_fps.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from streamer.errors import SourceError

log = logging.getLogger(__name__)

FFPROBE_TIMEOUT_S = 5.0


def parse_iso(text: str, key: str = "source.start_time") -> float:
    """Epoch seconds of an ISO 8601 time; no zone means UTC. Raises SourceError naming ``key``."""
    s = str(text).strip()
    try:
        d = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
    except ValueError:
        raise SourceError(f"{key}: expected an ISO 8601 time such as 2026-12-01T08:00:00Z, "
                          f"got {s[:40]!r}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()


def creation_time(path: Path) -> Optional[float]:
    """The container's ``creation_time`` tag as epoch seconds, or None (no tag, no ffprobe,
    unparsable, or a zero date some muxers write)."""
    exe = shutil.which("ffprobe")
    if exe is None:
        return None
    try:
        r = subprocess.run([exe, "-v", "error", "-print_format", "json", "-show_entries",
                            "format_tags=creation_time:stream_tags=creation_time", str(path)],
                           capture_output=True, text=True, timeout=FFPROBE_TIMEOUT_S)
        d = json.loads(r.stdout or "{}")
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    tags = [d.get("format", {}).get("tags", {})] + [s.get("tags", {}) for s in d.get("streams", [])]
    for t in tags:
        v = t.get("creation_time")
        if v:
            try:
                ts = parse_iso(v)
            except SourceError:
                continue
            if ts > 86400:  # 1970-01-01 / 1904 placeholders mean "unknown"
                return ts
    return None


@dataclass(frozen=True)
class Start:
    """When a recording started (epoch seconds) and where that came from."""

    ts: float
    how: str  # "start_time" | "creation_time" | "mtime"


def recording_start(path: Path, start_time: Optional[str] = None) -> Start:
    """The start of the recording at ``path`` (a file or a folder's first image); see the
    module docstring for the order."""
    if start_time:
        return Start(parse_iso(start_time), "start_time")
    ct = creation_time(path) if Path(path).is_file() else None
    if ct is not None:
        return Start(ct, "creation_time")
    return Start(os.stat(path).st_mtime, "mtime")
