"""The event store (``streamer.store.SqliteStore``) and the site's writer in front of it
(``runtime.site_store.StoreWriter``). Cross events come from the real counter
(``core.counting.Counter``) walking tracks across a line, so the store reads the payload the
counting code really emits; they are checked against the event schema too."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from streamer.config import CountingConfig, LineConfig
from streamer.core.counting import Counter
from streamer.core.events import EventBuilder
from streamer.runtime.site_store import StoreWriter
from streamer.store import SqliteStore, crops_dir_for
from streamer.types import Attributes, Frame, Person, Track

IMG = np.zeros((100, 200, 3), np.uint8)


def _local(y, mo, d, h, mi=0) -> float:
    return datetime(y, mo, d, h, mi).timestamp()


def _crossings(tmp: Path, camera: str, walks: list) -> list[dict]:
    """``walks``: (start ts, direction, Attributes or None); each a track walking across the
    vertical middle line (left->right = in) over 10 frames, through the real Counter."""
    cfg = CountingConfig(lines=[LineConfig("door", [[0.5, 0.0], [0.5, 1.0]])],
                         summary_interval_s=0, reset="never", state_dir=str(tmp / "state"))
    bld = EventBuilder(camera)
    c = Counter(cfg, camera, make_event=bld.make, clock=lambda: walks[0][0])
    out, fid = [], 0
    for i, (t0, direction, attrs) in enumerate(walks):
        tid = i + 1
        xs = np.linspace(20, 180, 10) if direction == "in" else np.linspace(180, 20, 10)
        for k, x in enumerate(xs):
            fid += 1
            tr = Track(tid, (x - 10, 40, x + 10, 60), 0.9, True, 5 + k, 0, 0, fid)
            out += c.update([Person(tr, attrs)], Frame(fid, t0 + k * 0.1, 0.0, IMG))
        fid += 1
        out += c.update([], Frame(fid, t0 + 1.5, 0.0, IMG))  # the track is gone
    evs = [e.to_dict() for e in out if e.type == "cross"]
    assert [e["direction"] for e in evs] == [w[1] for w in walks]
    return evs


MALE_30 = Attributes("male", 0.9, 30.0, 25.0, 36.0, 0.5, 3)
FEMALE_70 = Attributes("female", 0.95, 70.0, 62.0, 78.0, 0.4, 3)


@pytest.fixture
def schema():
    jsonschema = pytest.importorskip("jsonschema")
    s = json.loads((ROOT / "schema" / "event.schema.json").read_text())
    return lambda ev: jsonschema.validate(ev, s)


def test_counts_by_hour_and_day_from_real_cross_events(tmp_path, schema):
    t9, t10 = _local(2026, 3, 2, 9, 15), _local(2026, 3, 2, 10, 5)
    t_next = _local(2026, 3, 3, 9, 0)
    evs = _crossings(tmp_path, "door", [(t9, "in", MALE_30), (t9 + 60, "in", FEMALE_70),
                                        (t9 + 120, "out", None), (t10, "in", MALE_30),
                                        (t_next, "out", FEMALE_70)])
    for e in evs:
        schema(e)
    st = SqliteStore(tmp_path / "ev.sqlite")
    st.add(evs)
    st.add(evs)  # at-least-once delivery: a resent batch is not counted twice
    assert st.row_count() == 5

    day = st.counts(camera="door", bucket="hour", since=_local(2026, 3, 2, 0), until=_local(2026, 3, 3, 0))
    assert len(day) == 24  # every hour of the day, empty ones as zeros
    nine = next(b for b in day if b["start"].startswith("2026-03-02T09:00:00"))
    assert (nine["in"], nine["out"]) == (2, 1)
    assert nine["by_gender"] == {"male": 1, "female": 1, "unknown": 1}
    assert nine["by_age"]["25-34"] == 1 and nine["by_age"]["65+"] == 1 and nine["by_age"]["unknown"] == 1
    assert nine["by_direction"]["in"]["by_gender"] == {"male": 1, "female": 1, "unknown": 0}
    assert nine["by_direction"]["out"]["by_age"]["unknown"] == 1
    ten = next(b for b in day if b["start"].startswith("2026-03-02T10:00:00"))
    assert (ten["in"], ten["out"]) == (1, 0)
    assert sum(b["in"] + b["out"] for b in day) == 4
    # The start carries the local UTC offset, and buckets are in order.
    assert datetime.fromisoformat(nine["start"]).timestamp() == _local(2026, 3, 2, 9)
    assert [b["start"] for b in day] == sorted(b["start"] for b in day)

    days = st.counts(bucket="day")
    assert [(b["start"][:10], b["in"], b["out"]) for b in days] == [("2026-03-02", 3, 1),
                                                                     ("2026-03-03", 0, 1)]
    assert st.counts(line="other") == []
    assert st.counts(camera="desk") == []
    with pytest.raises(ValueError):
        st.counts(bucket="week")


def test_events_filters_newest_first_and_indexes(tmp_path):
    st = SqliteStore(tmp_path / "ev.sqlite")
    base = _local(2026, 3, 2, 12)
    evs = [{"schema": "streamer.event/1", "id": f"r-{i:04d}", "camera": "door" if i % 2 else "desk",
            "type": "start" if i % 3 else "end", "ts": datetime.utcfromtimestamp(base + i)
            .strftime("%Y-%m-%dT%H:%M:%S.000Z"), "frame_id": i} for i in range(30)]
    st.add(evs + [{"id": "bad"}, {"id": "x", "camera": "c", "type": "start", "ts": "yesterday"}])
    assert st.rejected == 2
    got = st.events(camera="door", type="start", limit=5)
    assert len(got) == 5 and all(e["camera"] == "door" and e["type"] == "start" for e in got)
    assert [e["frame_id"] for e in got] == sorted((e["frame_id"] for e in got), reverse=True)
    window = st.events(since=base + 10, until=base + 20, limit=100)
    assert sorted(e["frame_id"] for e in window) == list(range(10, 20))
    assert got[0] == next(e for e in evs if e["id"] == got[0]["id"])  # the documented dict, whole
    con = sqlite3.connect(tmp_path / "ev.sqlite")
    idx = {r[1] for r in con.execute("PRAGMA index_list(events)")}
    assert {"events_camera_ts", "events_type_ts"} <= idx
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plan = " ".join(str(r) for r in con.execute(
        "EXPLAIN QUERY PLAN SELECT body FROM events WHERE camera='door' AND ts >= 0 ORDER BY ts DESC"))
    assert "events_camera_ts" in plan


def test_prune_deletes_old_events_and_their_crops(tmp_path):
    db = tmp_path / "ev.sqlite"
    st = SqliteStore(db, crops_dir_for(db))
    now = time.time()
    old = {"id": "a-1", "camera": "door", "type": "end", "ts": now - 40 * 86400, "frame_id": 1}
    new = {"id": "a-2", "camera": "door", "type": "end", "ts": now - 86400, "frame_id": 2}
    st.add([old, new], {"a-1": b"\xff\xd8old", "a-2": b"\xff\xd8new", "../evil": b"x"})
    assert st.crop_path("a-1") and st.crop_path("a-2")
    assert not list(tmp_path.glob("**/evil*"))
    assert st.crop_path("../a-1") is None
    assert st.prune(30) == 1
    assert st.crop_path("a-1") is None
    assert Path(st.crop_path("a-2")).read_bytes() == b"\xff\xd8new"
    assert [e["id"] for e in st.events()] == ["a-2"]
    assert st.prune(0) == 0  # 0 = keep everything


class _SlowStore:
    def __init__(self, fail_first: int = 0, delay: float = 0.0):
        self.rows, self.fail_first, self.delay, self.calls = [], fail_first, delay, 0
        self.gate = threading.Event()
        self.gate.set()

    def add(self, events, crops=None):
        self.calls += 1
        self.gate.wait(10)
        if self.calls <= self.fail_first:
            raise OSError(28, "No space left on device")
        self.rows.extend(events)

    def prune(self, days):
        return 0

    def close(self):
        pass


def test_writer_batches_and_survives_write_errors():
    inner = _SlowStore(fail_first=2)
    w = StoreWriter(inner, batch=100, flush_s=0.05)
    w.add([{"id": str(i)} for i in range(250)])
    assert w.flush(15)
    assert [e["id"] for e in inner.rows] == [str(i) for i in range(250)]  # all, in order
    assert w.write_errors == 2 and w.dropped == 0
    assert inner.calls >= 3 + 2  # 250 in batches of <= 100, after two failed attempts
    w.close()


def test_writer_counts_loss_when_full_never_blocks_long():
    inner = _SlowStore()
    inner.gate.clear()  # the disk "hangs"
    w = StoreWriter(inner, max_pending=10, batch=5, put_timeout_s=0.05)
    time.sleep(0.2)
    w.add([{"id": str(i)} for i in range(40)])
    assert w.dropped > 0
    assert w.health()["dropped"] == w.dropped
    inner.gate.set()
    assert w.flush(10)
    assert len(inner.rows) + w.dropped == 40
    w.close()


def test_writer_on_a_real_store_flushes_and_reads_through(tmp_path):
    w = StoreWriter(SqliteStore(tmp_path / "ev.sqlite"), retention_days=30)
    w.add([{"id": "k-1", "camera": "c", "type": "start", "ts": time.time(), "frame_id": 1}])
    assert w.flush(5)
    assert [e["id"] for e in w.events(camera="c")] == ["k-1"]
    w.close()
