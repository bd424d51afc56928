#!/usr/bin/env python3
"""Live table across cameras from MQTT: an example consumer of the streamer topics.

    python scripts/mqtt_table.py --url mqtt://broker:1883 [--prefix streamer]

Subscribes (QoS 1) to ``<prefix>/+/events``, ``<prefix>/+/counts`` (retained: the current
counters, so a newcomer sees numbers at once) and ``<prefix>/+/available``, and prints one row
per camera plus a total row, refreshed every ``--refresh`` seconds.

How it aggregates, and why this is safe with at-least-once delivery:
- events are deduplicated by ``id`` (a bounded memory of recent ids): a re-sent event is
  ignored;
- ``summary`` events are cumulative since the camera's last reset (``period_start``), so the
  consumer keeps only the newest summary per camera (largest ``ts``) and sums those across
  cameras. A duplicate or a late, older summary can therefore never double-count;
- between summaries the line totals come from the retained ``counts`` topic, which every
  ``cross`` refreshes.

``--duration N`` exits after N seconds, ``--plain`` prints without clearing the screen and
``--json`` prints one JSON object (rows, total, duplicates) per refresh (scripts, tests).
The password may come from ``--password``, the URL, or ``$MQTT_PASSWORD``; it is never printed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import threading
import time
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion



class Table:
    """Aggregation state; ``add``/``render`` are pure, the MQTT callbacks feed them."""

    def __init__(self, max_ids: int = 100_000):
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.max_ids = max_ids
        self.duplicates = 0
        self.summary: dict[str, dict] = {}  # camera -> newest summary event
        self.counts: dict[str, dict] = {}  # camera -> retained counts
        self.available: dict[str, str] = {}
        self.events: collections.Counter = collections.Counter()  # camera -> unique events

    def seen(self, event_id: str) -> bool:
        if event_id in self._ids:
            self.duplicates += 1
            return True
        self._ids[event_id] = None
        if len(self._ids) > self.max_ids:
            self._ids.popitem(last=False)
        return False

    def add(self, topic_kind: str, camera: str, payload: bytes) -> None:
        if topic_kind == "available":
            self.available[camera] = payload.decode("utf-8", "replace")
            return
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        if topic_kind == "counts":
            self.counts[camera] = msg
            return
        if self.seen(msg.get("id", "")):
            return
        self.events[camera] += 1
        if msg.get("type") == "summary":
            old = self.summary.get(camera)
            if old is None or msg["ts"] >= old["ts"]:  # ISO UTC strings sort by time
                self.summary[camera] = msg

    def rows(self) -> list[dict]:
        out = []
        for cam in sorted(set(self.summary) | set(self.counts) | set(self.available)):
            s, c = self.summary.get(cam, {}), self.counts.get(cam, {})
            lines = c.get("lines") or {k: {"in": v["in"], "out": v["out"]}
                                       for k, v in (s.get("lines") or {}).items()}
            gender = collections.Counter()
            for v in (s.get("lines") or {}).values():
                for d in ("in", "out"):
                    for label, n in v.get("by_gender", {}).get(d, {}).items():
                        gender[f"{d}_{label}"] += n
            out.append({
                "camera": cam, "status": self.available.get(cam, "?"),
                "in": sum(v["in"] for v in lines.values()), "out": sum(v["out"] for v in lines.values()),
                "people": c.get("people", s.get("people", 0)),
                "inside": sum((c.get("zones") or {}).values()),
                "in_f": gender["in_female"], "in_m": gender["in_male"], "in_u": gender["in_unknown"],
                "since": (s.get("period_start") or c.get("period_start") or "")[:16],
                "summary": (s.get("ts") or "")[11:19], "events": self.events[cam],
            })
        return out

    COLS = ["camera", "status", "in", "out", "people", "inside", "in_f", "in_m", "in_u", "since",
            "summary", "events"]

    def totals(self, rows: list[dict]) -> dict:
        return {k: sum(r[k] for r in rows) for k in self.COLS if rows and isinstance(rows[0][k], int)}

    def render_json(self) -> str:
        rows = self.rows()
        return json.dumps({"rows": rows, "total": self.totals(rows), "duplicates": self.duplicates})

    def render(self) -> str:
        rows = self.rows()
        cols = self.COLS
        total = self.totals(rows)
        table = [cols] + [[str(r[k]) for k in cols] for r in rows]
        table.append(["TOTAL", ""] + [str(total.get(k, "")) for k in cols[2:]])
        widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in table]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"(duplicates ignored: {self.duplicates})")
        return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="mqtt://127.0.0.1:1883")
    ap.add_argument("--prefix", default="streamer")
    ap.add_argument("--username")
    ap.add_argument("--password")
    ap.add_argument("--ca-file")
    ap.add_argument("--refresh", type=float, default=2.0)
    ap.add_argument("--duration", type=float, default=0.0, help="exit after this many seconds (0 = never)")
    ap.add_argument("--plain", action="store_true", help="do not clear the screen between tables")
    ap.add_argument("--json", action="store_true", help="print one JSON object per refresh instead")
    a = ap.parse_args(argv)

    u = urlsplit(a.url)
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        print("error: --url expects mqtt://host:port or mqtts://host:port", file=sys.stderr)
        return 2
    user = a.username or (unquote(u.username) if u.username else None)
    password = a.password or (unquote(u.password) if u.password else None) or os.environ.get("MQTT_PASSWORD")
    prefix = a.prefix.strip("/")

    table, lock, stop = Table(), threading.Lock(), threading.Event()

    def on_connect(c, userdata, flags, rc, props):
        if rc.is_failure:
            print(f"broker refused the connection: {rc}", file=sys.stderr)
            return
        c.subscribe([(f"{prefix}/+/events", 1), (f"{prefix}/+/counts", 1), (f"{prefix}/+/available", 1)])

    def on_subscribe(c, userdata, mid, reason_codes, props):
        print(f"subscribed to {prefix}/+/events, counts, available on {u.hostname}", file=sys.stderr,
              flush=True)

    def on_message(c, userdata, msg):
        parts = msg.topic.split("/")
        with lock:
            table.add(parts[-1], parts[-2], msg.payload)

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"mqtt-table-{os.getpid()}")
    if user:
        c.username_pw_set(user, password)
    if u.scheme == "mqtts":
        c.tls_set(ca_certs=a.ca_file)
    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    c.reconnect_delay_set(1, 30)
    c.connect_async(u.hostname, u.port or (8883 if u.scheme == "mqtts" else 1883), keepalive=30)
    c.loop_start()
    deadline = time.monotonic() + a.duration if a.duration > 0 else None
    try:
        while not stop.is_set():
            wait = a.refresh if deadline is None else min(a.refresh, max(0.0, deadline - time.monotonic()))
            stop.wait(wait)
            with lock:
                text = table.render_json() if a.json else table.render()
            print(text if a.plain or a.json else "\x1b[2J\x1b[H" + text, flush=True)
            if deadline is not None and time.monotonic() >= deadline:
                break
    except KeyboardInterrupt:
        pass
    finally:
        c.disconnect()
        c.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
