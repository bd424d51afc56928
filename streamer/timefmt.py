"""Timestamps as they appear in events: ISO 8601 UTC with milliseconds and a ``Z``."""

from datetime import datetime, timezone


def iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
