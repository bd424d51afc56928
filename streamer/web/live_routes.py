"""The process's own state: ``/api/status``, ``/healthz``, ``/metrics`` and ``/stream.mjpg``.

``/stream.mjpg`` streams the in-process pipeline's frames (``run.py stream --serve``); 404
without one. ``/healthz`` is 200 ready / 503 not ready with the reasons, JSON either way
(see ``health``); with a site it aggregates every camera and MQTT link.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify

from streamer.web.errors import ApiError
from streamer.web.health import health_json, status_json
from streamer.web.stream import latest_jpeg_frames, mjpeg_response


def register(app: Flask, st) -> None:
    @app.get("/api/status")
    def status():
        return jsonify(status_json(st.cfg, st.pipeline, st.mjpeg is not None))

    @app.get("/healthz")
    def healthz():
        body = health_json(st.cfg, st.pool is not None, st.pipeline, st.site)
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
        p = st.pipeline
        stopped = (lambda: p.stop_event.is_set()) if p is not None else (lambda: False)
        return mjpeg_response(latest_jpeg_frames(st.mjpeg, st.stop, stopped), st.mjpeg_slots)
