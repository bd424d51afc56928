"""The MQTT spool on a real 512 KiB tmpfs that fills up and frees again (issue 11).

Everything here is real: a tmpfs mounted for the test (root only; skipped locally without the
permission, a failure under CI=true), a ballast file that fills it to the last byte, SQLite's
ENOSPC, a real mosquitto with a persistent QoS-1 subscriber (clean session off, saved to the
broker's database), the real JSONL sink on a normal disk beside the MQTT sink, and in the last
test the real ``run.py stream`` in a subprocess stopped by SIGTERM.

What must hold (the contract in streamer/sinks/spool.py): nothing unparseable is ever
published; every event that reached the JSONL file reaches the broker (by id, in order after
dedupe); an event accepted while the disk is full waits in memory (counted) and is written
once space returns; nothing is lost across a restart of the sink or of the process.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import missing, video_path
from helpers.mqtt_broker import Broker, Emitter, Subscriber, dedupe, make_cfg, wait_until
from helpers.rtsp_server import StreamerProcess
from streamer.sinks.basic import JsonlSink, SinkSet
from streamer.sinks.mqtt import MqttSink
from streamer.sinks.spool import Spool

HANG_S = 20.0  # a bound only a hang trips
TMPFS_SIZE = "512k"
CLIP = "face_recognition__short_hamilton_clip.mp4"


@pytest.fixture
def small_fs(tmp_path):
    d = tmp_path / "fs"
    d.mkdir()
    if os.geteuid() != 0:
        missing("mounting a small tmpfs needs root (the disk-full tests run as root in CI)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        missing(f"cannot mount a {TMPFS_SIZE} tmpfs at {d}: {r.stderr.strip()}")
    try:
        yield d
    finally:
        if subprocess.run(["umount", str(d)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(d)], capture_output=True)  # still busy: detach


class Ballast:
    """A file that takes every free byte of a filesystem, until ``free()``."""

    def __init__(self, fs: Path):
        self.fs, self.path = fs, fs / "ballast"

    def fill(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for chunk in (65536, 4096, 512):
                while True:
                    try:
                        os.write(fd, b"\0" * chunk)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        assert os.statvfs(self.fs).f_bavail == 0, "the ballast did not fill the filesystem"

    def free(self) -> None:
        self.path.unlink()


def rec(i: int) -> bytes:
    return json.dumps({"n": i, "pad": "x" * 300}).encode()


def payloads(sp: Spool) -> list[bytes]:
    return [d for _, d in sp.after(0, 10**6)]


# ---- the spool alone ---------------------------------------------------------------------------

def test_a_full_disk_keeps_events_in_memory_until_space_returns(small_fs, caplog):
    ballast = Ballast(small_fs)
    sp = Spool(small_fs / "cam", retry_s=0)
    for i in range(20):
        sp.append(rec(i))
    ballast.fill()
    with caplog.at_level(logging.WARNING, logger="streamer.sinks.spool"):
        for i in range(20, 400):  # ~130 KB: more than any slack left in the WAL
            sp.append(rec(i))
        assert sp.memory_backlog > 0 and sp.write_error and "full" in sp.write_error
        assert "wait in memory" in caplog.text
        assert payloads(sp) == [rec(i) for i in range(400)]  # in order, memory ones included
        assert sp.ack(s for s, _ in sp.after(0, 10)) == 10  # acks while full are kept too
        assert payloads(sp) == [rec(i) for i in range(10, 400)]
        ballast.free()
        sp.sync()
        assert sp.memory_backlog == 0 and sp.write_error is None
        assert "moved from memory to disk" in caplog.text
    assert sp.dropped == 0
    sp.close()
    sp = Spool(small_fs / "cam")  # written once space returned: all of it survives a restart
    assert sp.recovered == 390 and payloads(sp) == [rec(i) for i in range(10, 400)]
    sp.close()


def test_the_memory_backlog_is_bounded_and_counted_never_silent(small_fs, caplog):
    ballast = Ballast(small_fs)
    sp = Spool(small_fs / "cam", memory_max_events=50, retry_s=0)
    ballast.fill()
    with caplog.at_level(logging.WARNING, logger="streamer.sinks.spool"):
        for i in range(300):
            sp.append(rec(i))
        on_disk = sp.on_disk
        assert sp.memory_backlog == 50
        assert sp.dropped == sp.memory_dropped == 300 - on_disk - 50 > 0
        assert "memory backlog full" in caplog.text
        # The oldest waiting in memory went first; what reached the disk and the newest stay.
        assert payloads(sp) == [rec(i) for i in range(on_disk)] + [rec(i) for i in range(250, 300)]
        sp.close()  # the disk is still full: what waits in memory is lost, and said so
    assert "50 event(s) lost" in caplog.text and sp.dropped == 300 - on_disk
    ballast.free()
    sp = Spool(small_fs / "cam")
    assert payloads(sp) == [rec(i) for i in range(on_disk)]
    sp.close()


# ---- the MQTT sink, a real broker, the JSONL sink beside it --------------------------------------

def jsonl_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def assert_all_parse(sub: Subscriber, topic: str) -> list[str]:
    ids = []
    for m in sub.on(topic):
        ev = json.loads(m.payload)  # a misaligned fragment would fail here
        assert ev["schema"] == "streamer.event/1" and isinstance(ev["id"], str), m.payload[:200]
        ids.append(ev["id"])
    return ids


def test_every_event_in_the_jsonl_reaches_the_broker_across_a_full_disk_and_restarts(
        small_fs, tmp_path):
    topic = "streamer/cam/events"
    ballast = Ballast(small_fs)
    broker = Broker(tmp_path / "broker")
    broker.start()
    sub = Subscriber(broker.port, [topic], client_id="diskfull-consumer", persistent=True)
    broker.save()  # the subscriber's session survives a broker kill
    events_file = tmp_path / "events.jsonl"  # on the normal disk
    cfg = make_cfg(broker.url, tmp_path, spool_dir=str(small_fs / "spool"))
    fast = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "flush_timeout_s": 0.5}

    def delivered(n: int, what: str) -> None:
        sub.wait(lambda s: len(set(s.event_ids(topic))) >= n, HANG_S, what)

    sink = MqttSink(cfg, "cam", **fast)
    sinks = SinkSet([JsonlSink(events_file), sink])
    em = Emitter(sinks)
    sink2 = None
    try:
        assert sink.wait_for(lambda s: s.connected, HANG_S)
        em.emit(30)
        assert sink.flush(HANG_S)

        ballast.fill()  # the spool's disk is full from here on
        em.emit(300)
        h = sink.health()
        assert h["memory_backlog"] > 0 and h["last_error"].startswith("spool:"), h
        assert sink.flush(HANG_S)  # the broker is up: sent from memory, acknowledged
        delivered(len(em.ids), "the events sent while the disk was full")

        broker.freeze()  # events go out, never acknowledged: in flight at the kill
        em.emit(20)
        assert sink.wait_for(lambda s: s.published >= len(em.ids), HANG_S)
        broker.kill()
        assert sink.wait_for(lambda s: not s.connected, HANG_S)
        em.emit(100)  # broker down, disk full: memory only
        assert sink.health()["memory_backlog"] > 0 and not sink.health()["connected"]

        broker.start()  # restarted while the disk is still full
        em.emit(20)
        assert sink.flush(HANG_S), sink.health()
        delivered(len(em.ids), "every event after the broker restart")

        broker.freeze()
        broker.kill()
        assert sink.wait_for(lambda s: not s.connected, HANG_S)
        em.emit(40)  # broker down, disk full: they wait in memory
        assert sink.health()["memory_backlog"] > 0
        ballast.free()
        # Written once space returns (the sender retries at least every 0.5 s), with no new event.
        wait_until(lambda: sink.health()["memory_backlog"] == 0, HANG_S, "the backlog written to disk")
        h = sink.health()
        assert h["backlog"] == 40 and not (h["last_error"] or "").startswith("spool:"), h
        em.emit(10)
        sinks.close()  # broker down: the 50 stay in the spool for the next run
        assert sink.health()["unsent"] == 50 and sink.dropped == 0

        broker.start()
        sink2 = MqttSink(cfg, "cam", **fast)  # the restart
        assert sink2.spool.recovered == 50
        sinks2 = SinkSet([JsonlSink(events_file), sink2])
        em2 = Emitter(sinks2)
        em2.emit(10)
        assert sink2.flush(HANG_S)
        delivered(len(em.ids) + len(em2.ids), "every event after the restart of the sink")
        sinks2.close()
        assert sink2.dropped == 0 and sink2.health()["unsent"] == 0
    finally:
        if sink2 is not None:
            sink2.close()
        sink.close()
        sub.close()
        broker.stop()

    got = assert_all_parse(sub, topic)
    written = jsonl_ids(events_file)
    assert written == em.ids + em2.ids  # the JSONL sink saw every event once, in order
    assert dedupe(got) == written  # every event in the JSONL reached the broker, in order


# ---- the real program --------------------------------------------------------------------------

def test_run_py_with_a_full_spool_disk_and_a_broker_down_loses_nothing(small_fs, tmp_path):
    """``run.py stream`` starts on a full disk with the broker down, the disk frees, SIGTERM;
    a second run with the broker up delivers everything both runs wrote to the JSONL file."""
    topic = "streamer/door/events"
    clip = str(video_path(CLIP))
    ballast = Ballast(small_fs)
    broker = Broker(tmp_path / "broker")  # not started: down during the first run
    config = {"camera": "door", "attributes": {"enabled": False},
              "counting": {"summary_interval_s": 0.5,  # a steady flow of events
                           "state_dir": str(tmp_path / "state")},
              "mqtt": {"enabled": True, "url": broker.url, "spool_dir": str(small_fs / "spool")}}
    ballast.fill()
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    run_a.mkdir()
    run_b.mkdir()
    sub = None
    a = StreamerProcess(run_a, clip, config, "--realtime", "--loop")
    try:
        wait_until(lambda: "wait in memory" in a.stderr() or a.proc.poll() is not None, 60,
                   "the spool to fall back to memory")
        a.wait_for("a few events", lambda e: len(e) >= 5, 60)
        ballast.free()
        wait_until(lambda: "moved from memory to disk" in a.stderr() or a.proc.poll() is not None,
                   HANG_S, "the memory backlog written once space returned")
        a.wait_for("more events", lambda e: len(e) >= 10, 60)
        a.signal_and_wait(signal.SIGTERM, HANG_S)
    finally:
        a.kill()
    assert a.proc.returncode == 0, a.stderr()[-3000:]
    assert "Traceback" not in a.stderr()
    ids_a = [e["id"] for e in a.events()]
    assert a.summary()["mqtt_unsent"] == len(ids_a) > 0  # all kept for the next run, none lost
    assert a.summary()["mqtt_dropped"] == 0
    assert f"mqtt_unsent: {len(ids_a)}" in a.stdout()

    broker.start()
    try:
        sub = Subscriber(broker.port, [topic], client_id="run-consumer", persistent=True)
        b = StreamerProcess(run_b, clip, config, "--realtime", "--loop")
        try:
            b.wait_for("new events", lambda e: len(e) >= 5, 60)
            sub.wait(lambda s: set(ids_a) <= set(s.event_ids(topic)), HANG_S, "the first run's events")
            b.signal_and_wait(signal.SIGTERM, HANG_S)
        finally:
            b.kill()
        assert b.proc.returncode == 0, b.stderr()[-3000:]
        ids_b = [e["id"] for e in b.events()]
        assert b.summary()["mqtt_unsent"] == 0 and "mqtt_unsent: 0" in b.stdout()
        assert b.summary()["mqtt_dropped"] == 0
        sub.wait(lambda s: set(ids_b) <= set(s.event_ids(topic)), HANG_S, "the second run's events")
        got = assert_all_parse(sub, topic)
        assert dedupe(got) == ids_a + ids_b
    finally:
        if sub is not None:
            sub.close()
        broker.stop()
