"""Camera processes of a site: start, watch, restart with backoff, stop.

Why a subprocess per camera (``python -m streamer.runtime.site_camera``) and not
``multiprocessing``: the site process has threads (web server, store writer, this supervisor),
so ``fork`` is unsafe; ``spawn`` and ``forkserver`` would work but add helper processes of their
own (the resource tracker, the fork server) that must also be cleaned up and that hide the
camera's real pid. A plain ``subprocess.Popen`` gives one fresh interpreter per camera (a crash,
a leak or a hang in one never touches another, and each uses a core without a GIL in the way),
the camera's real pid for ``/api/cameras`` and signals, its stderr for our log, and a socketpair
(passed as an fd) as the channel. Each child is in its own session, so a terminal's Ctrl-C
reaches only the site, which stops the cameras in order; a child whose site dies sees its
socket close and stops itself.

States (``site_view.CAMERA_STATES``):

    starting --hello--> running --exit/crash/hang--> restarting --backoff--> starting
        |                                                                       ^
        +--fails before hello (bad source, ...)--> down --backoff (capped)------+

A camera that never reached ``running`` stays ``down`` with its one-line reason through its
retries (it is not up, whatever we try); a camera whose source ends (a file without ``loop``)
is ``down`` with "source ended" and is not restarted. ``restarts`` counts every restart after
a failure (exit, crash, hang, failed start); planned restarts (new config) are not failures
and are not counted. The backoff starts at ``backoff_initial_s``, doubles per consecutive
failure up to ``backoff_max_s``, and resets once a camera has run ``stable_s``.
A running camera whose heartbeats stop for ``hang_s`` is killed (SIGKILL) and restarted; one
that does not say hello within ``start_timeout_s`` likewise.

``stop()``: SIGTERM to every camera, SIGKILL to those still alive after ``term_grace_s``, all
within ``STOP_BUDGET_S`` (3 s); no process is left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Callable, Optional

from streamer.media.sources import redact
from streamer.runtime.site_camera import EXIT_ENDED, EXIT_START_FAILED
from streamer.runtime.site_view import CameraStatus

log = logging.getLogger("streamer.site")
ROOT = Path(__file__).resolve().parents[2]
STOP_BUDGET_S = 3.0
_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
           "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}


@dataclass
class Policy:
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    stable_s: float = 60.0  # running this long resets the backoff
    hang_s: float = 15.0  # no heartbeat this long while running = hung
    start_timeout_s: float = 60.0  # no hello this long after spawn = hung at start
    term_grace_s: float = 2.3  # SIGTERM -> SIGKILL at stop
    snapshot_idle_fps: float = 1.0
    snapshot_watch_fps: float = 5.0
    keep_crops: bool = False


@dataclass
class Slot:
    """One camera as the supervisor tracks it (guarded by ``Supervisor._lock``)."""

    name: str
    cfg: object
    state: str = "starting"
    reason: Optional[str] = None
    proc: Optional[subprocess.Popen] = None
    conn: Optional[Connection] = None
    restarts: int = 0
    failures: int = 0  # consecutive, for the backoff
    next_start: Optional[float] = 0.0  # monotonic; None = not scheduled
    spawned_at: float = 0.0
    running_since: Optional[float] = None
    last_hb: float = 0.0
    hb: dict = field(default_factory=dict)
    hb_mono: float = 0.0
    size: Optional[list] = None
    snapshot: Optional[bytes] = None
    fatal: Optional[str] = None
    kill_reason: Optional[str] = None
    planned: Optional[str] = None  # reason of a planned restart in progress
    last_stderr: str = ""
    stopping: bool = False
    want_sent: float = -1e9


def describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exited with code {rc}"


class Supervisor:
    """Runs the cameras ``{name: Config}``; ``on_events(name, [(event, crop)])`` receives every
    event (from the reader thread; it must not block for long)."""

    TICK_S = 0.1

    def __init__(self, cameras: dict, on_events: Callable[[str, list], None],
                 policy: Policy = Policy(), python: str = sys.executable):
        self.policy = policy
        self.python = python
        self.on_events = on_events
        self._slots = {name: Slot(name, cfg) for name, cfg in cameras.items()}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._read_deadline = float("inf")
        self._send_lock = threading.Lock()
        self._io_threads: list[threading.Thread] = []

    # ---- public ------------------------------------------------------------------------------
    def start(self) -> None:
        for target, name in ((self._supervise, "supervisor"), (self._read, "site-reader")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def names(self) -> list[str]:
        return list(self._slots)

    def config(self, name: str):
        return self._slots[name].cfg

    def status(self, name: str) -> CameraStatus:
        with self._lock:
            s = self._slots[name]
            hb = s.hb if s.state == "running" else {}
            age = hb.get("last_frame_age_s")
            if age is not None:
                age = round(age + (time.monotonic() - s.hb_mono), 3)
            return CameraStatus(
                name=s.name, status=s.state, pid=s.proc.pid if s.proc and s.proc.poll() is None else None,
                fps=float(hb.get("fps") or 0.0), restarts=s.restarts,
                source=redact(s.cfg.source.uri), last_frame_age_s=age,
                source_connected=bool(hb.get("source_up")) and s.state == "running",
                reason=s.reason, counts=dict(hb.get("counts") or {}),
                stats=dict(hb.get("stats") or {}), mqtt=hb.get("mqtt"))

    def snapshot(self, name: str) -> Optional[bytes]:
        s = self._slots[name]
        now = time.monotonic()
        if now - s.want_sent > 1.0:  # the MJPEG route polls often: tell the camera once a second
            s.want_sent = now
            self._send(s, ("want", 3.0))
        return s.snapshot

    def size(self, name: str) -> Optional[list]:
        return self._slots[name].size

    def restart(self, name: str, cfg, reason: str = "config changed") -> None:
        """Planned restart with a new config (not counted in ``restarts``)."""
        with self._lock:
            s = self._slots[name]
            s.cfg = cfg
            s.planned = reason
            s.failures = 0
            if s.proc is not None and s.proc.poll() is None:
                self._signal(s, signal.SIGTERM)
            else:
                s.next_start = 0.0
        log.info("camera %s: restarting (%s)", name, reason)

    def stop(self) -> None:
        """Stop every camera within STOP_BUDGET_S; no process is left behind."""
        t0 = time.monotonic()
        self._read_deadline = t0 + STOP_BUDGET_S - 0.2
        self._stop.set()
        with self._lock:
            procs = [(s, s.proc) for s in self._slots.values() if s.proc is not None]
            for s, _ in procs:
                s.stopping = True
                self._signal(s, signal.SIGTERM)
        deadline = t0 + self.policy.term_grace_s
        for s, p in procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for s, p in procs:
            if p.poll() is None:
                log.warning("camera %s: no exit %.1f s after SIGTERM: SIGKILL", s.name,
                            self.policy.term_grace_s)
                self._signal(s, signal.SIGKILL)
        for s, p in procs:
            try:
                p.wait(max(0.05, t0 + STOP_BUDGET_S - 0.1 - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("camera %s (pid %d) did not die", s.name, p.pid)
        for t in self._threads + self._io_threads:
            t.join(max(0.0, t0 + STOP_BUDGET_S - time.monotonic()))
        with self._lock:
            for s in self._slots.values():
                if s.conn is not None:
                    s.conn.close()
                    s.conn = None
                if s.state != "down":
                    s.state, s.reason = "down", "site stopped"

    # ---- spawning ----------------------------------------------------------------------------
    def _spawn(self, s: Slot) -> None:
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        try:
            proc = subprocess.Popen(
                [self.python, "-m", "streamer.runtime.site_camera", "--fd", str(child_sock.fileno()),
                 "--name", s.name],
                pass_fds=(child_sock.fileno(),), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=env, start_new_session=True)
        except OSError as e:
            parent_sock.close()
            child_sock.close()
            self._failed(s, f"cannot start a process: {e}", ran=False)
            return
        child_sock.close()
        conn = Connection(parent_sock.detach())
        pol = self.policy
        conn.send(("cfg", s.cfg, {"keep_crops": pol.keep_crops,
                                  "snapshot_idle_fps": pol.snapshot_idle_fps,
                                  "snapshot_watch_fps": pol.snapshot_watch_fps}))
        s.proc, s.conn = proc, conn
        s.spawned_at = time.monotonic()
        s.running_since, s.fatal, s.kill_reason, s.last_stderr = None, None, None, ""
        s.next_start = None
        if s.state != "down":
            s.state = "starting"
        log.info("camera %s: starting (pid %d, source %s)", s.name, proc.pid, redact(s.cfg.source.uri))
        t = threading.Thread(target=self._pump_stderr, args=(s, proc), name=f"stderr-{s.name}",
                             daemon=True)
        t.start()
        self._io_threads = [x for x in self._io_threads if x.is_alive()] + [t]

    def _pump_stderr(self, s: Slot, proc: subprocess.Popen) -> None:
        """Each child stderr line into our log, prefixed with the camera (credentials redacted)."""
        clog = logging.getLogger(f"streamer.camera.{s.name}")
        for raw in iter(lambda: proc.stderr.readline(8192), b""):  # bounded lines
            line = redact(raw.decode("utf-8", "replace").rstrip())
            if not line:
                continue
            s.last_stderr = line
            level, _, rest = line.partition(" ")
            clog.log(_LEVELS.get(level, logging.INFO), "%s", rest if level in _LEVELS else line)
        proc.stderr.close()

    # ---- the supervisor loop -----------------------------------------------------------------
    def _supervise(self) -> None:
        while not self._stop.wait(self.TICK_S):
            now = time.monotonic()
            with self._lock:
                for s in self._slots.values():
                    try:
                        self._check(s, now)
                    except Exception:  # logged; the next tick tries again
                        log.exception("camera %s: supervising failed", s.name)

    def _read(self) -> None:
        while True:  # the reader must not die: without it no camera would ever be heard
            try:
                self._read_loop()
                return
            except Exception:
                log.exception("site reader failed; resuming")
                time.sleep(0.1)

    def _check(self, s: Slot, now: float) -> None:
        if self._stop.is_set():
            return
        p = s.proc
        if p is not None:
            rc = p.poll()
            if rc is not None:
                self._exited(s, rc)
            elif s.kill_reason is None:
                if s.state == "running" and now - s.last_hb > self.policy.hang_s:
                    self._kill(s, f"hung: no heartbeat for {self.policy.hang_s:g} s")
                elif s.running_since is None and now - s.spawned_at > self.policy.start_timeout_s:
                    self._kill(s, f"hung at start: not up after {self.policy.start_timeout_s:g} s")
            return
        if s.next_start is not None and now >= s.next_start:
            self._spawn(s)

    def _kill(self, s: Slot, reason: str) -> None:
        log.warning("camera %s: %s; killing pid %d", s.name, reason, s.proc.pid)
        s.kill_reason = reason
        self._signal(s, signal.SIGKILL)

    def _exited(self, s: Slot, rc: int) -> None:
        ran = s.running_since is not None
        ran_for = time.monotonic() - s.running_since if ran else 0.0
        reason = s.fatal or s.kill_reason or describe_exit(rc)
        if not s.fatal and rc not in (0, EXIT_START_FAILED) and not s.kill_reason and s.last_stderr:
            reason = f"{reason}: {s.last_stderr}"[:300]
        pid = s.proc.pid
        s.proc = None
        if s.conn is not None:
            s.conn.close()
            s.conn = None
        if s.planned:
            log.info("camera %s: pid %d stopped for a planned restart (%s)", s.name, pid, s.planned)
            s.state, s.reason, s.planned = "starting", s.planned, None
            s.next_start = time.monotonic()
            return
        if rc == EXIT_ENDED and not s.kill_reason and ran:
            self._set(s, "down", "source ended")
            s.next_start = None
            return
        if ran and ran_for >= self.policy.stable_s:
            s.failures = 0
        self._failed(s, f"pid {pid} {reason}" if s.kill_reason is None else reason, ran)

    def _failed(self, s: Slot, reason: str, ran: bool) -> None:
        delay = min(self.policy.backoff_max_s, self.policy.backoff_initial_s * 2 ** s.failures)
        s.failures += 1
        s.restarts += 1
        s.next_start = time.monotonic() + delay
        state = "restarting" if ran else "down"
        if s.state == "down" and not ran:
            state = "down"
        self._set(s, state, reason, f"restart {s.restarts} in {delay:.1f} s")

    def _set(self, s: Slot, state: str, reason: Optional[str], extra: str = "") -> None:
        old = s.state
        s.state, s.reason = state, reason
        msg = f"camera {s.name}: {old} -> {state}"
        if reason:
            msg += f" ({redact(reason)})"
        if extra:
            msg += f"; {extra}"
        (log.info if state == "running" else log.warning)("%s", msg)

    def _signal(self, s: Slot, sig: int) -> None:
        try:
            if s.proc is not None and s.proc.poll() is None:
                s.proc.send_signal(sig)
        except OSError:
            pass

    def _send(self, s: Slot, msg: tuple) -> None:
        # One sender at a time: web threads call snapshot() concurrently, and two interleaved
        # send()s would garble the stream.
        with self._send_lock:
            conn = s.conn
            if conn is None:
                return
            try:
                conn.send(msg)  # tiny: never fills the socket buffer the child drains
            except (OSError, ValueError):
                pass

    # ---- the reader (one thread for every camera's channel) ----------------------------------
    def _read_loop(self) -> None:
        # At stop this keeps reading until every camera closed its channel (their final `end`
        # and `summary` events come last) or the stop budget is spent.
        while True:
            with self._lock:
                conns = {s.conn: s for s in self._slots.values() if s.conn is not None}
            if self._stop.is_set() and (not conns or time.monotonic() > self._read_deadline):
                return
            if not conns:
                self._stop.wait(0.1)
                continue
            try:
                ready = wait(list(conns), timeout=0.2)
            except (OSError, ValueError):
                continue  # a connection closed under us; next round
            for c in ready:
                s = conns[c]
                try:
                    msg = c.recv()
                except (EOFError, OSError, ValueError):
                    with self._lock:
                        if s.conn is c:
                            c.close()
                            s.conn = None
                    continue
                except Exception:  # a garbled message: log, keep reading the others
                    log.exception("camera %s: bad message on the channel", s.name)
                    continue
                self._dispatch(s, msg)

    def _dispatch(self, s: Slot, msg: tuple) -> None:
        kind = msg[0]
        if kind == "evs":
            try:
                self.on_events(s.name, msg[1])
            except Exception:
                log.exception("camera %s: storing events failed", s.name)
            return
        now = time.monotonic()
        with self._lock:
            if kind == "hb":
                s.hb, s.hb_mono, s.last_hb = msg[1], now, now
            elif kind == "jpg":
                s.snapshot = msg[1]
            elif kind == "hello":
                s.size = msg[1].get("size")
                s.running_since, s.last_hb = now, now
                if s.state != "running":
                    self._set(s, "running", None, f"pid {msg[1].get('pid')}")
            elif kind == "fatal":
                s.fatal = msg[1]
            elif kind == "bye":
                s.hb = dict(s.hb, stats=msg[1])
