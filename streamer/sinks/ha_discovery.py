"""Home Assistant MQTT discovery for one camera: sensor configs and their states (pure, no I/O).

With ``mqtt.discovery: true`` the MQTT sink publishes, retained, one config message per sensor
on ``<discovery_prefix>/sensor/streamer_<camera>_<key>/config`` and each sensor's state on
``<topic_prefix>/<camera>/state/<key>`` (retained, published when it changes):

| key | state | from |
| --- | --- | --- |
| ``people_now`` | people tracked now | ``start`` / ``end`` events (live track ids) |
| ``in_today_<line>`` / ``out_today_<line>`` | crossings since the counting reset | the ``counts`` object of ``cross`` and ``summary`` events |
| ``last_gender`` | ``male`` / ``female`` | the newest person event with a judged gender |
| ``last_age`` | years (integer) | the newest person event with a judged age |

"Today" is the counting period (``counting.reset``, daily at midnight by default), so the in/out
sensors are ``total_increasing``: Home Assistant reads the drop at a reset as a new cycle.
Availability is the sink's retained ``<topic_prefix>/<camera>/available`` (``online`` /
``offline``, also the last will). A line first seen in a ``counts`` object gets its two configs
then. Names in topics and ids keep ``[A-Za-z0-9_-]`` only (anything else becomes ``_``).

Not thread-safe: the sink calls it under its own lock (events from the event thread, ``take``
from its sender thread).
"""

from __future__ import annotations

import json
import re
from typing import Iterable, Optional

from streamer.types import Event

_PERSON = ("start", "update", "end", "cross", "zone_enter", "zone_exit")


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "_"


class HaDiscovery:
    def __init__(self, discovery_prefix: str, topic_base: str, camera: str, available_topic: str,
                 lines: Iterable[str] = ()):
        self.prefix = discovery_prefix.strip("/")
        self.base = topic_base
        self.camera = camera
        self.node = f"streamer_{slug(camera)}"
        self.available_topic = available_topic
        self._sensors: dict[str, dict] = {}  # key -> config payload (insertion = publish order)
        self._line_keys: dict[str, str] = {}  # line name -> slug, unique per camera
        self._states: dict[str, str] = {}
        self._sent_states: dict[str, str] = {}
        self._new_configs: list[str] = []
        self._live: set[int] = set()
        self._add("people_now", "People now", icon="mdi:account-multiple", unit="people",
                  state_class="measurement")
        self._add("last_gender", "Last person's gender", icon="mdi:gender-male-female")
        self._add("last_age", "Last person's age", icon="mdi:account-clock", unit="years",
                  state_class="measurement")
        self._states["people_now"] = "0"
        for line in lines:
            self._line(line)

    # ---- configs -----------------------------------------------------------------------------
    def config_topic(self, key: str) -> str:
        return f"{self.prefix}/sensor/{self.node}_{key}/config"

    def state_topic(self, key: str) -> str:
        return f"{self.base}/state/{key}"

    def _add(self, key: str, name: str, *, icon: str, unit: Optional[str] = None,
             state_class: Optional[str] = None) -> None:
        cfg = {
            "name": name,
            "unique_id": f"{self.node}_{key}",
            "object_id": f"{self.node}_{key}",
            "state_topic": self.state_topic(key),
            "availability": [{"topic": self.available_topic, "payload_available": "online",
                              "payload_not_available": "offline"}],
            "device": {"identifiers": [self.node], "name": f"Streamer {self.camera}",
                       "manufacturer": "streamer", "model": "face analytics stream"},
            "origin": {"name": "streamer"},
            "icon": icon,
        }
        if unit:
            cfg["unit_of_measurement"] = unit
        if state_class:
            cfg["state_class"] = state_class
        self._sensors[key] = cfg
        self._new_configs.append(key)

    def _line(self, line: str) -> str:
        key = self._line_keys.get(line)
        if key is None:
            key = base = slug(line)
            n = 1
            while key in self._line_keys.values():
                n += 1
                key = f"{base}_{n}"
            self._line_keys[line] = key
            for d, word in (("in", "In"), ("out", "Out")):
                self._add(f"{d}_today_{key}", f"{word} today ({line})", icon="mdi:door",
                          unit="people", state_class="total_increasing")
        return key

    # ---- states ------------------------------------------------------------------------------
    def observe(self, event: Event) -> bool:
        """Update the states from one event; True when a state or the set of sensors changed."""
        p = event.payload
        before = (dict(self._states), len(self._new_configs))
        tid = p.get("track_id")
        if event.type == "start" and isinstance(tid, int):
            self._live.add(tid)
        elif event.type == "end":
            self._live.discard(tid)
        self._states["people_now"] = str(len(self._live))
        if event.type in _PERSON:
            g, a = p.get("gender"), p.get("age")
            if isinstance(g, dict) and g.get("label"):
                self._states["last_gender"] = str(g["label"])
            if isinstance(a, dict) and isinstance(a.get("years"), (int, float)):
                self._states["last_age"] = str(round(a["years"]))
        counts = p.get("counts")
        if isinstance(counts, dict) and isinstance(counts.get("lines"), dict):
            for line, c in counts["lines"].items():
                if isinstance(c, dict):
                    key = self._line(str(line))
                    for d in ("in", "out"):
                        if isinstance(c.get(d), int):
                            self._states[f"{d}_today_{key}"] = str(c[d])
        return (self._states, len(self._new_configs)) != before

    def take(self, everything: bool = False) -> list[tuple[str, bytes]]:
        """Retained messages to publish now, configs before states: the new (or, with
        ``everything``, all) configs and the states that changed since the last take."""
        keys = list(self._sensors) if everything else self._new_configs
        out = [(self.config_topic(k), json.dumps(self._sensors[k], separators=(",", ":")).encode())
               for k in keys]
        self._new_configs = []
        for k, v in self._states.items():
            if everything or self._sent_states.get(k) != v:
                out.append((self.state_topic(k), v.encode()))
        self._sent_states = dict(self._states)
        return out
