"""``run.py site --config FILE``: every camera of a site file, each in its own process, one
event store, one web server (the dashboard), one log.

``Site`` is the running site and implements ``site_view.SiteView`` for the web layer: camera
states come from the supervisor (``site_supervisor``), events go from the cameras' channels into
the store writer (``site_store``), the editor's saves rewrite the site file
(``site_geometry``) and restart that camera. Logging (rotation, gzip) is ``site_logs``.

Shutdown: SIGTERM / SIGINT set one stop event; the main thread then stops the cameras
(``Supervisor.stop``: within 3 s, SIGKILL for stragglers), the web server, and flushes the store.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from typing import Optional

from streamer.runtime.signals import stop_on_signals
from streamer.runtime.site_store import StoreWriter
from streamer.runtime.site_supervisor import Policy, Supervisor
from streamer.runtime.site_view import CameraStatus

log = logging.getLogger("streamer.site")

STALE_FRAME_S = 10.0  # a running camera without a frame this long is reported in health()


class Site:
    """A running site (see the module docstring). ``start()`` then ``stop()``."""

    def __init__(self, site_cfg, policy: Optional[Policy] = None, store=None):
        from streamer.store import open_store

        self.cfg = site_cfg
        self.policy = policy or Policy()
        self.policy.keep_crops = bool(site_cfg.privacy.keep_crops)
        self.store = store or StoreWriter(open_store(site_cfg), site_cfg.store.retention_days)
        self.supervisor = Supervisor(site_cfg.cameras, self._on_events, self.policy)
        self._save_lock = threading.Lock()

    def start(self) -> None:
        self.supervisor.start()

    def stop(self) -> None:
        t0 = time.monotonic()
        self.supervisor.stop()
        self.store.close(timeout=max(0.5, 4.0 - (time.monotonic() - t0)))

    def _on_events(self, name: str, items: list) -> None:
        events = [ev for ev, _ in items]
        crops = {ev.get("id"): c for ev, c in items if c}
        self.store.add(events, crops or None)

    # ---- SiteView ----------------------------------------------------------------------------
    def _known(self, name: str) -> str:
        if name not in self.supervisor.names():
            raise KeyError(name)
        return name

    def cameras(self) -> list[CameraStatus]:
        return [self.supervisor.status(n) for n in self.supervisor.names()]

    def snapshot(self, name: str) -> Optional[bytes]:
        return self.supervisor.snapshot(self._known(name))

    def health(self) -> tuple[bool, list[str]]:
        reasons = []
        for c in self.cameras():
            if c.status != "running":
                reasons.append(f"camera {c.name}: {c.status}" + (f" ({c.reason})" if c.reason else ""))
                continue
            if not c.source_connected:
                reasons.append(f"camera {c.name}: source {c.source} not connected")
            elif c.last_frame_age_s is not None and c.last_frame_age_s > STALE_FRAME_S:
                reasons.append(f"camera {c.name}: no frame for {c.last_frame_age_s:.0f} s")
            m = c.mqtt
            if isinstance(m, dict) and m.get("connected") is False:
                backlog = m.get("backlog")
                reasons.append(f"camera {c.name}: MQTT not connected"
                               + (f" ({backlog} events spooled)" if backlog is not None else "")
                               + (f": {m.get('last_error') or m.get('error')}"
                                  if m.get("last_error") or m.get("error") else ""))
        return not reasons, reasons

    def geometry(self, name: str) -> dict:
        cfg = self.supervisor.config(self._known(name))
        return {"lines": [{"name": ln.name, "points": [list(p) for p in ln.points]}
                          for ln in cfg.counting.lines],
                "zones": [{"name": z.name, "points": [list(p) for p in z.points]}
                          for z in cfg.counting.zones],
                "size": self.supervisor.size(name)}

    def save_geometry(self, name: str, lines: list[dict], zones: list[dict]) -> None:
        from streamer.runtime.site_geometry import write_geometry

        self._known(name)
        if self.cfg.path is None:
            from streamer.errors import ConfigError
            raise ConfigError("this site was not loaded from a file: nowhere to save")
        with self._save_lock:
            new = write_geometry(self.cfg.path, name, lines, zones)
            self.cfg = new
            log.info("camera %s: geometry saved (%d lines, %d zones) to %s", name, len(lines),
                     len(zones), new.path)
            self.supervisor.restart(name, new.cameras[name], "config changed")


# ---- CLI -------------------------------------------------------------------------------------

TUNE_TIMEOUT_S = 120.0


def measure_backends(site_cfg, stop: threading.Event) -> None:
    """Before the first camera starts: when a camera leaves ``inference.backend`` on ``auto``
    and this machine has no backend measurement (a fresh box, a container's new host), make
    it once (``run.py models --tune-if-needed``, a few seconds) so every camera runs the
    fastest backend from its first frame. A child process, so the supervisor never holds the
    runtimes it only timed; stopped within a poll interval by ``stop``; a failure costs only
    the choice (``auto`` stays OpenVINO) and is logged."""
    import subprocess
    import sys
    from pathlib import Path

    from streamer.inference import choice

    if choice.choice_path() is None or not any(
            c.inference.backend == "auto" for c in site_cfg.cameras.values()):
        return
    first = next(iter(site_cfg.cameras.values()))
    if choice.measured(Path(first.models_dir) if first.models_dir else None) is not None:
        return
    run_py = Path(__file__).resolve().parents[2] / "run.py"
    argv = [sys.executable, str(run_py), "models", "--tune-if-needed"]
    if first.models_dir:
        argv += ["--models-dir", str(first.models_dir)]
    log.info("site: no backend measurement for this machine; timing the nets once (run.py models --tune)")
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + TUNE_TIMEOUT_S
    while p.poll() is None and not stop.is_set() and time.monotonic() < deadline:
        stop.wait(0.1)
    if p.poll() is None:
        p.kill()
        p.wait(5)
        if not stop.is_set():
            log.warning("site: the backend measurement took over %.0f s; auto stays OpenVINO", TUNE_TIMEOUT_S)
        return
    out = (p.stdout.read() if p.stdout else "").strip().splitlines()
    if p.returncode != 0:
        log.warning("site: the backend measurement failed (exit %d: %s); auto stays OpenVINO",
                    p.returncode, out[-1] if out else "no output")
    else:
        log.info("site: %s", out[-1] if out else "backend measured")


def add_parser(sub) -> None:
    p = sub.add_parser("site", help="run every camera of a site config, the event store and the dashboard")
    p.add_argument("--config", required=True, help="site YAML (defaults + cameras:)")
    p.add_argument("--host", help="web server address (web.host)")
    p.add_argument("--port", type=int, help="web server port (web.port)")
    p.add_argument("--no-web", action="store_true", help="no web server (cameras and store only)")


def run_cli(a: argparse.Namespace) -> int:
    import dataclasses

    from streamer.config import load_site
    from streamer.runtime import site_logs

    site_cfg = load_site(a.config)
    site_logs.setup(site_cfg.log, site_cfg.log_level, base=site_cfg.path.parent if site_cfg.path else None)
    web_cfg = site_cfg.web
    if a.host or a.port:
        web_cfg = dataclasses.replace(web_cfg, **{k: v for k, v in (("host", a.host), ("port", a.port)) if v})
    stop = threading.Event()
    stop_on_signals(stop, "the site")
    measure_backends(site_cfg, stop)
    if stop.is_set():
        return 0
    site = Site(site_cfg)
    log.info("site %s: %d cameras (%s), store %s", site_cfg.path, len(site_cfg.cameras),
             ", ".join(site_cfg.cameras), site_cfg.store.path)
    site.start()
    server = None
    try:
        if not a.no_web:
            from streamer.web import server as web
            first = next(iter(site_cfg.cameras.values()))
            server = web.start_background(dataclasses.replace(first, web=web_cfg), site=site,
                                          keep_crops=site_cfg.privacy.keep_crops)
        while not stop.wait(0.5):
            pass
    finally:
        t0 = time.monotonic()
        site.stop()
        if server is not None:
            server.shutdown()
        log.info("site stopped in %.2f s; %s", time.monotonic() - t0, site.store.health())
    return 0
