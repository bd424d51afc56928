"""glibc's allocator, tuned once at process start for a process of many threads.

glibc gives threads that contend for memory their own arenas, up to 8 per core (16 here), and
an arena keeps what was freed into it for reuse. A stream has a dozen threads (capture, FFmpeg,
inference, events, OpenVINO's pool) passing frames between them, so freed frames pile up in
many arenas: measured with 4 cameras in one process, 362 MB RSS with the default and 328 MB
with 2 arenas, at the same CPU time per frame (10.8 s for 450 frames both ways). One arena (every thread
shares glibc's main one) holds less again at no CPU cost we could measure, since frames are
few large allocations, not a stream of small ones: one 720p 15 fps stream (ONNX Runtime)
142 vs 150 MB median RSS, 4 cameras of one process 213-217 vs 234-237 MB at 14.9-15.8 vs
15.1-15.4 s of CPU in 25 s (two interleaved rounds each). A fixed mmap threshold (every frame
mapped and unmapped) saved more (307 MB) but cost ~2 ms of page-fault CPU per frame, so it is
not used.

What the arenas keep after frames are freed is handed back to the kernel by ``trim`` (glibc's
``malloc_trim``), which a stream's main loop calls about once a second: measured on a 720p
15 fps stream, the first call released 27 MB (198 -> 171 MB RSS) in 2.7 ms of CPU, later ones
~5 MB in 0.6 ms; the memory that is used again comes back as page faults, a few ms per second.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from typing import Optional

M_ARENA_MAX = -8  # from glibc's malloc.h
ARENAS = 1


TRIM_EVERY_S = 1.0
_libc: Optional[ctypes.CDLL] = None
_next_trim = 0.0


def _c() -> Optional[ctypes.CDLL]:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            return None
    return _libc


def trim(now: Optional[float] = None) -> bool:
    """Return the arenas' free pages to the kernel, at most once per ``TRIM_EVERY_S`` per
    process (several cameras of one process share it). False when skipped or not glibc.
    ctypes releases the GIL for the call; it holds each arena's lock for about a millisecond."""
    global _next_trim
    now = time.monotonic() if now is None else now
    if now < _next_trim:
        return False
    _next_trim = now + TRIM_EVERY_S
    c = _c()
    fn = getattr(c, "malloc_trim", None) if c is not None else None
    if fn is None:  # musl, macOS
        return False
    fn(0)
    return True


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas (before the process starts its threads); a user's own
    ``MALLOC_ARENA_MAX`` wins. False where the C library is not glibc (nothing changes)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    c = _c()
    try:
        return bool(c is not None and c.mallopt(M_ARENA_MAX, int(arenas)))
    except AttributeError:  # musl, macOS: no mallopt
        return False
