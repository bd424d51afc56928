"""Web server: the page, ``POST /analyze``, the live MJPEG, status, health and metrics.

Routes (``web.token`` set => ``Authorization: Bearer <token>`` on all but ``/``, ``/static/*``
and ``/healthz``; ``/stream.mjpg`` also takes ``?access_token=`` because an ``<img>`` cannot
send headers):

    GET  /                 the page (plain HTML/CSS/JS from streamer/static, no CDN)
    POST /analyze          JSON {"image": "<base64>", "filename": "..."}, a multipart upload
                           (field ``image`` or ``file``) or a raw image/* body;
                           ?annotate=0 leaves out the annotated JPEG
    GET  /stream.mjpg      live annotated frames (multipart/x-mixed-replace); 404 without pipeline
    GET  /api/status       pipeline stats for the page (fps, faces, tracks, counts, source)
    GET  /healthz          liveness + readiness: 200 ready, 503 not ready, JSON either way
    GET  /metrics          Prometheus text (pipeline counters read at scrape time + web path)

Contracts:
- Every error is JSON ``{"error": "<one line>", "code": "<machine code>"}`` with a 4xx status for
  anything the client caused (bad body, bad image, too large, unknown route, wrong method); a 5xx
  only for a bug (code ``internal``, logged with traceback) or a full server (503 ``busy``).
- ``/analyze`` runs the one single-image path (``analyze.Analyzer``), the stream's detector and
  attribute nets. cv2 nets are not thread-safe, so the server holds a small pool of worker
  threads, each owning one Analyzer (see ``AnalyzerPool``); requests beyond ``pool size x 2``
  in flight wait for a slot before their body is read, so memory stays bounded under a flood.
- Image decoding (EXIF, alpha, 16-bit, bombs, downscaling to ``web.max_side``) is
  ``imageio.decode_image``'s job; this module maps its ``ImageError.code`` to a status.
- One log line per request: client, method, route, status, ms, faces (and the error code).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import ipaddress
import json
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from concurrent.futures import Future, TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import cv2
import numpy as np
from flask import Flask, Response, g, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.serving import (BaseWSGIServer, WSGIRequestHandler, get_sockaddr, make_server,
                              select_address_family)

from streamer import config as config_mod
from streamer.config import Config
from streamer.errors import ImageError, StreamerError
from streamer.core.events import attributes_payload
from streamer.core.analyze import Analysis
from streamer.web.metrics import WebMetrics
from streamer.media.overlay import draw_faces
from streamer.types import FaceResult

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
PUBLIC_ENDPOINTS = {"index", "static", "healthz"}
# ImageError codes (imageio's contract) and the status each gets; unknown codes get 400.
IMAGE_STATUS = {"empty": 400, "not_an_image": 400, "truncated": 400, "unsupported": 415,
                "too_many_pixels": 413}
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "too_large", 415: "unsupported", 429: "busy",
              503: "busy"}
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
POOL_WAIT_S = 30.0  # a request waits this long for a free Analyzer before 503 busy
MAX_MJPEG_CLIENTS = 8  # each viewer holds a server thread for as long as it watches
IDLE_TIMEOUT_S = 30.0  # socket timeout per connection (idle keep-alive, stalled upload)


class ApiError(Exception):
    """A refused request: becomes ``{"error": message, "code": code}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code


# ---- analyzer pool ---------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """One analysed upload: the faces, the annotated JPEG (when asked) and where time went."""

    analysis: Analysis
    jpeg: Optional[bytes]
    queue_ms: float
    annotate_ms: float


class AnalyzerPool:
    """``size`` worker threads, each owning one Analyzer, fed from one job queue.

    cv2 nets are not thread-safe, so an Analyzer serves one image at a time. The work runs in
    long-lived threads of our own rather than in werkzeug's request threads (one per
    connection) because OpenCV pays a set-up on the first call in every new thread:
    ``cv2.putText`` alone costs ~50 ms there, so annotating in request threads added 50 ms to
    every request on a fresh connection. Workers are started (and, from ``build``, warmed up on
    a blank frame) once. More workers than cores only adds memory and contention: on 2 cores,
    2 workers overlap one request's parsing/decoding with another's inference.
    """

    def __init__(self, analyzers: list, warm: bool = False):
        if not analyzers:
            raise ValueError("AnalyzerPool needs at least one analyzer")
        self.size = len(analyzers)
        self._analyzers = list(analyzers)
        self._warm = warm
        self._jobs: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._warm_error: Optional[BaseException] = None

    @classmethod
    def build(cls, cfg: Config, size: int = 0) -> "AnalyzerPool":
        """Load ``size`` Analyzers (0 = ``web.workers`` if configured, else min(2, cores)),
        start their threads and run each once, so a broken model fails here, not on a request."""
        from streamer.core.analyze import Analyzer

        size = size or cfg.web.workers or min(2, os.cpu_count() or 1)
        pool = cls([Analyzer(cfg) for _ in range(size)], warm=True)
        pool.start()
        return pool

    def start(self) -> None:
        """Start the workers (idempotent; ``run`` calls it, so pools of fakes start lazily)."""
        with self._lock:
            if self._threads:
                return
            ready = []
            for i, a in enumerate(self._analyzers):
                ev = threading.Event()
                t = threading.Thread(target=self._work, args=(a, ev), name=f"analyzer-{i}", daemon=True)
                self._threads.append(t)
                ready.append(ev)
                t.start()
            for ev in ready:
                ev.wait(120)
        if self._warm_error is not None:
            raise self._warm_error

    def run(self, image: np.ndarray, jpeg_quality: Optional[int], timeout: float = POOL_WAIT_S) -> Outcome:
        """Analyse ``image`` (and annotate + encode it when ``jpeg_quality`` is given) on a
        worker; 503 ``busy`` if no worker got to it within ``timeout`` seconds."""
        self.start()
        fut: Future = Future()
        self._jobs.put((fut, image, jpeg_quality, time.perf_counter()))
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()  # dropped unless a worker already started it
            raise ApiError(503, "busy", f"all {self.size} analyzers stayed busy for {timeout:.0f} s; "
                                        "retry later") from None

    def close(self, timeout: float = 2.0) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        for t in threads:
            t.join(timeout)

    def _work(self, analyzer, ready: threading.Event) -> None:
        try:
            if self._warm:  # first inference and first putText allocate: pay both now
                self._process(analyzer, np.full((480, 640, 3), 128, np.uint8), 80, time.perf_counter())
        except BaseException as e:
            self._warm_error = e
        finally:
            ready.set()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fut, image, quality, queued_at = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(self._process(analyzer, image, quality, queued_at))
            except BaseException as e:  # delivered to the request thread (a bug: 500 there)
                fut.set_exception(e)

    @staticmethod
    def _process(analyzer, image: np.ndarray, quality: Optional[int], queued_at: float) -> Outcome:
        t0 = time.perf_counter()
        analysis = analyzer.analyze(image)
        t1 = time.perf_counter()
        jpeg = None
        if quality is not None:
            if not image.flags.writeable:  # e.g. a decoder that returned a view of its buffer
                image = image.copy()
            draw_faces(image, analysis.faces)  # the request's own decoded copy: in place is fine
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise RuntimeError("JPEG encoding of the annotated image failed")
            jpeg = buf.tobytes()
        return Outcome(analysis, jpeg, _ms(t0 - queued_at), _ms(time.perf_counter() - t1))


# ---- request parsing -------------------------------------------------------------------

def b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, with or without padding, line breaks or a data: URL prefix."""
    if text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or not head.endswith(";base64"):
            raise ApiError(400, "bad_base64", "image: a data: URL must be ';base64,' encoded")
    s = "".join(text.split())
    if "-" in s or "_" in s:
        s = s.replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ApiError(400, "bad_base64", f"image: not valid base64 ({e})") from None


def _check_not_cut() -> None:
    """A chunked body (no Content-Length) is cut at MAX_CONTENT_LENGTH by werkzeug without an
    error; reaching the cap means the body was (or may have been) larger: refuse it as 413."""
    if request.content_length is None and getattr(request.stream, "is_exhausted", False):
        raise RequestEntityTooLarge()


def read_upload() -> tuple[bytes, Optional[str]]:
    """The uploaded image bytes and file name from a JSON, multipart or raw image body."""
    mime = request.mimetype
    if mime == "multipart/form-data":
        f = request.files.get("image") or request.files.get("file")
        _check_not_cut()
        if f is None:
            raise ApiError(400, "missing_image",
                           "multipart upload needs a file field named 'image' or 'file'")
        return f.read(), f.filename
    body = request.get_data(cache=False)
    _check_not_cut()
    if mime.startswith("image/") or mime == "application/octet-stream":
        return body, None
    if not body.strip():
        raise ApiError(400, "empty", "request body is empty: send JSON {\"image\": \"<base64>\"} "
                                     "or a multipart upload with a field named 'image'")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested arrays
        raise ApiError(400, "not_json", "request body is not JSON: send {\"image\": \"<base64>\"}, "
                                        "a multipart upload or an image/* body") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "bad_json", f"expected a JSON object {{\"image\": \"<base64>\"}}, "
                                        f"got a JSON {type(doc).__name__}")
    img, name = doc.get("image"), doc.get("filename")
    if img is None:
        raise ApiError(400, "missing_image", "JSON body has no 'image' (base64 of the file)")
    if not isinstance(img, str):
        raise ApiError(400, "bad_json", f"image: expected a base64 string, got {type(img).__name__}")
    if name is not None and not isinstance(name, str):
        raise ApiError(400, "bad_json", f"filename: expected a string, got {type(name).__name__}")
    return b64decode(img), name


def flag(name: str, default: bool) -> bool:
    v = request.args.get(name)
    if v is None:
        return default
    if v.lower() in TRUE:
        return True
    if v.lower() in FALSE:
        return False
    raise ApiError(400, "bad_param", f"{name}: expected 0 or 1, got {v[:20]!r}")


def face_json(f: FaceResult) -> dict:
    p = attributes_payload(f.attributes)
    gender, age = p["gender"], p["age"]
    return {"box": [int(round(v)) for v in f.box], "score": round(float(f.score), 3),
            "gender": gender["label"] if gender else None,
            "gender_confidence": gender["confidence"] if gender else None,
            "age": age["years"] if age else None, "age_range": age["range"] if age else None,
            "attributes_reason": p["attributes_reason"]}


# ---- the app ---------------------------------------------------------------------------

@dataclass
class WebState:
    cfg: Config
    pool: Optional[AnalyzerPool]
    decode: Callable
    pipeline: Optional[object] = None  # a running pipeline.Pipeline (stream --serve)
    mjpeg: Optional[object] = None  # its output.LatestJpeg
    metrics: Optional[WebMetrics] = None
    stop: threading.Event = field(default_factory=threading.Event)  # set by Server.shutdown
    in_flight: Optional[threading.BoundedSemaphore] = None
    mjpeg_slots: Optional[threading.BoundedSemaphore] = None


def _default_decoder() -> Callable:
    try:
        from streamer.media.images import decode_image
    except ImportError as e:
        raise StreamerError(f"image decoding is unavailable ({e}); streamer/imageio.py is missing") from None
    return decode_image


def create_app(cfg: Config, pool: Optional[AnalyzerPool] = None, pipeline=None, mjpeg=None,
               decode: Optional[Callable] = None) -> Flask:
    """The Flask app. ``pool`` None loads Analyzers now (model errors surface here, before any
    socket is bound); tests pass a pool of fakes and may pass ``decode``."""
    if pool is None:
        pool = AnalyzerPool.build(cfg)
    st = WebState(cfg, pool, decode or _default_decoder(), pipeline, mjpeg,
                  WebMetrics(pipeline, cfg.camera),
                  in_flight=threading.BoundedSemaphore(pool.size * 2),
                  mjpeg_slots=threading.BoundedSemaphore(MAX_MJPEG_CLIENTS))
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=int(cfg.web.max_body_mb * 1024 * 1024), DEBUG=False,
                      TESTING=False, PROPAGATE_EXCEPTIONS=False)
    app.json.sort_keys = False
    app.extensions["streamer"] = st
    token = cfg.web.token

    @app.before_request
    def _begin():
        g.t0 = time.perf_counter()
        g.faces = None
        g.code = None
        if token and request.endpoint not in PUBLIC_ENDPOINTS and request.endpoint is not None:
            given = request.headers.get("Authorization", "")
            sent = given[7:].strip() if given[:7].lower() == "bearer " else ""
            if not sent and request.endpoint == "stream":
                sent = request.args.get("access_token", "")
            if not hmac.compare_digest(sent.encode(), token.encode()):
                raise ApiError(401, "unauthorized", "missing or wrong token: send "
                                                    "'Authorization: Bearer <web.token>'")

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

    def _error(status: int, code: str, message: str, headers=()) -> Response:
        g.code = code
        if request.endpoint == "analyze":
            st.metrics.analyze_errors.labels(code).inc()
        resp = jsonify(error=message, code=code)
        resp.status_code = status
        for k, v in headers:
            resp.headers[k] = v
        return resp

    @app.errorhandler(ApiError)
    def _api_error(e: ApiError):
        headers = [("Retry-After", "1")] if e.status == 503 else []
        return _error(e.status, e.code, str(e), headers)

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

    # ---- routes ----------------------------------------------------------------------
    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html", max_age=0)

    @app.post("/analyze")
    def analyze():
        st.metrics.analyze_requests.inc()
        annotate = flag("annotate", True)
        # Admission before the body is read: a flood waits here holding no image memory.
        if not st.in_flight.acquire(timeout=POOL_WAIT_S):
            raise ApiError(503, "busy", "too many requests in flight; retry later")
        try:
            return _analyze(annotate)
        finally:
            st.in_flight.release()

    def _analyze(annotate: bool):
        t0 = time.perf_counter()
        data, _name = read_upload()
        if not data:
            raise ApiError(400, "empty", "the uploaded file is empty (0 bytes)")
        t1 = time.perf_counter()
        try:
            image = st.decode(data, max_side=cfg.web.max_side, max_pixels=cfg.web.max_pixels)
        except ImageError as e:
            raise ApiError(IMAGE_STATUS.get(e.code, 400), e.code, str(e)) from None
        except MemoryError:
            raise ApiError(413, "too_many_pixels", "image too large to decode in memory") from None
        except Exception as e:  # a decoder bug must not become a 500 for the client
            log.exception("decoder failed on %d bytes", len(data))
            raise ApiError(400, "undecodable", f"image could not be decoded ({type(e).__name__})") from None
        del data
        t2 = time.perf_counter()
        done = st.pool.run(image, cfg.web.jpeg_quality if annotate else None)
        faces = [face_json(f) for f in done.analysis.faces]
        out = {"faces": faces, "width": int(image.shape[1]), "height": int(image.shape[0])}
        if done.jpeg is not None:
            out["image"] = base64.b64encode(done.jpeg).decode("ascii")
        t3 = time.perf_counter()
        out["timing_ms"] = {"read": _ms(t1 - t0), "decode": _ms(t2 - t1), "queue": done.queue_ms,
                            **done.analysis.timing_ms, "annotate": done.annotate_ms,
                            "total": _ms(t3 - t0)}
        st.metrics.analyze_seconds.observe(t3 - t0)
        g.faces = len(faces)
        st.metrics.analyze_faces.inc(len(faces))
        return jsonify(out)

    @app.get("/api/status")
    def status():
        return jsonify(status_json(st))

    @app.get("/healthz")
    def healthz():
        body = health_json(st)
        return jsonify(body), 200 if body["status"] == "ready" else 503

    @app.get("/metrics")
    def metrics():
        text, ctype = st.metrics.render()
        return Response(text, content_type=ctype)

    @app.get("/stream.mjpg")
    def stream():
        if st.mjpeg is None:
            raise ApiError(404, "no_pipeline", "no live stream in this process: run "
                                               "`python run.py stream --source SRC --serve`")
        if not st.mjpeg_slots.acquire(blocking=False):
            raise ApiError(503, "busy", f"too many stream viewers (at most {MAX_MJPEG_CLIENTS})")
        released = threading.Event()

        def release():
            if not released.is_set():
                released.set()
                st.mjpeg_slots.release()

        resp = Response(_mjpeg_frames(st), mimetype="multipart/x-mixed-replace; boundary=frame")
        resp.headers["Cache-Control"] = "no-store"
        resp.call_on_close(release)  # runs on client disconnect or end, started or not
        return resp

    return app


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _pipeline_running(st: WebState) -> bool:
    p = st.pipeline
    return p is not None and not p.stop_event.is_set()


def _mjpeg_frames(st: WebState) -> Iterator[bytes]:
    """Newest frames only: a slow viewer skips frames instead of building a backlog."""
    seq = 0
    while not st.stop.is_set():
        new, jpeg = st.mjpeg.wait(seq, timeout=1.0)
        if new == seq or jpeg is None:
            if st.pipeline is not None and st.pipeline.stop_event.is_set():
                return
            continue
        seq = new
        yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
               + jpeg + b"\r\n")


def _frame_age(p) -> Optional[float]:
    return None if p.last_frame_mono is None else round(time.monotonic() - p.last_frame_mono, 3)


def status_json(st: WebState) -> dict:
    p = st.pipeline
    if p is None:
        return {"pipeline": False, "camera": st.cfg.camera}
    s = p.stats
    return {"pipeline": True, "running": _pipeline_running(st), "camera": st.cfg.camera,
            "source_up": bool(p.source_up), "fps": round(s.fps, 1), "faces": s.faces,
            "tracks": s.tracks, "counts": s.counts, "frames_in": p.frames_in,
            "frames_processed": p.frames_processed,
            "frames_dropped": p.frames.dropped + p.results.dropped + p.frames_stale,
            "latency_ms": round(s.latency_ms, 1), "last_frame_age_s": _frame_age(p),
            "stream": st.mjpeg is not None}


def health_json(st: WebState) -> dict:
    """Ready = models loaded and, with a pipeline, the source connected and frames recent.

    Frames count as recent within ``source.read_timeout_s`` (past that the source is declared
    lost anyway); before the first frame, within open + read timeouts of the start.
    """
    p, src = st.pipeline, st.cfg.source
    body: dict = {"live": True, "models_loaded": st.pool is not None, "pipeline": p is not None,
                  "source_connected": None, "last_frame_age_s": None}
    reasons = [] if st.pool is not None else ["models not loaded"]
    if p is not None:
        running = _pipeline_running(st)
        body["source_connected"] = bool(p.source_up) and running
        age = _frame_age(p)
        body["last_frame_age_s"] = age
        if not running:
            reasons.append("pipeline stopped")
        elif not p.source_up:
            reasons.append("source disconnected, reconnecting")
        if age is None:
            waited = time.monotonic() - p.started
            if waited > src.open_timeout_s + src.read_timeout_s:
                reasons.append(f"no frame processed {waited:.0f} s after start")
        elif age > src.read_timeout_s:
            reasons.append(f"last frame {age:.1f} s ago (> source.read_timeout_s)")
    body["status"] = "not_ready" if reasons else "ready"
    body["reasons"] = reasons
    return body


# ---- server ----------------------------------------------------------------------------

class _Handler(WSGIRequestHandler):
    """werkzeug's handler without its access log (the app logs one richer line per request).

    HTTP/1.1 keep-alive saves a TCP handshake per request; ``timeout`` ends connections idle
    (or stalled mid-upload, or not reading a stream) for that long, so idle clients cannot
    pin server threads forever.
    """

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S

    def log_request(self, code="-", size="-") -> None:
        pass


class Server:
    """A threaded werkzeug server (one thread per connection) run in a background thread.

    ``shutdown()`` stops accepting, ends MJPEG streams within about a second and joins.
    """

    def __init__(self, app: Flask, host: str, port: int):
        self.app = app
        # Bind here rather than in make_server, which prints and calls sys.exit on a busy port.
        family = select_address_family(host, port)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(get_sockaddr(host, port, family))
            sock.listen(128)
            self._srv: BaseWSGIServer = make_server(host, port, app, threaded=True,
                                                    request_handler=_Handler, fd=sock.fileno())
        except OSError as e:
            raise StreamerError(f"web.port {port}: cannot listen on {host}:{port} "
                                f"({e.strerror or e}); choose another --port or --host") from None
        finally:
            sock.close()  # make_server keeps its own duplicate of the descriptor
        self._srv.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return self._srv.port

    @property
    def url(self) -> str:
        host = self._srv.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> "Server":
        self._thread = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="web", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        st = self.app.extensions["streamer"]
        st.stop.set()
        self._srv.shutdown()
        self._srv.server_close()
        if self._thread is not None:
            self._thread.join(5)
        st.pool.close()


def _warn_if_exposed(cfg: Config) -> None:
    try:
        loopback = ipaddress.ip_address(cfg.web.host).is_loopback
    except ValueError:
        loopback = cfg.web.host == "localhost"
    if not loopback and not cfg.web.token:
        log.warning("serving on %s without web.token: anyone who reaches this address can use "
                    "the API; set web.token", cfg.web.host)


def start_background(cfg: Config, pipeline=None, mjpeg=None) -> Server:
    """Serve in a background thread (``run.py stream --serve``); the caller calls ``shutdown()``."""
    _warn_if_exposed(cfg)
    server = Server(create_app(cfg, pipeline=pipeline, mjpeg=mjpeg), cfg.web.host, cfg.web.port).start()
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
    _warn_if_exposed(cfg)
    server = Server(create_app(cfg), cfg.web.host, cfg.web.port)
    stop = threading.Event()

    def _stop(signum, _frame):
        log.info("signal %d: stopping the web server", signum)
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    server.start()
    log.info("serving on %s (Ctrl-C stops)", server.url)
    print(f"serving on {server.url}", flush=True)
    # Signals arrive in the main thread; serve in a worker so shutdown() cannot deadlock.
    while not stop.wait(1.0):
        pass
    server.shutdown()
    return 0
