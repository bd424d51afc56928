"""Where a camera's counters survive a restart: ``<state_dir>/counts-<camera>.json``.

The adapter behind ``core.counting.Counter``'s ``state`` (the counter itself does no I/O):
``load() -> dict | None`` and ``save(state: dict) -> bool``. A write is atomic (temp file,
fsync, ``os.replace``), so a crash leaves the old state or the new, never half of one. A
file that cannot be read or is not a ``STATE_SCHEMA`` document is logged, moved aside as
``counts-<camera>.json.bad-<epoch>`` (kept for a human) and the counter starts from zero. A
write that fails (disk full, read-only) is logged (the first and every 100th) and returns
False: the counter keeps counting in memory and retries at its next change.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

STATE_SCHEMA = "streamer.counting-state/1"


def for_camera(state_dir: str | Path, camera: str) -> "JsonCountState":
    return JsonCountState(Path(state_dir) / f"counts-{camera}.json")


class JsonCountState:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.write_errors = 0

    def __repr__(self) -> str:
        return str(self.path)

    def load(self) -> Optional[dict]:
        """The saved state (with ``period_start`` a float, ``people`` an int, ``lines`` and
        ``zones`` dicts), or None when there is none or it is unreadable (set aside)."""
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(state, dict) or state.get("schema") != STATE_SCHEMA:
                raise ValueError(f"not a {STATE_SCHEMA} file")
            out = dict(state, period_start=float(state["period_start"]),
                       people=int(state.get("people", 0)))
            for key in ("lines", "zones"):
                out[key] = state.get(key) or {}
                if not isinstance(out[key], dict):
                    raise ValueError(f"{key}: expected a mapping")
            return out
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            aside = self.path.with_name(f"{self.path.name}.bad-{int(time.time())}")
            log.warning("counting state %s unreadable (%s); starting from zero, kept as %s",
                        self.path, e, aside.name)
            try:
                os.replace(self.path, aside)
            except OSError:
                pass
            return None

    def save(self, state: dict) -> bool:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"schema": STATE_SCHEMA, **state}, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            return True
        except OSError as e:  # disk full / read-only: the counter keeps counting in memory
            self.write_errors += 1
            if self.write_errors == 1 or self.write_errors % 100 == 0:
                log.error("counting state %s cannot be written (%d failures): %s",
                          self.path, self.write_errors, e)
            return False
