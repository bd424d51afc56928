"""The MQTT sink against a real Mosquitto broker started per test on a free port.

The sender's window and reconnect rules are first pinned down with a fake paho client driven
by hand (no broker). Delivery is at-least-once (QoS 1): a consumer deduplicates by event id.
The broker tests assert that after dedupe every emitted event arrived, in emission order,
across a broker killed in the middle of a run (with events in flight) and restarted on the
same port.

To make "arrived" depend only on the sink, the subscriber has a persistent session (clean
session off, QoS 1) saved to the broker's database before the run (SIGUSR1), so the restarted
broker queues events for it even if the sink reconnects first; and the broker is frozen
(SIGSTOP) before it is killed, so every event it acknowledged had already been forwarded.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from conftest import require_binary
from helpers.mqtt_broker import Broker, Emitter, Subscriber, dedupe, make_cfg, retained
from streamer.config import MqttConfig
from streamer.errors import ConfigError
from streamer.core.events import EventBuilder
from streamer.sinks.mqtt import MqttSink
from streamer.sinks.spool import Spool

ROOT = Path(__file__).resolve().parent.parent
HANG_S = 10.0  # a bound only a hang trips; no test asserts a speed



@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


# ---- the sender's rules, with a fake paho client ---------------------------------------------

class FakeInfo:
    def __init__(self, mid: int):
        self.mid, self.rc = mid, paho.MQTT_ERR_SUCCESS

    def wait_for_publish(self, timeout=None) -> None:
        pass


class FakeClient:
    """Stands in for ``paho.Client``: records publishes; the test fires connects, drops, PUBACKs."""

    def __init__(self, *args, **kwargs):
        self.published: list[tuple[str, bytes, int]] = []  # (topic, payload, mid)
        self._mid = 0
        self._lock = threading.Lock()
        self.on_connect = self.on_disconnect = self.on_publish = self.on_connect_fail = None

    def __getattr__(self, name):  # setup calls (tls_set, will_set, loop_start, ...) do nothing
        return lambda *a, **k: None

    def publish(self, topic, payload=None, qos=0, retain=False):
        with self._lock:
            self._mid += 1
            self.published.append((topic, payload if isinstance(payload, bytes) else str(payload).encode(),
                                   self._mid))
            return FakeInfo(self._mid)

    def connect(self) -> None:
        self.on_connect(self, None, None, ReasonCode(PacketTypes.CONNACK, "Success"), None)

    def drop(self) -> None:
        self.on_disconnect(self, None, None, ReasonCode(PacketTypes.DISCONNECT, "Unspecified error"), None)

    def ack(self, mids) -> None:
        for m in mids:
            self.on_publish(self, None, m, ReasonCode(PacketTypes.PUBACK, "Success"), None)

    def events(self) -> list[tuple[str, int]]:
        with self._lock:
            return [(json.loads(p)["id"], m) for t, p, m in self.published if t.endswith("/events")]

    def on_topic(self, suffix: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.published if t.endswith(suffix)]


@pytest.fixture
def fake_sink(tmp_path):
    made: list[FakeClient] = []

    def factory(*a, **k):
        made.append(FakeClient())
        return made[-1]

    sink = MqttSink(make_cfg("mqtt://127.0.0.1:1", tmp_path), "cam", window=4, client_factory=factory)
    yield sink, made[0]
    sink.close()


def settle(sink: MqttSink) -> None:
    """Wait until the sender has completed a full pass after whatever happened last."""
    n = sink.passes
    assert sink.wait_for(lambda s: s.passes >= n + 2, 5)


def test_window_bounds_events_in_flight_and_keeps_order(fake_sink):
    sink, fake = fake_sink
    em = Emitter(sink)
    em.emit(10)
    settle(sink)
    assert fake.events() == []  # not connected: everything waits in the spool
    fake.connect()
    assert sink.wait_for(lambda s: s.published == 4, 5)
    settle(sink)
    assert [i for i, _ in fake.events()] == em.ids[:4]  # window = 4
    fake.ack([m for _, m in fake.events()[:2]])
    assert sink.wait_for(lambda s: s.published == 6, 5)
    fake.ack([m for _, m in fake.events()[2:]])
    assert sink.wait_for(lambda s: s.published == 10, 5)
    fake.ack([m for _, m in fake.events()[6:]])
    assert sink.flush(5) and sink.pending == 0
    assert [i for i, _ in fake.events()] == em.ids
    assert fake.on_topic("/available") == [b"online"]


def test_after_a_reconnect_nothing_new_goes_out_before_the_old_in_flight_is_acked(fake_sink):
    sink, fake = fake_sink
    em = Emitter(sink)
    fake.connect()
    em.emit(6)
    assert sink.wait_for(lambda s: s.published == 4, 5)
    fake.drop()
    fake.connect()  # paho re-sends the 4 in flight itself; new ones would overtake them
    assert sink.wait_for(lambda s: len(fake.on_topic("/available")) == 2, 5)
    settle(sink)
    assert sink.published == 4  # the 4 from before the drop are unacknowledged: gate closed
    fake.ack([m for _, m in fake.events()[:3]])
    settle(sink)
    assert sink.published == 4  # still one old event unacknowledged
    fake.ack([fake.events()[3][1]])
    assert sink.wait_for(lambda s: s.published == 6, 5)
    assert [i for i, _ in fake.events()] == em.ids


def test_counts_are_coalesced_and_republished_on_every_connect(fake_sink):
    sink, fake = fake_sink
    em = Emitter(sink)
    em.emit_counts(1)
    em.emit_counts(2)
    em.emit_counts(3)
    fake.connect()
    assert sink.wait_for(lambda s: len(fake.on_topic("/counts")) == 1, 5)
    settle(sink)
    assert [json.loads(p)["lines"]["door"]["in"] for p in fake.on_topic("/counts")] == [3]
    fake.drop()
    fake.connect()
    assert sink.wait_for(lambda s: len(fake.on_topic("/counts")) == 2, 5)
    fake.ack([m for _, m in fake.events()])  # unknown mids (status messages) are ignored too
    fake.ack([9999])
    assert sink.flush(5)


# ---- a real broker ---------------------------------------------------------------------------

def test_every_event_arrives_in_order_across_a_broker_kill_and_restart(broker, tmp_path):
    topic = "streamer/cam/events"
    sub = Subscriber(broker.port, [topic], client_id="test-consumer", persistent=True)
    broker.save()
    sink = MqttSink(make_cfg(broker.url, tmp_path), "cam", reconnect_min_s=0.2, reconnect_max_s=1.0)
    em = Emitter(sink)
    try:
        assert sink.wait_for(lambda s: s.connected, 10)
        em.emit(40)
        em.emit_counts(1)
        sub.wait(lambda s: len(s.on(topic)) >= 41, 10, "the first 41 events")
        assert sink.flush(10)  # quiet point: everything so far delivered and acknowledged

        broker.freeze()  # events now go out but are never acknowledged: in flight at the kill
        em.emit(20)
        assert sink.wait_for(lambda s: s.published == 61, 5)
        broker.kill()
        assert sink.wait_for(lambda s: not s.connected, 10)

        em.emit(30)  # broker down: spooled
        em.emit_counts(2)
        assert sink.pending == 51 and sink.dropped == 0

        broker.start()  # same port, same database
        em.emit(20)
        assert sink.flush(20), f"{sink.pending} events never acknowledged"
        sub.wait(lambda s: len(set(s.event_ids(topic))) >= len(em.ids), 20, "every event")

        got = sub.event_ids(topic)
        assert dedupe(got) == em.ids  # every event, in emission order (after dedupe)
        assert sink.dropped == 0 and sink.disconnects >= 1 and sink.connects >= 2
        # At-least-once: the 20 in flight at the kill may arrive twice, nothing else should.
        assert len(got) - len(em.ids) <= 20

        # Retained state was republished to the restarted broker.
        assert retained(broker.port, "streamer/cam/available").payload == b"online"
        c = json.loads(retained(broker.port, "streamer/cam/counts").payload)
        assert c["lines"] == {"door": {"in": 2, "out": 0}} and c["camera"] == "cam"
        assert c["schema"] == "streamer.counts/1" and c["event_id"] == em.ids[-21]
    finally:
        sink.close()
        sub.close()
    assert retained(broker.port, "streamer/cam/available").payload == b"offline"  # clean close


def test_counts_are_retained_and_republished_only_when_they_change(broker, tmp_path):
    # Latest-value semantics: changes in quick succession may be coalesced into one message,
    # so each change here waits for the previous one to arrive.
    counts_topic = "site/cam/counts"
    sub = Subscriber(broker.port, [counts_topic])
    sink = MqttSink(make_cfg(broker.url, tmp_path, topic_prefix="site"), "cam")
    em = Emitter(sink)
    try:
        assert sink.wait_for(lambda s: s.connected, 10)
        em.emit_counts(1)
        sub.wait(lambda s: len(s.on(counts_topic)) >= 1, 5, "the first counts message")
        em.emit_counts(1)  # unchanged: not republished
        em.emit(3)
        assert sink.flush(10)
        em.emit_counts(2)
        sub.wait(lambda s: len(s.on(counts_topic)) >= 2, 5, "the second counts message")
        assert sink.flush(10)
        assert [json.loads(m.payload)["lines"]["door"]["in"] for m in sub.on(counts_topic)] == [1, 2]
        assert json.loads(retained(broker.port, counts_topic).payload)["lines"]["door"]["in"] == 2
    finally:
        sink.close()
        sub.close()


def test_events_spooled_while_the_broker_is_down_survive_a_restart_of_the_sink(tmp_path):
    b = Broker(tmp_path / "broker")  # not started yet
    cfg = make_cfg(b.url, tmp_path)
    sink = MqttSink(cfg, "cam", flush_timeout_s=0.2)
    em = Emitter(sink)
    em.emit(25)
    t0 = time.monotonic()
    sink.close()  # nothing to flush to: returns (no wait on a broker), events stay on disk
    assert time.monotonic() - t0 < HANG_S
    b.start()
    try:
        sub = Subscriber(b.port, ["streamer/cam/events"])
        sink2 = MqttSink(cfg, "cam")
        assert sink2.spool.recovered == 25
        em2 = Emitter(sink2)
        em2.emit(5)
        assert sink2.flush(10)
        sub.wait(lambda s: len(set(s.event_ids("streamer/cam/events"))) >= 30, 10, "30 events")
        assert dedupe(sub.event_ids("streamer/cam/events")) == em.ids + em2.ids
        sink2.close()
        sub.close()
    finally:
        b.stop()


def test_a_full_spool_drops_the_oldest_and_reports_it(tmp_path, caplog):
    b = Broker(tmp_path / "broker")  # never started: the broker is down for the whole run
    sink = MqttSink(make_cfg(b.url, tmp_path, spool_max_events=5), "cam", flush_timeout_s=0.1)
    em = Emitter(sink)
    with caplog.at_level(logging.WARNING):
        em.emit(8)
        assert sink.dropped == 3 and sink.pending == 5
        sink.close()
    assert "dropped the oldest" in caplog.text
    assert "3 event(s) were dropped" in caplog.text


def test_emit_and_close_never_wait_on_a_frozen_broker(broker, tmp_path):
    sink = MqttSink(make_cfg(broker.url, tmp_path, fsync="never"), "cam")
    assert sink.wait_for(lambda s: s.connected, 10)
    broker.freeze()
    em = Emitter(sink)
    # 2000 events, none acknowledged: emit returns for each (spooled), close gives up after its
    # flush budget. A wait on the broker would block forever; HANG_S catches only that (the
    # speed itself is no test's business).
    t0 = time.monotonic()
    em.emit(2000)
    assert time.monotonic() - t0 < HANG_S
    assert sink.pending == 2000
    t0 = time.monotonic()
    sink.close()
    assert time.monotonic() - t0 < HANG_S
    broker.kill()


def test_last_will_says_offline_when_the_process_is_killed(broker, tmp_path):
    avail = "streamer/willcam/available"
    sub = Subscriber(broker.port, [avail])
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from streamer.config import MqttConfig
        from streamer.sinks.mqtt import MqttSink
        sink = MqttSink(MqttConfig(enabled=True, url={broker.url!r},
                                   spool_dir={str(tmp_path / 'spool')!r}), "willcam")
        assert sink.wait_for(lambda s: s.connected, 10)
        print("ready", flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        sub.wait(lambda s: [m for m in s.on(avail) if m.payload == b"online"], 10, "online")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        sub.wait(lambda s: s.on(avail)[-1].payload == b"offline", 10, "the last will")
        assert retained(broker.port, avail).payload == b"offline"
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()


@pytest.fixture
def auth_broker(tmp_path):
    passwd = require_binary("mosquitto_passwd", package="mosquitto")
    pw_file = tmp_path / "passwd"
    subprocess.run([passwd, "-b", "-c", str(pw_file), "cam", "Sup3r-Secret-PW"], check=True,
                   capture_output=True)
    b = Broker(tmp_path / "broker", password_file=pw_file)
    b.start()
    yield b
    b.stop()


SECRET = "Sup3r-Secret-PW"


@pytest.mark.parametrize("how, password", [
    ("config", SECRET),
    ("url", SECRET),
    ("config", SECRET + "-wrong"),  # refused: the failure is logged, the password is not
])
def test_password_never_appears_in_logs_or_events(auth_broker, tmp_path, caplog, how, password):
    url = auth_broker.url
    kw = {"username": "cam", "password": password}
    if how == "url":
        url, kw = f"mqtt://cam:{password}@127.0.0.1:{auth_broker.port}", {}
    sub = Subscriber(auth_broker.port, ["streamer/cam/events"], auth=("cam", SECRET))
    with caplog.at_level(logging.DEBUG):
        sink = MqttSink(make_cfg(url, tmp_path, **kw), "cam", flush_timeout_s=0.2)
        em = Emitter(sink)
        em.emit(3)
        if password == SECRET:
            assert sink.flush(10)
            sub.wait(lambda s: len(s.on("streamer/cam/events")) >= 3, 5, "3 events")
        else:
            assert sink.wait_for(lambda s: s.connect_failures >= 1, 10)
            assert not sink.connected and "refused the connection: Not authorized" in caplog.text
        sink.close()
    sub.close()
    assert "DEBUG" in {r.levelname for r in caplog.records}  # paho's debug lines were captured
    assert SECRET not in caplog.text
    assert all(SECRET not in m.payload.decode() for m in sub.msgs)
    if how == "url":
        assert "mqtt://***@127.0.0.1" in caplog.text


def make_certs(d: Path) -> dict:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    openssl = require_binary("openssl", package="openssl")
    d.mkdir()

    def run(*args):
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=streamer-test-ca")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, cn in (("server", "127.0.0.1"), ("client", "cam")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={cn}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext")
    return {"ca": d / "ca.crt", "cert": d / "server.crt", "key": d / "server.key",
            "client_cert": d / "client.crt", "client_key": d / "client.key"}


def test_tls_with_a_client_certificate(tmp_path, caplog):
    certs = make_certs(tmp_path / "certs")
    b = Broker(tmp_path / "broker", tls=certs)
    b.start()
    try:
        sub = Subscriber(b.port, ["streamer/cam/events"], tls=certs)
        cfg = make_cfg(b.url, tmp_path, ca_file=str(certs["ca"]), cert_file=str(certs["client_cert"]),
                       key_file=str(certs["client_key"]))
        sink = MqttSink(cfg, "cam")
        em = Emitter(sink)
        em.emit(5)
        assert sink.flush(10)
        sub.wait(lambda s: len(s.on("streamer/cam/events")) >= 5, 5, "5 events over TLS")
        assert dedupe(sub.event_ids("streamer/cam/events")) == em.ids
        sink.close()
        # Without the client certificate the broker refuses the handshake: spooled, reported.
        with caplog.at_level(logging.WARNING):
            bare = MqttSink(make_cfg(b.url, tmp_path / "bare", ca_file=str(certs["ca"])), "cam",
                            flush_timeout_s=0.1)
            Emitter(bare).emit(2)
            assert bare.wait_for(lambda s: s.connect_failures >= 1, 10)
            assert not bare.connected and bare.pending == 2
            bare.close()
        assert "closed before it was accepted" in caplog.text or "cannot reach broker" in caplog.text
        sub.close()
    finally:
        b.stop()


@pytest.mark.parametrize("kw, error", [
    ({"url": "mqtt://"}, "mqtt.url: expected mqtt://host:port"),
    ({"url": "mqtt://u:hunter2@host:1883/x"}, "mqtt.url: expected no path"),
    ({"url": "mqtt://host:99999"}, "mqtt.url: not a valid URL"),
    ({"topic_prefix": "a/+/b"}, "mqtt.topic_prefix"),
    ({"url": "mqtts://host", "ca_file": "/nonexistent/ca.pem"}, "mqtt.ca_file: file /nonexistent/ca.pem"),
    ({"url": "mqtt://host", "ca_file": __file__}, "not mqtts://"),
    ({"url": "mqtts://host", "cert_file": __file__}, "give both"),
    ({"url": "mqtts://host", "cert_file": __file__, "key_file": __file__}, "cannot load the TLS files"),
])
def test_bad_settings_fail_at_construction_without_leaking_the_password(tmp_path, kw, error):
    with pytest.raises(ConfigError, match=error) as e:
        MqttSink(MqttConfig(enabled=True, spool_dir=str(tmp_path), **kw), "cam")
    assert "hunter2" not in str(e.value)
    Spool(tmp_path / "cam").close()  # a refused sink leaves its spool unlocked


def summary_payload(period_start: str, door_in: int, door_out: int, female_in: int, male_in: int) -> dict:
    g = {"in": {"male": male_in, "female": female_in, "unknown": door_in - male_in - female_in},
         "out": {"male": 0, "female": 0, "unknown": door_out}}
    return {"reason": "interval", "period_start": period_start, "period_end": None, "interval_s": 60.0,
            "lines": {"door": {"in": door_in, "out": door_out, "by_gender": g, "by_age": {}}},
            "zones": {}, "people": door_in + door_out,
            "counts": {"period_start": period_start, "lines": {"door": {"in": door_in, "out": door_out}},
                       "zones": {}, "people": door_in + door_out}}


def test_example_consumer_aggregates_summaries_across_cameras(broker, tmp_path):
    script = ROOT / "scripts" / "mqtt_table.py"
    # 12 s from its subscription: room for the sinks below to connect, emit and flush on a
    # loaded box before the consumer prints its table.
    proc = subprocess.Popen([sys.executable, str(script), "--url", broker.url, "--duration", "12",
                             "--refresh", "0.5", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    sinks: dict[str, MqttSink] = {}
    try:
        assert "subscribed" in proc.stderr.readline()
        t0 = time.time()
        sinks.update({cam: MqttSink(make_cfg(broker.url, tmp_path / cam), cam) for cam in ("cam1", "cam2")})
        b1, b2 = EventBuilder("cam1"), EventBuilder("cam2")
        start = "2026-06-10T00:00:00.000Z"
        s1 = b1.make("summary", t0, 10, summary_payload(start, 3, 1, 2, 1))
        sinks["cam1"].emit(s1)
        sinks["cam1"].emit(s1)  # a re-send: same id
        sinks["cam2"].emit(b2.make("summary", t0, 10, summary_payload(start, 2, 0, 0, 2)))
        newer = b1.make("summary", t0 + 1, 20, summary_payload(start, 4, 1, 2, 2))
        sinks["cam1"].emit(newer)
        for s in sinks.values():
            assert s.flush(10)
        # A stale summary arriving late (e.g. re-sent from a spool after a newer one).
        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="late-publisher")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        late = b1.make("summary", t0 - 60, 5, summary_payload(start, 1, 0, 1, 0))
        pub.publish("streamer/cam1/events", json.dumps(late.to_dict()), qos=1).wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()
        out, err = proc.communicate(timeout=40)  # it ends on its own after --duration
    finally:
        if proc.poll() is None:
            proc.kill()
        for s in sinks.values():
            s.close()
    last = json.loads(out.strip().splitlines()[-1])
    rows = {r["camera"]: r for r in last["rows"]}
    assert (rows["cam1"]["status"], rows["cam1"]["in"], rows["cam1"]["out"]) == ("online", 4, 1), out
    assert (rows["cam2"]["status"], rows["cam2"]["in"], rows["cam2"]["out"]) == ("online", 2, 0), out
    total = last["total"]
    assert (total["in"], total["out"]) == (6, 1)  # 4 + 2 in, 1 out
    assert (total["in_f"], total["in_m"], total["in_u"]) == (2, 4, 0)  # from the newest summaries
    assert last["duplicates"] == 1


# ---- noise and health ------------------------------------------------------------------------

def test_reconnect_noise_is_throttled_to_one_line_a_minute(broker, tmp_path, caplog):
    # paho logs "Client is not connected" at ERROR on every reconnect attempt; it must go
    # through the same once-a-minute throttle as our own "cannot reach broker" line.
    sink = MqttSink(make_cfg(broker.url, tmp_path), "cam", reconnect_min_s=0.05, reconnect_max_s=0.1,
                    flush_timeout_s=0.1)
    try:
        assert sink.wait_for(lambda s: s.connected, HANG_S)
        with caplog.at_level(logging.DEBUG, logger="streamer.sinks.mqtt"):
            broker.kill()  # the broker is down for good: paho retries every 0.1 s
            assert sink.wait_for(lambda s: s.connect_failures >= 8, HANG_S)
    finally:
        sink.close()
    noisy = [r for r in caplog.records if "Client is not connected" in r.getMessage()]
    link = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("streamer.sinks.mqtt")]
    assert len(noisy) <= 1, [r.getMessage() for r in noisy]
    assert all(r.levelno <= logging.WARNING for r in link)  # a retry is not an ERROR
    assert len(link) <= 3, [r.getMessage() for r in link]  # lost + once-a-minute, not 8+
    assert any("lost" in r.getMessage() for r in link)


def test_health_follows_the_link_and_the_backlog(broker, tmp_path):
    sink = MqttSink(make_cfg(broker.url, tmp_path), "cam", reconnect_min_s=0.1, reconnect_max_s=0.3,
                    flush_timeout_s=0.1)
    em = Emitter(sink)
    try:
        assert sink.wait_for(lambda s: s.connected, HANG_S)
        em.emit(3)
        assert sink.flush(HANG_S)
        h = sink.health()
        assert h == {"connected": True, "backlog": 0, "memory_backlog": 0, "unsent": 0, "dropped": 0,
                     "last_error": None, "since": h["since"]}
        up_since = h["since"]
        broker.kill()
        assert sink.wait_for(lambda s: s.connect_failures >= 1, HANG_S)
        em.emit(4)
        h = sink.health()
        assert not h["connected"] and h["backlog"] == 4 and h["unsent"] == 4
        assert h["since"] >= up_since and h["last_error"] and "127.0.0.1" in h["last_error"]
        broker.start()
        assert sink.flush(HANG_S)
        h = sink.health()
        assert h["connected"] and h["backlog"] == 0 and h["last_error"] is None
    finally:
        sink.close()
    assert sink.health()["unsent"] == 0  # still answers after close (the summary reads it then)


def test_sinkset_reports_the_health_of_the_sinks_that_have_one(tmp_path):
    from streamer.sinks.basic import JsonlSink, SinkSet

    b = Broker(tmp_path / "broker")  # never started: every event stays unsent
    mq = MqttSink(make_cfg(b.url, tmp_path), "cam", flush_timeout_s=0.1)
    sinks = SinkSet([JsonlSink(tmp_path / "events.jsonl"), mq])
    em = Emitter(sinks)
    em.emit(5)
    sinks.close()
    h = sinks.health()
    assert list(h) == ["mqtt"] and h["mqtt"]["unsent"] == 5 and not h["mqtt"]["connected"]
    assert sinks.unsent("mqtt") == 5 and sinks.unsent("nope") is None
