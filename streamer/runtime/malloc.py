"""glibc's allocator, tuned once at process start for a process of many threads.

glibc gives threads that contend for memory their own arenas, up to 8 per core (16 here), and
an arena keeps what was freed into it for reuse. A stream has a dozen threads (capture, FFmpeg,
inference, events, OpenVINO's pool) passing frames between them, so freed frames pile up in
many arenas: measured with 4 cameras in one process, 362 MB RSS with the default and 328 MB
with 2 arenas, at the same CPU time per frame (10.8 s for 450 frames both ways). A fixed mmap
threshold (every frame mapped and unmapped) saved more (307 MB) but cost ~2 ms of page-fault
CPU per frame, so it is not used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # from glibc's malloc.h
ARENAS = 2


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas (before the process starts its threads); a user's own
    ``MALLOC_ARENA_MAX`` wins. False where the C library is not glibc (nothing changes)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):  # musl, macOS: no mallopt or no such option
        return False
