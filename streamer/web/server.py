"""Serving the app: waitress in a background thread, ``start_background`` for the runners and
the ``run.py serve`` CLI.

Why waitress: a production WSGI server in pure Python (no compiler, no C extension), with a
bounded pool of worker threads (``THREADS``) and HTTP/1.1 keep-alive; werkzeug's server is for
development only and makes one thread per connection. waitress reads each request body before
the app sees it (to a temporary file past 512 KB, so memory stays bounded); bodies beyond
``max_request_body_size`` are refused by waitress itself (a plain-text 413), so that cap sits
well above ``web.max_body_mb`` and the app's own JSON 413 answers everything in between.

Shutdown (``Server.shutdown``, within about 2 s): the app's stop event ends every MJPEG
stream at its next wait, the last bytes are flushed, the listening socket and every
connection are closed in the server's own loop thread, the workers are joined with a timeout,
then the analyzers stop.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from typing import Optional

from flask import Flask
from waitress import create_server
from waitress import wasyncore

from streamer import config as config_mod
from streamer.config import Config
from streamer.errors import StreamerError
from streamer.runtime.signals import stop_on_signals
from streamer.web.analyzers import AnalyzerPool  # noqa: F401  (re-exported for callers)
from streamer.web.app import create_app
from streamer.web.auth import warn_if_exposed
from streamer.web.errors import ApiError  # noqa: F401  (re-exported for callers)
from streamer.web.stream import MAX_MJPEG_CLIENTS

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 30  # a connection idle (or stalled mid-upload) this long is closed
# Worker threads: every MJPEG viewer holds one while it watches, the rest serve the API.
THREADS = MAX_MJPEG_CLIENTS + 8
SHUTDOWN_S = 2.0


class Server:
    """A waitress server for ``app`` on ``host:port`` (0 = a free port), run by ``start()``
    in a background thread until ``shutdown()``."""

    def __init__(self, app: Flask, host: str, port: int, threads: int = THREADS):
        self.app = app
        st = app.extensions["streamer"]
        body_cap = int(st.cfg.web.max_body_mb * 4 * 1024 * 1024) + (16 << 20)
        try:
            self._srv = create_server(app, host=host, port=port, threads=threads,
                                      channel_timeout=IDLE_TIMEOUT_S, max_request_body_size=body_cap,
                                      ident="streamer", connection_limit=200,
                                      clear_untrusted_proxy_headers=True)
        except OSError as e:
            raise StreamerError(f"web.port {port}: cannot listen on {host}:{port} "
                                f"({e.strerror or e}); choose another --port or --host") from None
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return int(self._srv.effective_port)

    @property
    def url(self) -> str:
        host = str(self._srv.effective_host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> "Server":
        self._thread = threading.Thread(target=self._srv.run, name="web", daemon=True)
        self._thread.start()
        return self

    def shutdown(self, timeout: float = SHUTDOWN_S) -> None:
        st = self.app.extensions["streamer"]
        st.stop.set()  # streams end at their next wait (<= 0.5 s)
        deadline = time.monotonic() + timeout
        srv = self._srv
        # Let ending streams and answers in progress reach their clients before closing.
        while time.monotonic() < deadline - 0.5 and (
                srv.task_dispatcher.active_count
                or any(getattr(ch, "total_outbufs_len", 0) for ch in list(srv._map.values()))):
            time.sleep(0.02)
        closed = threading.Event()

        def close_all():  # in the loop thread, so no socket is closed under a running poll
            wasyncore.close_all(srv._map)
            closed.set()

        try:
            srv.trigger.pull_trigger(close_all)
        except OSError as e:
            # The loop's wake-up pipe is already gone (seen once in CI under load: EBADF), so no
            # loop will run the thunk: close the sockets here rather than fail the shutdown.
            log.warning("web: server wake-up pipe unusable at shutdown (%s); closing directly", e)
            wasyncore.close_all(srv._map)
            closed.set()
        closed.wait(max(0.1, deadline - time.monotonic()))
        if self._thread is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))
        srv.task_dispatcher.shutdown(cancel_pending=True, timeout=max(0.1, deadline - time.monotonic()))
        st.pool.close(timeout=max(0.1, deadline - time.monotonic()))


def start_background(cfg: Config, pipeline=None, mjpeg=None, site=None,
                     keep_crops: Optional[bool] = None) -> Server:
    """Serve in a background thread (``run.py stream --serve``, ``run.py site``); the caller
    calls ``shutdown()``. ``site`` is a ``runtime.site_view.SiteView``; with it, ``cfg`` is the
    site's default camera Config (its ``web`` section is the site's, its models serve
    ``/analyze``) and ``keep_crops`` the site's ``privacy.keep_crops``."""
    warn_if_exposed(cfg)
    server = Server(create_app(cfg, pipeline=pipeline, mjpeg=mjpeg, site=site, keep_crops=keep_crops),
                    cfg.web.host, cfg.web.port).start()
    log.info("web page on %s", server.url)
    return server


# ---- CLI -------------------------------------------------------------------------------

def add_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve the web page and POST /analyze")
    p.add_argument("--config", help="YAML config (default config/default.yaml)")
    p.add_argument("--host", help="address to listen on (web.host, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (web.port, default 8080)")
    p.add_argument("--models-dir", help="folder with the model files (models_dir)")


def run_cli(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config, {"web.host": args.host, "web.port": args.port,
                                        "models_dir": getattr(args, "models_dir", None)})
    logging.basicConfig(level=getattr(logging, cfg.log_level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    warn_if_exposed(cfg)
    server = Server(create_app(cfg), cfg.web.host, cfg.web.port)
    stop = threading.Event()
    stop_on_signals(stop, "the web server")
    server.start()
    log.info("serving on %s (Ctrl-C stops)", server.url)
    print(f"serving on {server.url}", flush=True)
    # Signals arrive in the main thread; serve in a worker so shutdown() cannot deadlock.
    while not stop.wait(1.0):
        pass
    server.shutdown()
    return 0
