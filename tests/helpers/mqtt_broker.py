"""A real Mosquitto broker for the tests, and the clients that talk to it.

- ``Broker``: one mosquitto process with a generated config on a free loopback port, with a
  persistence database; restartable on the same port, freezable (SIGSTOP), killable.
- ``Subscriber``: a real paho client recording every message (optionally a persistent QoS-1
  session), resubscribing on every (re)connect.
- ``Emitter``: makes real events with ``EventBuilder`` and emits them to a sink, keeping ids.
Shared by test_mqtt, test_spool_diskfull and test_mqtt_discovery (no test imports another).
"""

from __future__ import annotations

import getpass
import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from conftest import require_binary
from streamer.config import MqttConfig
from streamer.core.events import EventBuilder
from streamer.sinks.mqtt import MqttSink


def need_mosquitto() -> str:
    """The broker binary, on PATH or in /usr/sbin (skip locally / fail under CI=true)."""
    return require_binary("mosquitto", package="mosquitto")


def wait_until(pred, timeout: float, what: str, step: float = 0.02) -> None:
    """Poll an external process's state (a broker, a port) until ``pred()`` or fail."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One mosquitto process with a generated config; restartable on the same port."""

    def __init__(self, directory: Path, password_file: Path | None = None, tls: dict | None = None):
        self.binary = need_mosquitto()
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1",
                 f"allow_anonymous {'false' if password_file else 'true'}",
                 "persistence true", f"persistence_location {self.dir}/",
                 "max_queued_messages 100000", "log_type all",
                 f"user {getpass.getuser()}"]  # ignored unless root; keeps the db writable
        if password_file:
            lines.append(f"password_file {password_file}")
        if tls:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}",
                      "require_certificate true"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.url = f"{'mqtts' if tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.dir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log)
        log.close()
        wait_until(self._listening, 10, f"mosquitto on port {self.port}")

    def _listening(self) -> bool:
        assert self.proc.poll() is None, (self.dir / "mosquitto.log").read_text()[-2000:]
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def save(self) -> None:
        """Write the persistence database now (sessions and subscriptions survive a kill)."""
        db = self.dir / "mosquitto.db"
        before = db.stat().st_mtime_ns if db.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: db.exists() and db.stat().st_mtime_ns != before, 10, "mosquitto.db")

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Subscriber:
    """A real paho client recording every message; resubscribes on every (re)connect."""

    def __init__(self, port: int, topics: list[str], client_id: str | None = None,
                 persistent: bool = False, auth: tuple[str, str] | None = None,
                 tls: dict | None = None):
        self.msgs: list[paho.MQTTMessage] = []
        self.cond = threading.Condition()
        self.topics = topics
        self.subscribed = threading.Event()
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"sub-{id(self)}",
                             clean_session=not persistent)
        if auth:
            self.c.username_pw_set(*auth)
        if tls:
            self.c.tls_set(ca_certs=str(tls["ca"]), certfile=str(tls["client_cert"]),
                           keyfile=str(tls["client_key"]))
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in self.topics])
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect_async("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        assert self.subscribed.wait(10), "subscriber never subscribed"

    def _on_message(self, c, u, msg) -> None:
        with self.cond:
            self.msgs.append(msg)
            self.cond.notify_all()

    def wait(self, pred, timeout: float, what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: pred(self), timeout), f"timed out waiting for {what}"

    def on(self, topic: str) -> list[paho.MQTTMessage]:
        with self.cond:
            return [m for m in self.msgs if m.topic == topic]

    def event_ids(self, topic: str) -> list[str]:
        return [json.loads(m.payload)["id"] for m in self.on(topic)]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def dedupe(ids: list[str]) -> list[str]:
    seen, out = set(), []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def make_cfg(broker_url: str, tmp_path: Path, **kw) -> MqttConfig:
    kw.setdefault("spool_dir", str(tmp_path / "spool"))
    return MqttConfig(enabled=True, url=broker_url, **kw)


def counts_payload(n: int) -> dict:
    return {"period_start": "2026-01-01T00:00:00.000Z", "lines": {"door": {"in": n, "out": 0}},
            "zones": {}, "people": n}


class Emitter:
    def __init__(self, sink: MqttSink, camera: str = "cam"):
        self.sink, self.bld, self.ids = sink, EventBuilder(camera), []

    def emit(self, n: int, type_: str = "start") -> None:
        for _ in range(n):
            ev = self.bld.make(type_, time.time(), len(self.ids), {"track_id": len(self.ids)})
            self.sink.emit(ev)
            self.ids.append(ev.id)

    def emit_counts(self, n: int) -> None:
        ev = self.bld.make("cross", time.time(), len(self.ids),
                           {"track_id": 1, "line": "door", "direction": "in", "counts": counts_payload(n)})
        self.sink.emit(ev)
        self.ids.append(ev.id)


def retained(port: int, topic: str) -> paho.MQTTMessage:
    """What a newcomer gets on ``topic`` (the retained message)."""
    s = Subscriber(port, [topic])
    try:
        s.wait(lambda s: s.on(topic), 5, f"retained message on {topic}")
        m = s.on(topic)[-1]
        assert m.retain
        return m
    finally:
        s.close()
