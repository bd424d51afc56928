"""MQTT sink: every event to a real broker, nothing lost while the broker is down.

Topics (``<prefix>`` = ``mqtt.topic_prefix``, ``<camera>`` = ``camera``):
- ``<prefix>/<camera>/events``     every event, the JSON of ``Event.to_dict()``, QoS ``mqtt.qos``;
- ``<prefix>/<camera>/counts``     retained: the latest counters (``streamer.counts/1``),
  republished whenever an event carries a changed ``counts`` object, and on every (re)connect;
- ``<prefix>/<camera>/available``  retained ``online`` on every connect; ``offline`` on a clean
  close, and as the last will when the process dies or the network drops (the broker sends it);
- with ``mqtt.discovery``: Home Assistant discovery configs on
  ``<discovery_prefix>/sensor/streamer_<camera>_<key>/config`` and sensor states on
  ``<prefix>/<camera>/state/<key>``, all retained (``streamer.sinks.ha_discovery``); the configs
  are republished on every connect and when Home Assistant announces itself
  (``<discovery_prefix>/status`` = ``online``).

Delivery: at-least-once with QoS 1 (the default). ``emit()`` appends the event to the on-disk
spool (``streamer.sinks.spool``; fsync policy ``mqtt.fsync``, see there) *before* anything is sent
and returns; a record leaves the spool only when the broker acknowledged it (PUBACK, seen in
``on_publish``). After a broker restart, a network drop or a crash of this process, the
unacknowledged records are sent again, in order, so a consumer may see an event twice and
must deduplicate on ``id`` (unique across restarts). Order: events are published in spool
order; after a reconnect, the ones that were in flight are re-sent (by paho, DUP flag) and no
newer event is published until they are all acknowledged, so order holds after dedupe.
QoS 0 gives no guarantee (a record is "acknowledged" once written to the socket); QoS 2 is
exactly-once per broker session only, so end to end it is still at-least-once.

Real-time: ``emit()`` never touches the network and never waits on the broker (only on the
spool's write, plus an fsync per event with ``fsync: always``). When the spool bound is
reached the oldest events are dropped; ``dropped`` counts them and the spool logs it. When the
spool's disk is full, events wait in memory (``memory_backlog``, bounded) and are still sent
from there; they are written to disk once space returns (see ``streamer.sinks.spool``).

Health: ``health()`` tells the link (connected, since when, the last error) and the backlog,
for ``/healthz``, ``/metrics`` and the end-of-run summary (via ``SinkSet.health()``).

Logs: a broker that stays away is reported once a minute (``cannot reach broker``), and
paho's own "Client is not connected" line on every reconnect attempt goes through the same
once-a-minute throttle.

Threads: paho's network thread (``loop_start``) owns the socket, keepalive and reconnects
(``reconnect_delay_set``: exponential backoff). A small sender thread in this module, woken by
a condition (emit, PUBACK, connect, disconnect, close; never polling), is the only caller of
``publish`` for events. Why not publish from paho's callbacks or from ``emit``: paho calls
``on_publish`` while holding its own message lock, so the decision "what to send next" cannot
be taken there without lock-order risk; reading records back from disk, fsync and compaction
must not delay paho's keepalives and PUBACK handling; and one thread that owns the in-flight
window (``window`` events at most) and the post-reconnect gate keeps the order rule simple.

Secrets: the password (config or URL) is passed to paho only. Our messages show the URL
redacted (``mqtt://***@host:1883``) and paho's own log lines go through a filter that masks
the password should it ever appear.

``close()`` waits up to ``flush_timeout_s`` (1 s) for the spool to drain while connected,
publishes ``offline``, disconnects, all within about 1.5 s even with a hung broker; whatever is
still unacknowledged stays in the spool for the next run.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Optional
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from streamer.config import MqttConfig
from streamer.errors import ConfigError
from streamer.sinks.basic import dumps
from streamer.sinks.ha_discovery import HaDiscovery
from streamer.media.sources import redact
from streamer.sinks.spool import Spool
from streamer.timefmt import iso_ms
from streamer.types import Event

log = logging.getLogger(__name__)

COUNTS_SCHEMA = "streamer.counts/1"


class _Redact(logging.Filter):
    """Masks a secret in every record that passes (paho's log lines, ours)."""

    def __init__(self, secret: Optional[str]):
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret:
            msg = record.getMessage()
            if self.secret in msg:
                record.msg, record.args = msg.replace(self.secret, "***"), None
        return True


def parse_url(url: str) -> tuple[bool, str, int, Optional[str], Optional[str]]:
    """``mqtt[s]://[user[:password]@]host[:port]`` -> (tls, host, port, user, password)."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        raise ConfigError(f"mqtt.url: not a valid URL: {redact(url)!r}") from None
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise ConfigError(f"mqtt.url: expected mqtt://host:port or mqtts://host:port, got {redact(url)!r}")
    if u.path not in ("", "/") or u.query or u.fragment:
        raise ConfigError(f"mqtt.url: expected no path or query, got {redact(url)!r} "
                          "(set the topic prefix with mqtt.topic_prefix)")
    tls = u.scheme == "mqtts"
    return (tls, u.hostname, port or (8883 if tls else 1883),
            unquote(u.username) if u.username else None, unquote(u.password) if u.password else None)


class MqttSink:
    """Sink protocol (``emit``/``close``) over MQTT with an on-disk spool. See module docstring.

    ``window`` bounds the events in flight (published, not yet acknowledged): larger keeps a
    high-latency link busier, smaller re-sends less after a reconnect. ``reconnect_min_s`` /
    ``reconnect_max_s`` bound paho's exponential reconnect backoff. ``client_factory`` builds
    the paho client (tests inject a fake to drive connects, drops and PUBACKs by hand).
    """

    name = "mqtt"

    def __init__(self, cfg: MqttConfig, camera: str, *, window: int = 32,
                 flush_timeout_s: float = 1.0, reconnect_min_s: float = 1.0,
                 reconnect_max_s: float = 30.0, spool_dir: Optional[str | Path] = None,
                 lines: Iterable[str] = (),
                 client_factory: Callable[..., paho.Client] = paho.Client):
        tls, host, port, url_user, url_pw = parse_url(cfg.url)
        prefix = cfg.topic_prefix.strip("/")
        if not prefix or any(c in prefix for c in "+#"):
            raise ConfigError(f"mqtt.topic_prefix: expected a topic without + or #, got {cfg.topic_prefix!r}")
        for key in ("ca_file", "cert_file", "key_file"):
            p = getattr(cfg, key)
            if p and not os.path.isfile(p):
                raise ConfigError(f"mqtt.{key}: file {p} does not exist")
        if (cfg.cert_file is None) != (cfg.key_file is None):
            raise ConfigError("mqtt.cert_file and mqtt.key_file: give both (client certificate) or neither")
        if (cfg.ca_file or cfg.cert_file) and not tls:
            raise ConfigError(f"mqtt.url: TLS files are set but the URL is not mqtts://: {redact(cfg.url)!r}")
        self.cfg = cfg
        self.camera = camera
        self.window = max(1, window)
        self.flush_timeout_s = flush_timeout_s
        self.url = redact(cfg.url)
        self.topic_events = f"{prefix}/{camera}/events"
        self.topic_counts = f"{prefix}/{camera}/counts"
        self.topic_available = f"{prefix}/{camera}/available"
        user = cfg.username or url_user
        password = cfg.password or url_pw
        self.spool = Spool(Path(spool_dir or cfg.spool_dir) / camera, cfg.spool_max_events, cfg.fsync)
        self._redact = _Redact(password)
        log.addFilter(self._redact)
        self._paho_log = logging.getLogger(__name__ + ".paho")
        self._paho_log.addFilter(self._redact)
        self._paho_log.addFilter(self._quiet_after_close)
        self._paho_log.addFilter(self._throttle_not_connected)

        self._cond = threading.Condition()
        self._acks: collections.deque[int] = collections.deque()  # mids from on_publish
        self._inflight: dict[int, int] = {}  # mid -> spool seq (sender thread only)
        self._cursor = 0  # highest seq handed to paho
        self._connected = False
        self._resync = False  # after a reconnect: wait for the old in-flight before new ones
        self._status_due = False  # publish online (+ counts) on the next chance
        self._counts: Optional[dict] = None
        self._counts_payload: Optional[bytes] = None
        self._counts_due = False
        self._stopping = False
        self._closed = False
        self._fail_logged_at = -1e9
        self._since = time.time()  # epoch of the last connected/disconnected change
        self._last_error: Optional[str] = None
        self.discovery: Optional[HaDiscovery] = None
        self._disc_due = False  # changed discovery configs/states to publish
        self._disc_all = False  # everything again (connect, Home Assistant restarted)
        if getattr(cfg, "discovery", False):
            self.discovery = HaDiscovery(getattr(cfg, "discovery_prefix", "homeassistant"),
                                         f"{prefix}/{camera}", camera, self.topic_available, lines)
        self.published = 0  # events handed to paho (re-sends by paho not counted)
        self.acked = 0
        self.connects = 0
        self.disconnects = 0
        self.connect_failures = 0  # refused, unreachable, TLS failures (logged once a minute)
        self.passes = 0  # sender loop passes completed (lets a test wait for the sender to settle)
        self.errors = 0

        client_id = cfg.client_id or f"streamer-{camera}"
        c = client_factory(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True,
                           protocol=paho.MQTTv311)
        c.enable_logger(self._paho_log)
        if user:
            c.username_pw_set(user, password)
        if tls:
            try:
                c.tls_set(ca_certs=cfg.ca_file, certfile=cfg.cert_file, keyfile=cfg.key_file)
            except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
                self._release()
                raise ConfigError(f"mqtt.ca_file/cert_file/key_file: cannot load the TLS files "
                                  f"({e})") from None
        c.will_set(self.topic_available, "offline", qos=cfg.qos, retain=True)
        # Our window plus room for the retained status messages: paho never queues an event.
        c.max_inflight_messages_set(self.window + 8)
        c.reconnect_delay_set(reconnect_min_s, reconnect_max_s)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        self._client = c
        self._sender = threading.Thread(target=self._run, name=f"mqtt-sender-{camera}", daemon=True)
        self._sender.start()
        c.connect_async(host, port, keepalive=cfg.keepalive_s)
        c.loop_start()
        log.info("mqtt: publishing to %s as %s, topics %s/%s/{events,counts,available}, "
                 "%d event(s) waiting in the spool", self.url, client_id, prefix, camera, len(self.spool))

    # ---- public ----------------------------------------------------------------------------
    @property
    def dropped(self) -> int:
        """Events dropped by the spool bound (oldest first), never silently: also logged."""
        return self.spool.dropped

    @property
    def pending(self) -> int:
        """Events written to the spool and not yet acknowledged by the broker."""
        return len(self.spool)

    @property
    def connected(self) -> bool:
        return self._connected

    def health(self) -> dict:
        """The link and the backlog, for /healthz, /metrics and the summary (also after close).

        ``backlog``: events in the spool's database not yet acknowledged; ``memory_backlog``:
        events waiting in memory because the spool's disk is not writable; ``unsent``: both;
        ``dropped``: events lost to the bounds (or to a disk still full at close);
        ``last_error``: the spool's write error while it persists, else the link's last error
        while disconnected, else None; ``since``: epoch seconds of the last connect/disconnect.
        """
        sp = self.spool
        err = f"spool: {sp.write_error}" if sp.write_error else (
            None if self._connected else self._last_error)
        return {"connected": self._connected, "backlog": sp.on_disk,
                "memory_backlog": sp.memory_backlog, "unsent": len(sp), "dropped": sp.dropped,
                "last_error": err, "since": self._since}

    def emit(self, event: Event) -> None:
        """Spool the event and wake the sender; never blocks on the network."""
        if self._closed:
            raise RuntimeError("mqtt sink is closed")
        self.spool.append(dumps(event).encode("utf-8"))
        counts = event.payload.get("counts")
        with self._cond:
            if isinstance(counts, dict) and counts != self._counts:
                self._counts = counts
                self._counts_payload = json.dumps(
                    {"schema": COUNTS_SCHEMA, "camera": self.camera, "ts": iso_ms(event.ts),
                     "event_id": event.id, **counts}, separators=(",", ":")).encode("utf-8")
                self._counts_due = True
            if self.discovery is not None and self.discovery.observe(event):
                self._disc_due = True
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds (re-checked on every state change) or timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def flush(self, timeout: float) -> bool:
        """Wait until every spooled event is acknowledged; False on timeout."""
        return self.wait_for(lambda s: len(s.spool) == 0, timeout)

    def close(self) -> None:
        if self._closed:
            return
        deadline = time.monotonic() + self.flush_timeout_s
        # Flush only while connected: with the broker away, waiting cannot send anything.
        self.wait_for(lambda s: len(s.spool) == 0 or not s._connected, self.flush_timeout_s)
        self._closed = True
        if self._connected:
            try:
                info = self._client.publish(self.topic_available, "offline", qos=self.cfg.qos, retain=True)
                info.wait_for_publish(max(0.05, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as e:
                log.warning("mqtt: could not publish offline: %s", e)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._sender.join(0.5)
        self._client.disconnect()
        # loop_stop() joins paho's thread without a timeout (and paho sleeps up to 1 s between
        # reconnect attempts); never let close() hang on it: the thread is a daemon.
        stopper = threading.Thread(target=self._client.loop_stop, daemon=True)
        stopper.start()
        stopper.join(0.5)
        self._apply_acks()
        left = len(self.spool)
        self._release()
        if left:
            log.warning("mqtt: %d event(s) not acknowledged by %s stay in the spool for the next run",
                        left, self.url)
        if self.dropped:
            log.warning("mqtt: %d event(s) were dropped by the spool bound (%d) this run",
                        self.dropped, self.spool.max_events)

    def _release(self) -> None:
        try:
            self.spool.close()
        finally:
            log.removeFilter(self._redact)
            self._paho_log.removeFilter(self._redact)
            self._paho_log.removeFilter(self._quiet_after_close)
            self._paho_log.removeFilter(self._throttle_not_connected)

    def _throttle_not_connected(self, record: logging.LogRecord) -> bool:
        # paho logs "Client is not connected" at ERROR on every reconnect attempt; it says what
        # our throttled "cannot reach broker" line says, so it shares its once-a-minute budget.
        msg = record.getMessage()
        if msg.startswith(("failed to receive on socket", "failed to send on socket")):
            # The broker went away: handled (spooled, reconnecting), so a warning, not an error.
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        if not msg.startswith("Client is not connected"):
            return True
        now = time.monotonic()
        if now - self._fail_logged_at < 60:
            return False
        self._fail_logged_at = now
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = (f"mqtt: not connected to {self.url} ({msg}); retrying with backoff, "
                                   "logged once a minute"), None
        return True

    def _quiet_after_close(self, record: logging.LogRecord) -> bool:
        # paho 2.2 logs an ERROR when its loop notices our own clean disconnect; not an error.
        return not (self._closed and record.getMessage().startswith("Client is not connected"))

    # ---- paho callbacks (paho's network thread: no disk, no blocking) -----------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._log_fail(f"broker {self.url} refused the connection: {reason_code}")
            return
        with self._cond:
            self._connected = True
            self._status_due = True
            self._counts_due = self._counts_payload is not None
            self._disc_due = self._disc_all = self.discovery is not None
            self.connects += 1
            self._since = time.time()
            self._last_error = None
            self._cond.notify_all()
        if self.discovery is not None:  # Home Assistant's birth message: republish the configs
            client.subscribe(f"{self.discovery.prefix}/status", qos=1)
        log.info("mqtt: connected to %s%s", self.url, f" (reconnect {self.connects - 1})"
                 if self.connects > 1 else "")

    def _on_connect_fail(self, client, userdata) -> None:
        self._log_fail(f"cannot reach broker {self.url}; retrying with backoff")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._cond:
            was = self._connected
            self._connected = False
            self._resync = True
            if was:
                self.disconnects += 1
                self._since = time.time()
                self._last_error = f"connection to {self.url} lost ({reason_code})"
            self._cond.notify_all()
        if self._closed:
            return
        if was:
            log.warning("mqtt: connection to %s lost (%s); %d event(s) spooled, reconnecting",
                        self.url, reason_code, len(self.spool))
        else:  # TLS refused after the TCP connect, or CONNACK never came
            self._log_fail(f"connection to {self.url} closed before it was accepted ({reason_code}); "
                           "retrying with backoff")

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # Called with paho's message lock held: only hand the mid over.
        self._acks.append(mid)
        with self._cond:
            self._cond.notify_all()

    def _on_message(self, client, userdata, msg) -> None:
        if self.discovery is not None and msg.topic == f"{self.discovery.prefix}/status" \
                and msg.payload == b"online":
            with self._cond:
                self._disc_due = self._disc_all = True
                self._cond.notify_all()

    def _log_fail(self, msg: str) -> None:
        self._last_error = msg
        now = time.monotonic()
        if now - self._fail_logged_at >= 60:
            self._fail_logged_at = now
            log.warning("mqtt: %s (%d event(s) spooled)", msg, len(self.spool))
        with self._cond:
            self.connect_failures += 1
            self._cond.notify_all()

    # ---- sender thread ---------------------------------------------------------------------
    def _can_send(self) -> bool:
        if not self._connected:
            return False
        if self._status_due or self._counts_due or self._disc_due:
            return True
        if self._resync and self._inflight:
            return False
        return len(self._inflight) < self.window and self.spool.last_seq > self._cursor

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or bool(self._acks) or self._can_send(),
                                    self.spool.batch_interval_s)
                if self._stopping:
                    return
            try:
                self._apply_acks()
                self._send()
                self.spool.sync()
                self.spool.maybe_compact()
                with self._cond:
                    self.passes += 1
                    self._cond.notify_all()
            except Exception:  # the sender must outlive any surprise; the spool keeps the data
                self.errors += 1
                log.exception("mqtt sender error (%d so far); retrying", self.errors)
                with self._cond:
                    self._cond.wait(1.0)

    def _apply_acks(self) -> None:
        seqs = []
        while self._acks:
            seq = self._inflight.pop(self._acks.popleft(), None)
            if seq is not None:
                seqs.append(seq)
        if seqs:
            self.acked += self.spool.ack(seqs)
        with self._cond:
            if not self._inflight:
                self._resync = False
            self._cond.notify_all()

    def _send(self) -> None:
        c, qos = self._client, self.cfg.qos
        with self._cond:
            status, counts = self._status_due, (self._counts_payload if self._counts_due else None)
            self._status_due = self._counts_due = False
            disc = self.discovery.take(self._disc_all) if self._disc_due else []
            self._disc_due = self._disc_all = False
        if status:
            c.publish(self.topic_available, "online", qos=qos, retain=True)
        if counts is not None:
            c.publish(self.topic_counts, counts, qos=qos, retain=True)
        for topic, payload in disc:  # configs first, then states (HaDiscovery.take's order)
            c.publish(topic, payload, qos=qos, retain=True)
        if self._resync and self._inflight:
            return
        room = self.window - len(self._inflight)
        if room <= 0 or not self._connected:
            return
        for seq, data in self.spool.after(self._cursor, room):
            info = c.publish(self.topic_events, data, qos=qos)
            if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
                log.warning("mqtt: publish refused by the client (%s); will retry",
                            paho.error_string(info.rc))
                break
            # NO_CONN: paho keeps the message and sends it after the reconnect, in order.
            self._inflight[info.mid] = seq
            self._cursor = seq
            self.published += 1

