"""Blocking calls with a deadline, on helper threads: cv2 cannot interrupt a call stuck in FFmpeg."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional


def in_background(fn: Callable[[], None]) -> threading.Thread:
    """Run a one-time load (e.g. the tracker's solver import) beside the model loading, so
    start-up pays for the longer of the two, not their sum. Join it before the first frame:
    loading it later would stall a live stream and drop frames."""
    t = threading.Thread(target=fn, name="preload", daemon=True)
    t.start()
    return t


class CallTimeout(Exception):
    """A source call did not return before its deadline (or stop was requested meanwhile)."""


class DeadlineCaller:
    """One helper thread that runs the capture thread's blocking source calls, each with a
    deadline. cv2 cannot interrupt a call stuck in FFmpeg and Python cannot kill a thread, so
    when a call overruns, the caller gives up on this helper: it stays blocked (a daemon) until
    cv2 returns, drops the late result and exits; the next call gets a fresh helper. FFmpeg's own
    timeouts make cv2 return eventually, so abandoned helpers do not pile up."""

    def __init__(self, name: str):
        self._cond = threading.Condition()
        self._job: Optional[Callable[[], Any]] = None
        self._result: Optional[tuple[Any, Optional[BaseException]]] = None
        self._abandoned = False
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._job is not None or self._abandoned)
                if self._abandoned:
                    return
                fn, self._job = self._job, None
            try:
                result: tuple[Any, Optional[BaseException]] = (fn(), None)
            except Exception as e:  # handed to the caller, raised there
                result = (None, e)
            with self._cond:
                if self._abandoned:
                    return
                self._result = result
                self._cond.notify_all()

    def close(self) -> None:
        """Let the thread exit: now when idle, after its current call otherwise."""
        with self._cond:
            self._abandoned = True
            self._cond.notify_all()

    def call(self, fn: Callable[[], Any], timeout: float, stop: threading.Event) -> Any:
        """``fn()``'s value (or its exception), or CallTimeout after ``timeout`` s or on stop.
        After a CallTimeout this helper is abandoned: use a new one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._result, self._job = None, fn
            self._cond.notify_all()
            while self._result is None:
                left = deadline - time.monotonic()
                if left <= 0 or stop.is_set():
                    self._abandoned = True
                    self._cond.notify_all()
                    raise CallTimeout(f"no answer within {timeout:g} s"
                                      if left <= 0 else "stopped")
                self._cond.wait(min(left, 0.1))
            (value, err), self._result = self._result, None
        if err is not None:
            raise err
        return value
