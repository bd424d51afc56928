"""Lifecycle events as a pure diff, validated against schema/event.schema.json."""

import json
from pathlib import Path

import jsonschema
import pytest

from streamer.config import EventsConfig
from streamer.core.events import EventBuilder
from streamer.sinks.basic import JsonlSink
from streamer.types import Attributes, Person, Track

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "schema" / "event.schema.json").read_text())


def validate(ev: dict) -> None:
    jsonschema.validate(ev, SCHEMA)


def tr(tid, confirmed=True, misses=0, box=(10, 10, 50, 60)):
    return Track(tid, box, 0.9, confirmed, 5, misses, 0, 0)


def upd(b, tracks, attrs, ts, frame_id):
    """One frame through the builder: tracks and their attributes as the processor pairs them."""
    return b.update([Person(t, attrs.get(t.id)) for t in tracks], ts, frame_id)


MALE30 = Attributes("male", 0.9, 30.0, 25.0, 36.0, 0.5, 3)


def test_start_update_end_sequence_and_schema():
    b = EventBuilder("door", EventsConfig(update_min_interval_s=0.0))
    evs = []
    evs += upd(b, [tr(1, confirmed=False)], {}, 100.0, 0)
    assert evs == []  # tentative: nothing yet
    evs += upd(b, [tr(1)], {}, 100.1, 1)
    evs += upd(b, [tr(1)], {1: MALE30}, 100.2, 2)
    evs += upd(b, [tr(1)], {1: MALE30}, 100.3, 3)  # unchanged: no event
    evs += upd(b, [tr(1)], {1: Attributes("male", 0.9, 40.0, 35.0, 46.0, 0.5, 4)}, 100.4, 4)
    evs += upd(b, [], {}, 101.0, 5)
    assert [e.type for e in evs] == ["start", "update", "update", "end"]
    d = [e.to_dict() for e in evs]
    for x in d:
        validate(x)
    assert d[0]["gender"] is None and d[0]["attributes_reason"]
    assert d[1]["gender"] == {"label": "male", "confidence": 0.9}
    # Dwell runs from the first to the last detection (100.0 -> 100.4), not to the end event.
    assert d[3]["dwell_s"] == pytest.approx(0.4, abs=1e-3) and d[3]["first_seen"].endswith("Z")
    assert len({x["id"] for x in d}) == 4


def test_tentative_track_that_dies_emits_nothing():
    b = EventBuilder("c")
    assert upd(b, [tr(1, confirmed=False)], {}, 0, 0) == []
    assert upd(b, [], {}, 0.1, 1) == []


def test_update_is_rate_limited():
    b = EventBuilder("c", EventsConfig(update_min_interval_s=1.0))
    upd(b, [tr(1)], {}, 0.0, 0)
    assert upd(b, [tr(1)], {1: MALE30}, 0.5, 1) == []  # settled, but too soon
    assert [e.type for e in upd(b, [tr(1)], {1: MALE30}, 1.1, 2)] == ["update"]


def test_end_all_ends_only_started_tracks():
    b = EventBuilder("c")
    upd(b, [tr(1), tr(2, confirmed=False)], {}, 0.0, 0)
    evs = b.end_all(1.0, 1)
    assert [(e.type, e.payload["track_id"]) for e in evs] == [("end", 1)]


def test_unknown_attributes_carry_a_reason():
    b = EventBuilder("c")
    (ev,) = upd(b, [tr(1)], {1: Attributes(reason="face too small (20 px < 36 px)")}, 0.0, 0)
    d = ev.to_dict()
    validate(d)
    assert d["gender"] is None and "too small" in d["attributes_reason"]


def test_jsonl_sink_writes_valid_lines(tmp_path):
    b = EventBuilder("c")
    s = JsonlSink(tmp_path / "e.jsonl")
    for e in upd(b, [tr(1)], {1: MALE30}, 0.0, 0) + b.end_all(2.0, 60):
        s.emit(e)
    s.close()
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    assert len(lines) == 2
    for l in lines:
        validate(json.loads(l))


@pytest.mark.parametrize("bad", [
    {"type": "start"},
    {"schema": "streamer.event/1", "id": "x", "type": "teleport", "camera": "c", "ts": "2026-01-01T00:00:00.000Z", "frame_id": 1},
])
def test_schema_rejects_bad_events(bad):
    with pytest.raises(jsonschema.ValidationError):
        validate(bad)
