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


# ---- exact payloads and boundaries (found by mutation testing: `make mutate`) -------------

from streamer.core.events import attributes_payload  # noqa: E402


def test_attributes_payload_rounds_as_the_schema_documents():
    a = Attributes("female", 0.87654, 31.26, 24.44, 38.56, 0.123456, 3)
    assert attributes_payload(a) == {
        "gender": {"label": "female", "confidence": 0.877},
        "age": {"years": 31.3, "low": 24.4, "high": 38.6, "range": "24-39", "confidence": 0.123},
        "attributes_reason": None}
    no_conf = attributes_payload(Attributes("male", 0.9, 30.0, 25.0, 35.0, None, 1))
    assert no_conf["age"]["confidence"] is None
    assert attributes_payload(None) == {"gender": None, "age": None,
                                        "attributes_reason": "not classified yet"}
    assert attributes_payload(Attributes(reason="face too blurred"))["attributes_reason"] == "face too blurred"


def test_event_ids_count_from_one_per_run_and_runs_differ():
    b = EventBuilder("door", run_id="abcd1234")
    assert [b.make("start", 1.0, 0, {}).id for _ in range(2)] == ["abcd1234-00000001", "abcd1234-00000002"]
    r1, r2 = EventBuilder("door").run_id, EventBuilder("door").run_id
    assert r1 != r2 and len(r1) == len(r2) == 8 and int(r1, 16) >= 0
    assert b.make("start", 1.0, 0, {}).clock == "wall"
    assert EventBuilder("door", clock="media").make("start", 1.0, 0, {}).clock == "media"


def test_person_payload_is_rounded():
    b = EventBuilder("door")
    (ev,) = upd(b, [Track(1, (10.4, 10.6, 50.5, 60.49), 0.87654, True, 5, 0, 0, 0)], {}, 100.0, 7)
    assert ev.payload["box"] == [10, 11, 50, 60] and ev.payload["score"] == 0.877
    (end,) = upd(b, [], {}, 100.12345, 8)
    assert end.payload["dwell_s"] == 0.0  # no detection after the first: dwell stops there


def test_people_started_counts_each_confirmed_track_once():
    b = EventBuilder("door")
    assert b.people_started == 0
    upd(b, [tr(1, confirmed=False), tr(2), tr(3)], {}, 1.0, 0)
    upd(b, [tr(1), tr(2), tr(3)], {}, 1.1, 1)
    assert b.people_started == 3


def test_a_tentative_track_does_not_hide_the_tracks_after_it():
    b = EventBuilder("door")
    evs = upd(b, [tr(1, confirmed=False), tr(2), tr(3)], {}, 1.0, 0)
    # neither a tentative track nor a start ends the pass over the frame's tracks
    assert [(e.type, e.payload["track_id"]) for e in evs] == [("start", 2), ("start", 3)]


def test_attributes_known_at_start_are_not_reported_again():
    b = EventBuilder("door", EventsConfig(update_min_interval_s=0.0))
    (start,) = upd(b, [tr(1)], {1: MALE30}, 1.0, 0)
    assert start.payload["gender"]["label"] == "male"
    assert upd(b, [tr(1)], {1: MALE30}, 2.0, 1) == []  # the start already said it


@pytest.mark.parametrize("age, material", [(34.0, True), (33.99, False)])
def test_an_age_change_of_exactly_the_threshold_is_an_update(age, material):
    b = EventBuilder("door", EventsConfig(update_min_interval_s=0.0, age_change_years=4.0))
    upd(b, [tr(1)], {1: MALE30}, 1.0, 0)
    evs = upd(b, [tr(1)], {1: Attributes("male", 0.9, age, age - 5, age + 5, 0.5, 4)}, 2.0, 1)
    assert [e.type for e in evs] == (["update"] if material else [])


@pytest.mark.parametrize("dt, due", [(5.0, True), (4.99, False)])
def test_updates_wait_exactly_update_min_interval_s(dt, due):
    b = EventBuilder("door", EventsConfig(update_min_interval_s=5.0))
    upd(b, [tr(1)], {}, 100.0, 0)  # start, nothing known yet
    evs = upd(b, [tr(1)], {1: MALE30}, 100.0 + dt, 1)
    assert [e.type for e in evs] == (["update"] if due else [])


def test_an_ended_track_forgets_its_attributes():
    b = EventBuilder("door")
    upd(b, [tr(1)], {1: MALE30}, 1.0, 0)
    upd(b, [], {}, 2.0, 1)  # ends
    (start,) = upd(b, [tr(1)], {}, 3.0, 2)  # an id seen again (after a reset) starts unknown
    assert start.payload["gender"] is None


def test_end_without_any_detection_uses_the_end_time():
    b = EventBuilder("door")
    coasting = Track(1, (10, 10, 50, 60), 0.9, True, 5, 2, 0, 0)  # missed: not detected
    upd(b, [coasting], {}, 10.0, 0)
    (end,) = b.end_all(12.5, 1)
    assert end.payload["dwell_s"] == 2.5
