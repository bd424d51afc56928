"""Home Assistant MQTT discovery (``mqtt.discovery: true``) against a real Mosquitto broker.

A subscriber on the discovery prefix reads what Home Assistant would read: one retained config
per sensor, valid JSON with ``unique_id``, ``state_topic``, ``availability`` and ``device``; the
states on the configs' own ``state_topic`` follow the events (a ``cross`` increments "in today",
``start``/``end`` move "people now", the last judged person sets gender and age).
"""

from __future__ import annotations

import json
import time

import pytest

from helpers.mqtt_broker import Broker, Subscriber, make_cfg, retained
from streamer.core.events import EventBuilder
from streamer.sinks.mqtt import MqttSink

HANG_S = 10.0
PREFIX = "homeassistant"


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def configs(sub: Subscriber) -> dict[str, dict]:
    """The newest config per discovery topic, parsed (a bad payload fails here)."""
    with sub.cond:
        msgs = [m for m in sub.msgs if m.topic.startswith(PREFIX + "/") and m.topic.endswith("/config")]
    return {m.topic: json.loads(m.payload) for m in msgs}


def person(track: int, gender: str | None = None, age: float | None = None) -> dict:
    return {"track_id": track, "box": [10, 10, 50, 50], "score": 0.9,
            "gender": {"label": gender, "confidence": 0.9} if gender else None,
            "age": {"years": age, "low": age - 4, "high": age + 4, "range": "x", "confidence": 0.5}
            if age is not None else None,
            "attributes_reason": None if gender else "not classified yet"}


def cross(track: int, n_in: int, n_out: int = 0, line: str = "door") -> dict:
    return {**person(track), "line": line, "direction": "in",
            "counts": {"period_start": "2026-01-01T00:00:00.000Z", "lines": {line: {"in": n_in, "out": n_out}},
                       "zones": {}, "people": n_in + n_out}}


class States:
    def __init__(self, sub: Subscriber, cfgs: dict[str, dict]):
        self.sub = sub
        self.topic = {c["unique_id"].removeprefix("streamer_door_"): c["state_topic"] for c in cfgs.values()}

    def last(self, key: str):
        got = self.sub.on(self.topic[key])
        return got[-1].payload.decode() if got else None

    def wait(self, key: str, value: str) -> None:
        self.sub.wait(lambda s: self.last(key) == value, HANG_S, f"state {key} == {value!r}")


def test_discovery_configs_and_states_follow_the_events(broker, tmp_path):
    sub = Subscriber(broker.port, [f"{PREFIX}/#", "streamer/door/#"])
    sink = MqttSink(make_cfg(broker.url, tmp_path, discovery=True), "door", lines=["door"])
    bld = EventBuilder("door")
    try:
        expected = {"people_now", "last_gender", "last_age", "in_today_door", "out_today_door"}
        sub.wait(lambda s: len(configs(s)) >= len(expected), HANG_S, "the discovery configs")
        cfgs = configs(sub)
        assert set(cfgs) == {f"{PREFIX}/sensor/streamer_door_{k}/config" for k in expected}
        ids = [c["unique_id"] for c in cfgs.values()]
        assert len(set(ids)) == len(ids) == len(expected)
        for topic, c in cfgs.items():
            assert c["state_topic"].startswith("streamer/door/state/")
            assert c["availability"] == [{"topic": "streamer/door/available", "payload_available": "online",
                                          "payload_not_available": "offline"}]
            assert c["device"]["identifiers"] == ["streamer_door"] and c["device"]["name"]
            assert c["name"] and topic.split("/")[2] == c["unique_id"]
        assert cfgs[f"{PREFIX}/sensor/streamer_door_in_today_door/config"]["state_class"] == "total_increasing"
        sub.wait(lambda s: [m for m in s.on("streamer/door/available") if m.payload == b"online"], HANG_S,
                 "availability online")

        st = States(sub, cfgs)
        st.wait("people_now", "0")
        t = time.time()
        sink.emit(bld.make("start", t, 1, person(1)))
        sink.emit(bld.make("start", t, 2, person(2)))
        st.wait("people_now", "2")
        sink.emit(bld.make("cross", t, 3, cross(1, 1)))
        st.wait("in_today_door", "1")
        st.wait("out_today_door", "0")
        sink.emit(bld.make("end", t, 4, {**person(1, "female", 31.4), "first_seen": "x", "dwell_s": 1.0}))
        st.wait("people_now", "1")
        st.wait("last_gender", "female")
        st.wait("last_age", "31")
        sink.emit(bld.make("cross", t, 5, cross(2, 2)))  # the cross increments "in today"
        st.wait("in_today_door", "2")
        assert sink.flush(HANG_S)
        n_states = len(sub.on(st.topic["in_today_door"]))
        sink.emit(bld.make("update", t, 6, person(2)))  # nothing changed: no state republished
        assert sink.flush(HANG_S)

        # A newcomer (Home Assistant starting later) gets configs and states retained.
        assert retained(broker.port, st.topic["in_today_door"]).payload == b"2"
        assert json.loads(retained(broker.port, f"{PREFIX}/sensor/streamer_door_last_age/config")
                          .payload)["unit_of_measurement"] == "years"
        assert len(sub.on(st.topic["in_today_door"])) == n_states

        # A line first seen in a counts object gets its sensors then.
        sink.emit(bld.make("cross", t, 7, cross(2, 1, line="side gate")))
        sub.wait(lambda s: f"{PREFIX}/sensor/streamer_door_in_today_side_gate/config" in configs(s), HANG_S,
                 "the new line's config")
        assert States(sub, configs(sub)).last("in_today_side_gate") in (None, "1")
        States(sub, configs(sub)).wait("in_today_side_gate", "1")

        # Home Assistant restarting announces itself: every config is published again.
        before = len([m for m in sub.msgs if m.topic.endswith("/config")])
        sub.c.publish(f"{PREFIX}/status", "online", qos=1).wait_for_publish(HANG_S)
        sub.wait(lambda s: len([m for m in s.msgs if m.topic.endswith("/config")]) >= before + 7, HANG_S,
                 "the configs again after the birth message")
    finally:
        sink.close()
        sub.close()
    assert retained(broker.port, "streamer/door/available").payload == b"offline"


def test_discovery_is_off_by_default(broker, tmp_path):
    sub = Subscriber(broker.port, [f"{PREFIX}/#", "streamer/door/#"])
    sink = MqttSink(make_cfg(broker.url, tmp_path), "door", lines=["door"])
    try:
        bld = EventBuilder("door")
        sink.emit(bld.make("cross", time.time(), 1, cross(1, 1)))
        assert sink.flush(HANG_S)
        sub.wait(lambda s: s.on("streamer/door/available"), HANG_S, "the sink to be online")
    finally:
        sink.close()
        sub.close()
    assert not [m for m in sub.msgs if m.topic.startswith(PREFIX) or "/state/" in m.topic]
