"""The embedded event store: every event of every camera in one SQLite file.

Contract (``streamer.runtime.site_view.EventStore``): ``add`` / ``prune`` come from ONE writer at
a time (the site's writer, ``streamer.runtime.site_store``, which batches them off a bounded
queue); ``events`` / ``counts`` / ``crop_path`` may be called from any thread at any time: each
opens its own short-lived read connection, and WAL lets readers run beside the writer without
waiting for it. This module knows nothing about threads.

Layout. One table ``events``: the event's JSON exactly as documented (``body``), plus the columns
the queries need, extracted at insert: ``camera``, ``type``, ``ts`` (epoch s), and for ``cross``
events ``line``, ``direction``, ``gender`` and ``age_bin`` (the camera's ``counting.age_bins``
label of the age at the crossing, ``unknown`` when not judged — the same rule the counter uses
for its summaries). Indexed by (camera, ts) and (type, ts). The primary key is the event ``id``:
delivery from a camera is at-least-once, so a resent event is ignored, never counted twice.

Face thumbnails (``privacy.keep_crops``) are files ``<crops_dir>/<event id>.jpg`` beside the
database, written with their ``end`` event and deleted with it by ``prune``.

``counts`` buckets: ``in`` / ``out`` crossings; ``by_gender`` ({male, female, unknown}) and
``by_age`` ({bin label: n}) count every crossing of the bucket, both directions (their sums
equal ``in + out``); ``by_direction`` has the same two mixes per direction. Buckets are local-time hours or days of the machine running the site (a shop's
"Tuesday" is local), returned as ISO 8601 with the UTC offset, oldest first; empty buckets
between the first and the last (or ``since`` / ``until`` when given) are filled with zeros, so a
chart has no holes.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Optional, Sequence

from streamer.core.counting import age_labels

DEFAULT_AGE_BINS = (13, 18, 25, 35, 45, 55, 65)  # CountingConfig's default
GENDERS = ("male", "female", "unknown")
DIRECTIONS = ("in", "out")
MAX_LIMIT = 1000  # rows per events() call
MAX_FILL = 24 * 400  # never fill more empty buckets than this (about a year of hours)
_ID_OK = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")  # an event id safe as a file name

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    type TEXT NOT NULL,
    ts REAL NOT NULL,
    line TEXT,
    direction TEXT,
    gender TEXT,
    age_bin TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_camera_ts ON events (camera, ts);
CREATE INDEX IF NOT EXISTS events_type_ts ON events (type, ts);
"""


def parse_ts(value) -> Optional[float]:
    """An event's ``ts`` (ISO 8601, ``Z``) or a number -> epoch seconds; None when unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _bin_label(age, bins: Sequence[float], labels: list[str]) -> str:
    if not isinstance(age, dict) or not isinstance(age.get("years"), (int, float)):
        return "unknown"
    years = float(age["years"])
    i = 0
    while i < len(bins) and years >= bins[i]:
        i += 1
    return labels[i]


class SqliteStore:
    """See the module docstring. ``path`` is created (with its folder) when missing."""

    def __init__(self, path: str | Path, crops_dir: Optional[str | Path] = None,
                 age_bins: Optional[dict[str, Sequence[float]]] = None):
        self.path = Path(path)
        self.crops_dir = Path(crops_dir) if crops_dir else None
        self._bins: dict[str, tuple[list[float], list[str]]] = {}
        for cam, bins in (age_bins or {}).items():
            self.set_age_bins(cam, bins)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.crops_dir:
            self.crops_dir.mkdir(parents=True, exist_ok=True)
        # The writer's connection. check_same_thread off: the one writer may be any one thread.
        self._db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses nothing committed
        self._db.executescript(_SCHEMA)
        self._db.commit()
        self.rejected = 0  # events without a usable id / ts / camera / type (counted, not stored)

    # ---- configuration ---------------------------------------------------------------------
    def set_age_bins(self, camera: str, bins: Sequence[float]) -> None:
        """Age bins of one camera (its ``counting.age_bins``), for ``by_age``."""
        self._bins[camera] = ([float(b) for b in bins], age_labels(list(bins)) + ["unknown"])

    def _bins_for(self, camera: Optional[str]) -> tuple[list[float], list[str]]:
        if camera in self._bins:
            return self._bins[camera]
        return [float(b) for b in DEFAULT_AGE_BINS], age_labels(list(DEFAULT_AGE_BINS)) + ["unknown"]

    # ---- writing (one writer) ----------------------------------------------------------------
    def add(self, events: Sequence[dict], crops: Optional[dict[str, bytes]] = None) -> None:
        """Insert a batch in one transaction (duplicates by ``id`` are ignored). ``crops`` maps
        an ``end`` event id to its face JPEG (only given with ``privacy.keep_crops``).
        Raises ``sqlite3.Error`` / ``OSError`` (disk full...): the caller keeps the batch."""
        rows = []
        for ev in events:
            row = self._row(ev)
            if row is None:
                self.rejected += 1
                continue
            rows.append(row)
        if crops and self.crops_dir:
            for eid, jpeg in crops.items():
                if _ID_OK.match(eid) and jpeg:
                    tmp = self.crops_dir / f".{eid}.tmp"
                    tmp.write_bytes(jpeg)
                    os.replace(tmp, self.crops_dir / f"{eid}.jpg")
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO events (id, camera, type, ts, line, direction, gender, "
                "age_bin, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def _row(self, ev: dict) -> Optional[tuple]:
        eid, cam, typ = ev.get("id"), ev.get("camera"), ev.get("type")
        ts = parse_ts(ev.get("ts"))
        if not (isinstance(eid, str) and eid and isinstance(cam, str) and isinstance(typ, str)
                and ts is not None):
            return None
        line = direction = gender = age_bin = None
        if typ == "cross":
            line, direction = ev.get("line"), ev.get("direction")
            g = ev.get("gender")
            label = g.get("label") if isinstance(g, dict) else None
            gender = label if label in ("male", "female") else "unknown"
            bins, labels = self._bins_for(cam)
            age_bin = _bin_label(ev.get("age"), bins, labels)
        body = json.dumps(ev, separators=(",", ":"), ensure_ascii=False)
        return (eid, cam, typ, ts, line, direction, gender, age_bin, body)

    def prune(self, retention_days: float, now: Optional[float] = None) -> int:
        """Delete events (and their crops) older than ``retention_days``; returns rows deleted.
        ``retention_days`` <= 0 keeps everything."""
        if retention_days <= 0:
            return 0
        cutoff = (now if now is not None else time.time()) - retention_days * 86400.0
        if self.crops_dir:
            for (eid,) in self._db.execute(
                    "SELECT id FROM events WHERE type = 'end' AND ts < ?", (cutoff,)):
                self._unlink_crop(eid)
            # Crops whose row never landed (a crash between file and insert) go by age too.
            for f in self.crops_dir.glob("*.jpg"):
                try:
                    if f.stat().st_mtime < cutoff:
                        f.unlink()
                except OSError:
                    pass
        with self._db:
            n = self._db.execute("DELETE FROM events WHERE ts < ?", (cutoff,)).rowcount
        return n

    def _unlink_crop(self, eid: str) -> None:
        if _ID_OK.match(eid):
            try:
                (self.crops_dir / f"{eid}.jpg").unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass

    # ---- reading (any thread) ----------------------------------------------------------------
    def _read(self) -> sqlite3.Connection:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0)
        return db

    def events(self, camera: Optional[str] = None, type: Optional[str] = None,
               since: Optional[float] = None, until: Optional[float] = None,
               limit: int = 100) -> list[dict]:
        where, args = self._where(camera, type, since, until)
        limit = max(1, min(int(limit), MAX_LIMIT))
        db = self._read()
        try:
            rows = db.execute(f"SELECT body FROM events{where} ORDER BY ts DESC, id DESC LIMIT ?",
                              (*args, limit)).fetchall()
        finally:
            db.close()
        return [json.loads(b) for (b,) in rows]

    @staticmethod
    def _where(camera, type_, since, until, extra: tuple = ()) -> tuple[str, list]:
        conds, args = list(extra), []
        for col, op, val in (("camera", "=", camera), ("type", "=", type_), ("ts", ">=", since),
                             ("ts", "<", until)):
            if val is not None:
                conds.append(f"{col} {op} ?")
                args.append(val)
        return (" WHERE " + " AND ".join(conds)) if conds else "", args

    def counts(self, camera: Optional[str] = None, line: Optional[str] = None, bucket: str = "hour",
               since: Optional[float] = None, until: Optional[float] = None) -> list[dict]:
        if bucket not in ("hour", "day"):
            raise ValueError(f"bucket: expected hour or day, got {bucket!r}")
        fmt = "%Y-%m-%dT%H:00:00" if bucket == "hour" else "%Y-%m-%dT00:00:00"
        where, args = self._where(camera, "cross", since, until)
        if line is not None:
            where += " AND line = ?"
            args.append(line)
        db = self._read()
        try:
            rows = db.execute(
                f"SELECT strftime('{fmt}', ts, 'unixepoch', 'localtime') AS b, direction, gender, "
                f"age_bin, COUNT(*) FROM events{where} GROUP BY b, direction, gender, age_bin",
                args).fetchall()
        finally:
            db.close()
        labels = list(self._bins_for(camera)[1])
        for r in rows:
            if r[3] and r[3] not in labels:
                labels.append(r[3])
        series: dict[str, dict] = {}
        for key in self._bucket_keys([r[0] for r in rows], bucket, since, until):
            series[key] = self._empty_bucket(key, labels)
        for key, direction, gender, age_bin, n in rows:
            if direction not in DIRECTIONS:
                continue
            b = series.setdefault(key, self._empty_bucket(key, labels))
            g, a = gender or "unknown", age_bin or "unknown"
            b[direction] += n
            b["by_gender"][g] += n
            b["by_age"][a] += n
            b["by_direction"][direction]["by_gender"][g] += n
            b["by_direction"][direction]["by_age"][a] += n
        return [series[k] for k in sorted(series)]

    @staticmethod
    def _empty_bucket(key: str, labels: list[str]) -> dict:
        start = datetime.fromisoformat(key).astimezone().isoformat()  # naive = local time
        return {"start": start, "in": 0, "out": 0,
                "by_gender": dict.fromkeys(GENDERS, 0), "by_age": dict.fromkeys(labels, 0),
                "by_direction": {d: {"by_gender": dict.fromkeys(GENDERS, 0),
                                     "by_age": dict.fromkeys(labels, 0)} for d in DIRECTIONS}}

    @staticmethod
    def _bucket_keys(present: list[str], bucket: str, since, until) -> list[str]:
        """Every bucket key from the first to the last (``since``/``until`` when given)."""
        def key(ts: float) -> str:
            d = datetime.fromtimestamp(ts)
            return d.strftime("%Y-%m-%dT%H:00:00" if bucket == "hour" else "%Y-%m-%dT00:00:00")

        lo = key(since) if since is not None else (min(present) if present else None)
        hi = key(until - 1e-3) if until is not None else (max(present) if present else None)
        if lo is None or hi is None or lo > hi:
            return []
        out = []
        if bucket == "day":
            d, end = date.fromisoformat(lo[:10]), date.fromisoformat(hi[:10])
            while d <= end and len(out) < MAX_FILL:
                out.append(f"{d.isoformat()}T00:00:00")
                d += timedelta(days=1)
            return out
        t = datetime.fromisoformat(lo).timestamp()
        while len(out) < MAX_FILL:
            k = key(t)
            if k > hi:
                break
            if not out or out[-1] != k:
                out.append(k)
            t += 3600.0
        return out

    def crop_path(self, event_id: str) -> Optional[str]:
        if not self.crops_dir or not isinstance(event_id, str) or not _ID_OK.match(event_id):
            return None
        p = self.crops_dir / f"{event_id}.jpg"
        return str(p) if p.is_file() else None

    def row_count(self) -> int:
        db = self._read()
        try:
            return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        finally:
            db.close()
