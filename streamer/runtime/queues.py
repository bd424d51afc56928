"""Bounded queues with a full-queue policy, and the control items that travel in them."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any

EOS = object()  # end-of-stream sentinel



@dataclass(frozen=True)
class SourceChange:
    """Control item in the frame queue: the source went down or came back."""

    up: bool
    ts: float
    outage_s: float = 0.0
    reason: str = ""


class BoundedQueue:
    """A bounded FIFO with a full-queue policy: ``drop_oldest`` (live) or block (files).

    ``put`` blocks at most until ``stop`` is set (checked every ``poll`` seconds). Control items
    (end of stream, source down/up) sent with ``put_control`` are never refused and never evict
    a frame: they may exceed the bound by the few control items in flight.
    """

    def __init__(self, maxsize: int, drop_oldest: bool, poll: float = 0.1):
        self.maxsize = max(1, maxsize)
        self.drop_oldest = drop_oldest
        self.poll = poll
        self.dropped = 0
        self._q: collections.deque = collections.deque()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self._q)

    def put(self, item: Any, stop: threading.Event) -> bool:
        with self._cond:
            while len(self._q) >= self.maxsize:
                if self.drop_oldest:
                    self._q.popleft()
                    self.dropped += 1
                    break
                if stop.is_set():
                    return False
                self._cond.wait(self.poll)
            self._q.append(item)
            self._cond.notify_all()
            return True

    def put_control(self, item: Any) -> None:
        with self._cond:
            self._q.append(item)
            self._cond.notify_all()

    def get(self, timeout: float) -> Any:
        """The oldest item, or None after ``timeout`` seconds with nothing to get."""
        with self._cond:
            if not self._q and not self._cond.wait_for(lambda: bool(self._q), timeout):
                return None
            item = self._q.popleft()
            self._cond.notify_all()
            return item
