"""Event sinks: ``emit(event)`` and ``close()``.

A sink may be slow or fail (disk full, broker down); ``SinkSet`` catches and counts every error
so one bad sink never stops the others or the pipeline. The pipeline calls sinks from its own
event thread, never from inference.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Protocol, TextIO

from streamer.errors import StreamerError
from streamer.types import Event

log = logging.getLogger(__name__)


class Sink(Protocol):
    name: str

    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...


def dumps(event: Event) -> str:
    return json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False)


class JsonlSink:
    """Appends one JSON object per line; flushed per event so a crash loses at most one line."""

    name = "jsonl"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")
        except OSError as e:
            raise StreamerError(f"cannot open events file {self.path}: {e.strerror}") from None

    def emit(self, event: Event) -> None:
        self._f.write(dumps(event) + "\n")
        self._f.flush()

    def close(self) -> None:
        try:
            self._f.close()
        except OSError as e:  # disk full at the final flush: report, do not crash shutdown
            log.error("events file %s: %s", self.path, e)


class StdoutSink:
    name = "stdout"

    def __init__(self, stream: TextIO | None = None):
        self._s = stream or sys.stdout

    def emit(self, event: Event) -> None:
        self._s.write(dumps(event) + "\n")
        self._s.flush()

    def close(self) -> None:
        pass


class SinkSet:
    """Fans an event out to every sink; counts errors per sink, logs the first of each burst."""

    def __init__(self, sinks: list[Sink]):
        self.sinks = list(sinks)
        self.errors: dict[str, int] = {s.name: 0 for s in self.sinks}
        self.emitted = 0
        self.by_type: dict[str, int] = {}

    def emit(self, event: Event) -> None:
        self.emitted += 1
        self.by_type[event.type] = self.by_type.get(event.type, 0) + 1
        for s in self.sinks:
            try:
                s.emit(event)
            except Exception as e:  # a sink must never take the pipeline down
                n = self.errors[s.name] = self.errors.get(s.name, 0) + 1
                if n == 1 or n % 100 == 0:
                    log.error("sink %s failed (%d errors so far): %s", s.name, n, e)

    def health(self) -> dict[str, dict]:
        """``{sink name: sink.health()}`` for every sink that reports health (today: mqtt);
        a sink whose ``health()`` raises reports ``{"error": ...}``. Safe after ``close()``."""
        out: dict[str, dict] = {}
        for s in self.sinks:
            h = getattr(s, "health", None)
            if callable(h):
                try:
                    out[s.name] = h()
                except Exception as e:  # health must never take a caller (/healthz) down
                    out[s.name] = {"error": str(e)}
        return out

    def health_of(self, name: str, key: str):
        """One value of the sink ``name``'s health (None without such a sink or key)."""
        h = self.health().get(name)
        return h.get(key) if h else None

    def unsent(self, name: str) -> int | None:
        """Events the sink ``name`` accepted but did not deliver (None without such a sink)."""
        return self.health_of(name, "unsent")

    def close(self) -> None:
        for s in self.sinks:
            try:
                s.close()
            except Exception as e:
                log.error("sink %s failed to close: %s", s.name, e)
