"""The camera -> site channel (``runtime.site_channel.Outbox``) over a real socketpair: a site
that does not read never blocks the camera; pictures and heartbeats are latest-only; events
arrive complete and in order while they fit, and any overflow is counted, never silent."""

from __future__ import annotations

import socket
import threading
from multiprocessing.connection import Connection

from streamer.runtime.site_channel import Outbox


def _pair():
    a, b = socket.socketpair()
    return Connection(a.detach()), Connection(b.detach())


def _drain(conn, until_evs: int, timeout: float = 20.0) -> list:
    msgs, n = [], 0
    while n < until_evs and conn.poll(timeout):
        m = conn.recv()
        msgs.append(m)
        if m[0] == "evs":
            n += len(m[1])
    return msgs


def test_unread_channel_never_blocks_and_counts_overflow():
    child, parent = _pair()
    box = Outbox(child, max_events=5000)

    def produce():
        for i in range(200):
            box.snapshot(b"\xff\xd8" + bytes(50_000) + b"\xff\xd9")  # fills the socket quickly
            box.heartbeat({"n": i})
        for i in range(20_000):
            box.event({"id": f"e-{i}"})

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "a producer blocked on a site that does not read"
    assert box.events_lost > 0
    msgs = _drain(parent, 20_000 - box.events_lost)
    evs = [e for m in msgs if m[0] == "evs" for e, _ in m[1]]
    ids = [int(e["id"].split("-")[1]) for e in evs]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # in order, no duplicates
    assert len(evs) + box.events_lost == 20_000  # every event either delivered or counted
    assert ids[-1] == 19_999  # the newest kept: the oldest were the ones dropped
    jpgs = [m for m in msgs if m[0] == "jpg"]
    hbs = [m for m in msgs if m[0] == "hb"]
    assert len(jpgs) < 200 and len(hbs) < 200  # latest-only slots coalesced
    box.close(2)


def test_events_before_control_and_all_flushed_at_close():
    child, parent = _pair()
    box = Outbox(child)
    for i in range(1000):
        box.event({"id": str(i)}, b"crop" if i == 7 else None)
    box.control(("bye", {"frames": 1}))
    assert box.close(5)
    msgs = _drain(parent, 1000)
    while parent.poll(1):
        msgs.append(parent.recv())
    evs = [e for m in msgs if m[0] == "evs" for e in m[1]]
    assert [e["id"] for e, _ in evs] == [str(i) for i in range(1000)]
    assert dict((e["id"], c) for e, c in evs)["7"] == b"crop"
    assert msgs[-1] == ("bye", {"frames": 1})
    assert box.events_lost == 0
