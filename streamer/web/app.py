"""The Flask app: its state, the factory, the error handlers, the per-request hooks and the pages.

Routes live in ``analyze_routes`` (``POST /analyze``), ``live_routes`` (the in-process
pipeline's status, health, metrics and MJPEG) and ``site_routes`` (the site API and the
editor); the pages (``/``, ``/dashboard``) are plain files from ``static/``, no CDN.

Contracts:
- Every error is JSON ``{"error": "<one line>", "code": "<machine code>"}`` (plus ``param``
  when a query value is bad) with a 4xx for anything the client caused; a 5xx only for a bug
  (code ``internal``, logged with traceback) or a full server (503 ``busy``).
- One log line per request: client, method, route, status, ms, faces (and the error code).
- Security headers on every response (CSP ``default-src 'self'``: nothing from elsewhere).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from flask import Flask, Response, g, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from streamer.config import Config
from streamer.errors import StreamerError
from streamer.web.analyzers import AnalyzerPool
from streamer.web.auth import check_token
from streamer.web.errors import HTTP_CODES, ApiError
from streamer.web.metrics import WebMetrics
from streamer.web.stream import MAX_MJPEG_CLIENTS

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"


@dataclass
class WebState:
    """What the routes share. ``stop`` is set by the server's shutdown (ends the streams)."""

    cfg: Config
    pool: Optional[AnalyzerPool]
    decode: Callable
    pipeline: Optional[object] = None  # a running runtime.pipeline.Pipeline (stream --serve)
    mjpeg: Optional[object] = None  # its media.output.LatestJpeg
    site: Optional[object] = None  # a runtime.site_view.SiteView (run.py site)
    keep_crops: bool = False  # privacy.keep_crops: face thumbnails may be served
    metrics: Optional[WebMetrics] = None
    stop: threading.Event = field(default_factory=threading.Event)
    in_flight: Optional[threading.BoundedSemaphore] = None
    mjpeg_slots: Optional[threading.BoundedSemaphore] = None


def _default_decoder() -> Callable:
    try:
        from streamer.media.images import decode_image
    except ImportError as e:
        raise StreamerError(f"image decoding is unavailable ({e}); streamer/media/images.py "
                            "is missing") from None
    return decode_image


def create_app(cfg: Config, pool: Optional[AnalyzerPool] = None, pipeline=None, mjpeg=None,
               decode: Optional[Callable] = None, site=None,
               keep_crops: Optional[bool] = None) -> Flask:
    """The Flask app. ``pool`` None loads Analyzers now (model errors surface here, before any
    socket is bound); tests pass a pool of fakes and may pass ``decode``. ``site`` (a
    ``SiteView``) adds the site API, the dashboard's data and the site's health and metrics;
    ``keep_crops`` (default: ``cfg.privacy.keep_crops`` when the config has it, else off) lets
    ``/api/crops/<id>.jpg`` serve the thumbnails the store kept."""
    if pool is None:
        pool = AnalyzerPool.build(cfg)
    if keep_crops is None:
        keep_crops = bool(getattr(getattr(cfg, "privacy", None), "keep_crops", False))
    st = WebState(cfg, pool, decode or _default_decoder(), pipeline, mjpeg, site, keep_crops,
                  WebMetrics(pipeline, cfg.camera, site=site),
                  in_flight=threading.BoundedSemaphore(pool.size * 2),
                  mjpeg_slots=threading.BoundedSemaphore(MAX_MJPEG_CLIENTS))
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=int(cfg.web.max_body_mb * 1024 * 1024), DEBUG=False,
                      TESTING=False, PROPAGATE_EXCEPTIONS=False)
    app.json.sort_keys = False
    app.extensions["streamer"] = st
    _hooks(app, st)
    _error_handlers(app, st)

    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html", max_age=0)

    @app.get("/dashboard")
    def dashboard():
        return send_from_directory(STATIC, "dashboard.html", max_age=0)

    from streamer.web import analyze_routes, live_routes, site_routes

    analyze_routes.register(app, st)
    live_routes.register(app, st)
    site_routes.register(app, st)
    return app


def _hooks(app: Flask, st: WebState) -> None:
    token = st.cfg.web.token

    @app.before_request
    def _begin():
        g.t0 = time.perf_counter()
        g.faces = None
        g.code = None
        if token:
            check_token(token)

    @app.after_request
    def _finish(resp: Response):
        h = resp.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("Content-Security-Policy",
                     "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                     "base-uri 'none'; frame-ancestors 'none'")
        if resp.status_code == 401:
            h.setdefault("WWW-Authenticate", 'Bearer realm="streamer"')
        route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        ms = (time.perf_counter() - g.get("t0", time.perf_counter())) * 1000
        st.metrics.requests.labels(route, request.method, str(resp.status_code)).inc()
        faces = g.get("faces")
        code = g.get("code")
        log.info("%s %s %s %d %.1f ms faces=%s%s", request.remote_addr or "-", request.method,
                 route if request.url_rule is not None else request.path[:200], resp.status_code,
                 ms, "-" if faces is None else faces, f" code={code}" if code else "")
        return resp


def _error_handlers(app: Flask, st: WebState) -> None:
    cfg = st.cfg

    def _error(status: int, code: str, message: str, headers=(), extra=None) -> Response:
        g.code = code
        if request.endpoint == "analyze":
            st.metrics.analyze_errors.labels(code).inc()
        resp = jsonify(error=message, code=code, **(extra or {}))
        resp.status_code = status
        for k, v in headers:
            resp.headers[k] = v
        return resp

    @app.errorhandler(ApiError)
    def _api_error(e: ApiError):
        headers = [("Retry-After", "1")] if e.status == 503 else []
        return _error(e.status, e.code, str(e), headers, e.extra)

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException):
        msg = {404: f"no route {request.path[:200]}",
               405: f"{request.method} is not allowed on {request.path[:200]}",
               413: f"request body larger than web.max_body_mb = {cfg.web.max_body_mb:g} MB"
               }.get(e.code, e.description or e.name)
        headers = [(k, v) for k, v in e.get_headers() if k.lower() == "allow"]
        return _error(e.code or 400, HTTP_CODES.get(e.code, e.name.lower().replace(" ", "_")),
                      msg, headers)

    @app.errorhandler(Exception)
    def _bug(e: Exception):
        log.exception("bug while handling %s %s", request.method, request.path[:200])
        return _error(500, "internal", "internal error (logged on the server)")
