"""Wait for a file in a folder to be opened, through Linux inotify (ctypes; no dependency).

Used to send a signal at a known point of another process's start-up (while it loads a model)
instead of after a guessed sleep: inotify queues the event, so a short-lived open is not missed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import time
from pathlib import Path

IN_OPEN = 0x00000020
IN_NONBLOCK = 0o4000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)


def available() -> bool:
    return hasattr(os, "O_NONBLOCK") and ctypes.util.find_library("c") is not None and \
        os.uname().sysname == "Linux"


class OpenWatch:
    """``with OpenWatch(folder) as w: ...; w.wait_for("age-v1.onnx", timeout)``."""

    def __init__(self, folder: Path):
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = self._libc.inotify_init1(IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        if self._libc.inotify_add_watch(self.fd, str(folder).encode(), IN_OPEN) < 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder} failed")

    def wait_for(self, name: str, timeout: float, alive=lambda: True) -> bool:
        """True once ``name`` was opened; False after ``timeout`` or when ``alive()`` is false."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if not r:
                continue
            buf = os.read(self.fd, 65536)
            off = 0
            while off < len(buf):
                _wd, mask, _cookie, n = _EVENT.unpack_from(buf, off)
                got = buf[off + _EVENT.size: off + _EVENT.size + n].rstrip(b"\0").decode()
                off += _EVENT.size + n
                if mask & IN_OPEN and got == name:
                    return True
        return False

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> "OpenWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
