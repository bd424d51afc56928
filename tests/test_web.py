"""The web server: request parsing, errors, auth, status/health/metrics, MJPEG, real server.

Layers, fastest first:
- Flask test client with a fake analyzer (parsing, errors, auth, headers, metrics wiring);
- the real decoder (``streamer.media.images``) on hostile files: truncated, bombs, GIFs, huge;
- the real models (``Analyzer``) on a real face photo and a blank image;
- a real threaded server on a free port, spoken to over a socket.
Helpers here (``face_jpeg``, ``running_server``, ``request_to``) are reused by the fuzz, browser
and bench code.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import functools
import http.client
import importlib.util
import io
import json
import logging
import os
import socket
import struct
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import cv2
import numpy as np
import pytest

from conftest import ROOT, data_path
from streamer import config as config_mod
from streamer.web import server as web
from streamer.core.analyze import Analysis
from streamer.errors import ImageError
from streamer.web.metrics import parse as parse_metrics, value as metric
from streamer.media.output import LatestJpeg
from streamer.runtime.meters import LatencyHistogram
from streamer.types import Attributes, FaceResult, Stats

from helpers.waiting import wait_until
from helpers.web_fixtures import (FakeAnalyzer, assert_box_on_the_crop, b64, bomb_png, cfg_with, encode, face_crop_path, face_image, face_jpeg, fake_pipeline, free_port, gif_two_frames, make_app, multipart, png_chunk, real_decode, request_to, running_server, simple_decode)


@pytest.fixture
def client():
    return make_app().test_client()


# ---- parsing and errors (test client, fake analyzer) ------------------------------------

def test_json_upload_returns_faces_and_annotated_jpeg(client):
    img = np.full((120, 160, 3), 90, np.uint8)
    r = client.post("/analyze", json={"image": b64(encode(img)), "filename": "a.jpg"})
    assert r.status_code == 200, r.json
    body = r.json
    assert list(body["faces"][0]) == ["box", "score", "gender", "gender_confidence", "age",
                                      "age_range", "attributes_reason"]
    f = body["faces"][0]
    assert f["box"] == [40, 30, 80, 60] and f["gender"] == "female" and f["gender_confidence"] == 0.91
    assert f["age"] == 31.2 and f["age_range"] == "25-38"
    annotated = cv2.imdecode(np.frombuffer(base64.b64decode(body["image"]), np.uint8), cv2.IMREAD_COLOR)
    assert annotated.shape == (120, 160, 3)
    assert (body["width"], body["height"]) == (160, 120)
    assert {"decode", "detect", "attributes", "total"} <= set(body["timing_ms"])


@pytest.mark.parametrize("field", ["image", "file"])
def test_multipart_upload(client, field):
    data, ctype = multipart(field, "x.png", encode(np.zeros((40, 50, 3), np.uint8), ".png"), "image/png")
    r = client.post("/analyze", data=data, content_type=ctype)
    assert r.status_code == 200, r.json
    assert len(r.json["faces"]) == 1 and (r.json["width"], r.json["height"]) == (50, 40)


def test_raw_image_body_and_annotate_off(client):
    r = client.post("/analyze?annotate=0", data=encode(np.zeros((30, 30, 3), np.uint8)),
                    content_type="image/jpeg")
    assert r.status_code == 200
    assert "image" not in r.json and len(r.json["faces"]) == 1


@pytest.mark.parametrize("body, ctype, status, code", [
    (b"", "application/json", 400, "empty"),
    (b"   \n", "application/json", 400, "empty"),
    (b"", None, 400, "empty"),
    (b"hello", "application/json", 400, "not_json"),
    (b"\xff\xfe\x00garbage", "application/json", 400, "not_json"),
    (b"[" * 100_000, "application/json", 400, "not_json"),  # nesting deeper than the recursion limit
    (b"[1, 2]", "application/json", 400, "bad_json"),
    (b"\"abc\"", "application/json", 400, "bad_json"),
    (b"null", "application/json", 400, "bad_json"),
    (b"{}", "application/json", 400, "missing_image"),
    (b'{"image": 3}', "application/json", 400, "bad_json"),
    (b'{"image": ["a"]}', "application/json", 400, "bad_json"),
    (b'{"image": "aGVsbG8=", "filename": 7}', "application/json", 400, "bad_json"),
    (b'{"image": "!!!not base64"}', "application/json", 400, "bad_base64"),
    (b'{"image": "abcde"}', "application/json", 400, "bad_base64"),
    (b'{"image": "\\u00e9\\u00e9\\u00e9\\u00e9"}', "application/json", 400, "bad_base64"),
    (b'{"image": "data:image/png,abc"}', "application/json", 400, "bad_base64"),
    (b'{"image": ""}', "application/json", 400, "empty"),
    (b'{"image": "aGVsbG8gd29ybGQ="}', "application/json", 400, "not_an_image"),
    (b'{"image": "aGVsbG8gd29ybGQ"}', "text/plain", 400, "not_an_image"),  # no padding, any type
    (b"GIF89a-not-really", "image/gif", 400, "not_an_image"),
    (b"", "image/jpeg", 400, "empty"),
])
def test_bad_bodies_get_json_4xx(client, body, ctype, status, code):
    r = client.post("/analyze", data=body, content_type=ctype)
    assert r.status_code == status
    assert r.json["code"] == code and r.json["error"]
    assert client.get("/healthz").status_code == 200  # still serving


@pytest.mark.parametrize("body, code", [
    (multipart("other", "x.jpg", b"abc"), "missing_image"),
    (multipart("image", "empty.jpg", b""), "empty"),  # zero-byte file
    ((b"--nope\r\n\r\n", "multipart/form-data; boundary=zzz"), "missing_image"),
    ((b"", "multipart/form-data"), "missing_image"),  # no boundary at all
])
def test_bad_multipart(client, body, code):
    data, ctype = body
    r = client.post("/analyze", data=data, content_type=ctype)
    assert r.status_code == 400 and r.json["code"] == code


def test_data_url_and_urlsafe_base64_accepted(client):
    jpg = encode(np.zeros((20, 20, 3), np.uint8))
    for s in ("data:image/jpeg;base64," + b64(jpg),
              base64.urlsafe_b64encode(jpg).decode().rstrip("="),
              "\n".join(b64(jpg)[i:i + 76] for i in range(0, len(b64(jpg)), 76))):
        r = client.post("/analyze", json={"image": s})
        assert r.status_code == 200, r.json


@pytest.mark.parametrize("value, status", [("0", 200), ("false", 200), ("1", 200), ("maybe", 400)])
def test_annotate_param(client, value, status):
    r = client.post(f"/analyze?annotate={value}", json={"image": b64(encode(np.zeros((9, 9, 3), np.uint8)))})
    assert r.status_code == status
    if status == 400:
        assert r.json["code"] == "bad_param"
    else:
        assert ("image" in r.json) == (value == "1")


def test_body_over_limit_is_413_json():
    c = make_app(cfg_with(max_body_mb=0.05)).test_client()
    r = c.post("/analyze", json={"image": "A" * 80_000})
    assert r.status_code == 413
    assert r.json == {"error": "request body larger than web.max_body_mb = 0.05 MB", "code": "too_large"}
    data, ctype = multipart("image", "big.jpg", b"\xff" * 80_000)
    r = c.post("/analyze", data=data, content_type=ctype)
    assert r.status_code == 413 and r.json["code"] == "too_large"


@pytest.mark.parametrize("method, path, status, code", [
    ("GET", "/nope", 404, "not_found"),
    ("GET", "/analyze", 405, "method_not_allowed"),
    ("PUT", "/analyze", 405, "method_not_allowed"),
    ("POST", "/healthz", 405, "method_not_allowed"),
    ("DELETE", "/", 405, "method_not_allowed"),
    ("GET", "/static/nope.js", 404, "not_found"),
    ("GET", "/stream.mjpg", 404, "no_pipeline"),
])
def test_unknown_routes_and_methods_are_json(client, method, path, status, code):
    r = client.open(path, method=method)
    assert r.status_code == status
    assert r.is_json and r.json["code"] == code
    if status == 405:
        assert "Allow" in r.headers


def test_analyzer_bug_is_500_json_and_server_goes_on():
    class Broken:
        def analyze(self, image, conf=None):
            raise RuntimeError("boom")

    c = make_app(analyzer=Broken()).test_client()
    r = c.post("/analyze", json={"image": b64(encode(np.zeros((9, 9, 3), np.uint8)))})
    assert r.status_code == 500 and r.json == {"error": "internal error (logged on the server)",
                                               "code": "internal"}
    assert c.get("/healthz").status_code == 200


def test_decoder_bug_is_a_4xx_not_a_crash():
    def broken(data, **kw):
        raise ValueError("decoder bug")

    r = make_app(decode=broken).test_client().post("/analyze", data=b"x", content_type="image/png")
    assert r.status_code == 400 and r.json["code"] == "undecodable"


def test_image_error_codes_map_to_statuses():
    for code, status in [("too_many_pixels", 413), ("truncated", 400), ("unsupported", 415),
                         ("not_an_image", 400), ("something_new", 400)]:
        def dec(data, code=code, **kw):
            raise ImageError(f"refused: {code}", code)

        r = make_app(decode=dec).test_client().post("/analyze", data=b"x", content_type="image/png")
        assert (r.status_code, r.json) == (status, {"error": f"refused: {code}", "code": code})


def test_page_and_assets_are_served_without_cdn(client):
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in html
        assert client.get(asset).status_code == 200
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    assert 'src="/stream.mjpg"' not in html  # set by the script only when a pipeline runs
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]


def test_decoder_receives_configured_limits():
    seen = {}

    def dec(data, max_side, max_pixels):
        seen.update(max_side=max_side, max_pixels=max_pixels)
        return np.zeros((8, 8, 3), np.uint8)

    c = make_app(cfg_with(max_side=1234, max_pixels=5_000_000), decode=dec).test_client()
    assert c.post("/analyze", data=b"x", content_type="image/png").status_code == 200
    assert seen == {"max_side": 1234, "max_pixels": 5_000_000}


class RightToLeft:
    """Faces in the order a detector may give them: right to left."""

    def analyze(self, image, conf=None):
        h, w = image.shape[:2]
        a = Attributes("male", 0.8, 40.0, 35.0, 45.0, 0.4, 1)
        faces = tuple(FaceResult((w * x, h * 0.4, w * x + w * 0.1, h * 0.6), 0.9, a) for x in (0.8, 0.5, 0.1))
        return Analysis(faces, {"detect": 0.1, "attributes": 0.1})


def test_faces_are_numbered_left_to_right_in_json_and_image():
    c = make_app(analyzer=RightToLeft()).test_client()
    img = np.full((300, 1000, 3), 118, np.uint8)
    r = c.post("/analyze", data=encode(img, ".png"), content_type="image/png")
    xs = [f["box"][0] for f in r.json["faces"]]
    assert xs == [100, 500, 800]
    out = cv2.imdecode(np.frombuffer(base64.b64decode(r.json["image"]), np.uint8), cv2.IMREAD_COLOR)
    # the annotated image is the overlay drawn with the faces in left-to-right order (0 leftmost)
    from streamer.media.overlay import draw_faces
    ref = np.full((300, 1000, 3), 118, np.uint8)
    draw_faces(ref, RightToLeft().analyze(ref).faces[::-1])  # drawn in left-to-right order
    diff = np.abs(out.astype(int) - ref.astype(int)).mean()
    assert diff < 3, diff  # the image was drawn with the same left-to-right numbering


def _label_band_px(jpeg: bytes, box) -> int:
    """Height of the black label background just above ``box`` in the decoded image."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    x1, y1 = int(box[0]), int(box[1])
    rows = np.where(img[:y1, x1 + 2:x1 + 40].min(axis=(1, 2)) < 30)[0]  # black pixels: the label
    assert len(rows), "no label above the box"
    return int(rows.max() - rows.min() + 1)


def test_labels_scale_with_the_width_the_page_shows():
    c = make_app().test_client()
    big = encode(np.full((1500, 3000, 3), 118, np.uint8))
    plain = c.post("/analyze", data=big, content_type="image/jpeg").json
    sized = c.post("/analyze?view_width=600", data=big, content_type="image/jpeg").json
    k = 3000 / 600
    band_plain = _label_band_px(base64.b64decode(plain["image"]), plain["faces"][0]["box"])
    band_sized = _label_band_px(base64.b64decode(sized["image"]), sized["faces"][0]["box"])
    assert band_sized / k >= 12, band_sized / k  # >= 12 px tall where the page shows it
    assert band_sized > band_plain
    assert sized["faces"] == plain["faces"]  # only the drawing changes


@pytest.mark.parametrize("v", ["abc", "10", "100000", "-600", "6e2"])
def test_bad_view_width_is_400_naming_it(client, v):
    r = client.post(f"/analyze?view_width={v}", data=encode(np.zeros((9, 9, 3), np.uint8)),
                    content_type="image/jpeg")
    assert r.status_code == 400 and r.json["code"] == "bad_param" and r.json["param"] == "view_width"


# ---- auth ------------------------------------------------------------------------------

# With the token, each route answers what it answers without auth: an empty POST /analyze is
# 400 "empty", a process without a pipeline has no stream (404) -- the request got past auth.
@pytest.mark.parametrize("method, path, public, authorized", [
    ("GET", "/", True, 200), ("GET", "/static/app.js", True, 200), ("GET", "/healthz", True, 200),
    ("POST", "/analyze", False, 400), ("GET", "/api/status", False, 200),
    ("GET", "/metrics", False, 200), ("GET", "/stream.mjpg", False, 404),
])
def test_token_required_on_api_routes(method, path, public, authorized):
    c = make_app(cfg_with(token="s3cret")).test_client()
    r = c.open(path, method=method)
    if public:
        assert r.status_code == authorized
        return
    assert r.status_code == 401 and r.json["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert c.open(path, method=method, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = c.open(path, method=method, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == authorized, ok.data[:200]
    assert c.open(path, method=method).status_code == 401  # and the token is not remembered


def test_stream_token_in_query_only_for_the_stream():
    c = make_app(cfg_with(token="s3cret")).test_client()
    assert c.get("/stream.mjpg?access_token=s3cret").status_code == 404  # authorised, no pipeline
    assert c.get("/api/status?access_token=s3cret").status_code == 401


def test_no_token_configured_means_open(client):
    assert client.get("/api/status").status_code == 200
    assert client.get("/metrics").status_code == 200


# ---- status, health, metrics -----------------------------------------------------------

def test_status_without_pipeline(client):
    assert client.get("/api/status").json == {"pipeline": False, "camera": "camera"}
    h = client.get("/healthz")
    assert h.status_code == 200 and h.json["status"] == "ready" and h.json["pipeline"] is False


def test_status_and_health_with_pipeline():
    p = fake_pipeline()
    c = make_app(pipeline=p, mjpeg=LatestJpeg()).test_client()
    s = c.get("/api/status").json
    assert s["pipeline"] and s["running"] and s["stream"]
    assert (s["fps"], s["faces"], s["tracks"], s["counts"]) == (24.5, 2, 1, {"door": {"in": 3, "out": 1}})
    assert s["frames_dropped"] == 9 and s["source_up"] is True  # queue 4 + stale 5
    h = c.get("/healthz")
    assert h.status_code == 200 and h.json["source_connected"] is True

    p.source_up = False
    h = c.get("/healthz")
    assert h.status_code == 503 and h.json["status"] == "not_ready"
    assert "source disconnected, reconnecting" in h.json["reasons"]

    p.source_up = True
    p.last_frame_mono = time.monotonic() - 60
    h = c.get("/healthz")
    assert h.status_code == 503 and h.json["last_frame_age_s"] >= 60

    p.stop_event.set()
    h = c.get("/healthz")
    assert h.status_code == 503 and "pipeline stopped" in h.json["reasons"]


def test_health_before_first_frame_has_a_grace_period():
    p = fake_pipeline(last_frame_mono=None)
    c = make_app(pipeline=p).test_client()
    assert c.get("/healthz").status_code == 200
    p.started = time.monotonic() - 3600
    assert c.get("/healthz").status_code == 503


def test_metrics_read_pipeline_counters_at_scrape_time():
    p = fake_pipeline()
    c = make_app(pipeline=p).test_client()
    c.post("/analyze", json={"image": b64(encode(np.zeros((9, 9, 3), np.uint8)))})
    c.post("/analyze", data=b"nope", content_type="application/json")
    r = c.get("/metrics")
    assert r.status_code == 200 and r.mimetype == "text/plain"
    m = parse_metrics(r.get_data(as_text=True))
    assert metric(m, "streamer_frames_in_total") == 100
    assert metric(m, "streamer_frames_processed_total") == 90
    assert metric(m, "streamer_frames_dropped_total", reason="queue") == 4
    assert metric(m, "streamer_frames_dropped_total", reason="stale") == 5  # 9 in all, as the status
    assert metric(m, "streamer_fps") == 24.5
    assert metric(m, "streamer_faces") == 2 and metric(m, "streamer_tracks") == 1
    assert metric(m, "streamer_events_total", type="start") == 3
    assert metric(m, "streamer_sink_errors_total", sink="mqtt") == 7
    assert metric(m, "streamer_source_reconnects_total") == 2
    assert metric(m, "streamer_latency_seconds_count") == 5
    assert metric(m, "streamer_latency_seconds_bucket", le="0.025") == 1  # 12 ms
    assert metric(m, "streamer_latency_seconds_bucket", le="0.05") == 3  # + 30, 30
    assert metric(m, "streamer_latency_seconds_bucket", le="0.3") == 4
    assert metric(m, "streamer_latency_seconds_bucket", le="+Inf") == 5
    assert metric(m, "streamer_latency_seconds_sum") == pytest.approx(0.552)
    assert metric(m, "streamer_counted_people_total", name="door", direction="in") == 3
    assert metric(m, "streamer_analyze_requests_total") == 2
    assert metric(m, "streamer_analyze_errors_total", code="not_json") == 1
    assert metric(m, "streamer_analyze_seconds_count") == 1
    assert metric(m, "streamer_analyze_faces_total") == 1

    p.frames_in = 250  # read live, not copied at start
    m = parse_metrics(c.get("/metrics").get_data(as_text=True))
    assert metric(m, "streamer_frames_in_total") == 250


def test_metrics_without_pipeline_have_web_series_only(client):
    text = client.get("/metrics").get_data(as_text=True)
    assert "streamer_analyze_requests_total" in text and "streamer_frames_in_total" not in text


def test_each_request_is_logged_on_one_line(client, caplog):
    caplog.set_level(logging.INFO, logger="streamer.web.app")
    client.post("/analyze", json={"image": b64(encode(np.zeros((9, 9, 3), np.uint8)))})
    client.post("/analyze", data=b"{", content_type="application/json")
    client.get("/nope/../x")
    lines = [r.getMessage() for r in caplog.records if r.name == "streamer.web.app"]
    assert len(lines) == 3
    assert lines[0].startswith("127.0.0.1 POST /analyze 200 ") and lines[0].endswith("faces=1")
    assert " ms " in lines[0]
    assert lines[1].startswith("127.0.0.1 POST /analyze 400 ") and lines[1].endswith("code=not_json")
    assert " 404 " in lines[2]


# ---- the real decoder on hostile files -------------------------------------------------

@pytest.fixture
def real_client():
    return make_app(decode=real_decode()).test_client()


def _post_file(c, data: bytes, name="f.bin"):
    body, ctype = multipart("image", name, data, "application/octet-stream")
    return c.post("/analyze", data=body, content_type=ctype)


@pytest.mark.parametrize("make, status, code", [
    (lambda: b"", 400, "empty"),
    (lambda: b"plain text, not an image" * 10, 400, "not_an_image"),
    (lambda: encode(np.random.default_rng(1).integers(0, 255, (200, 200, 3), np.uint8))[:3000], 400, "truncated"),
    (lambda: encode(np.random.default_rng(2).integers(0, 255, (200, 200, 3), np.uint8), ".png")[:5000], 400, "truncated"),
    (lambda: bomb_png(), 413, "too_many_pixels"),
])
def test_hostile_files_refused(real_client, make, status, code):
    r = _post_file(real_client, make())
    assert (r.status_code, r.json["code"]) == (status, code), r.json
    assert real_client.get("/healthz").status_code == 200


def test_bomb_is_refused_from_its_header_never_inflated():
    import tracemalloc

    data = bomb_png()
    assert len(data) < 200_000
    c = make_app(decode=real_decode()).test_client()
    tracemalloc.start()
    try:
        r = c.post("/analyze", json={"image": b64(data)})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status_code == 413 and r.json["code"] == "too_many_pixels"
    # Inflated, 900 Mpx would take >= 900 MB in a numpy array (tracemalloc sees numpy's and
    # OpenCV's output buffers); refused from the header, the request stays within a few MB.
    assert peak < 50_000_000, f"peak {peak / 1e6:.0f} MB while refusing a bomb"


def test_oversized_image_is_downscaled_not_refused(real_client):
    img = np.full((400, 6000, 3), 200, np.uint8)
    r = _post_file(real_client, encode(img), "wide.jpg")
    assert r.status_code == 200, r.json
    assert (r.json["width"], r.json["height"]) == (5000, 333) or (
        r.json["width"] == 5000 and abs(r.json["height"] - 333) <= 1)


def test_animated_gif_uses_first_frame(real_client):
    r = _post_file(real_client, gif_two_frames(), "anim.gif")
    assert r.status_code == 200, r.json
    img = cv2.imdecode(np.frombuffer(base64.b64decode(r.json["image"]), np.uint8), cv2.IMREAD_COLOR)
    b, g_, rr = img[2, 2].astype(int)  # a corner away from the fake face box
    assert rr > 200 and b < 60  # red: the first frame


# ---- the real models ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_app():
    cfg = config_mod.load()
    return web.create_app(cfg, web.AnalyzerPool.build(cfg, 1), decode=real_decode())


def test_real_face_photo(real_app):
    c = real_app.test_client()
    r = c.post("/analyze", json={"image": b64(face_jpeg()), "filename": "face.jpg"})
    assert r.status_code == 200, r.json
    faces = r.json["faces"]
    assert len(faces) == 1
    f = faces[0]
    assert_box_on_the_crop(f["box"])
    assert f["gender"] in ("male", "female") and 0.5 <= f["gender_confidence"] <= 1
    assert 1 <= f["age"] <= 100 and "-" in f["age_range"]
    # the annotated image carries the overlay's green box
    img = cv2.imdecode(np.frombuffer(base64.b64decode(r.json["image"]), np.uint8), cv2.IMREAD_COLOR)
    green = (img[:, :, 1] > 200) & (img[:, :, 0] < 80) & (img[:, :, 2] < 80)
    assert green.sum() > 200


def test_same_answer_as_the_analyzer(real_app):
    """/analyze is a thin shell around Analyzer: same faces as calling it directly."""
    from streamer.core.analyze import Analyzer

    img = real_decode()(face_jpeg())
    direct = Analyzer(config_mod.load()).analyze(img)
    r = real_app.test_client().post("/analyze?annotate=0", data=face_jpeg(), content_type="image/jpeg")
    got = r.json["faces"]
    assert [f["box"] for f in got] == [[int(round(v)) for v in f.box] for f in direct.faces]
    assert [f["gender"] for f in got] == [f.attributes.gender for f in direct.faces]


def test_blank_image_has_no_faces(real_app):
    """(How fast /analyze answers is a bench figure: `python run.py bench --only web`.)"""
    c = real_app.test_client()
    r = c.post("/analyze", data=encode(np.full((480, 640, 3), 128, np.uint8)), content_type="image/jpeg")
    assert r.status_code == 200 and r.json["faces"] == []
    r = c.post("/analyze", data=encode(np.zeros((1, 1, 3), np.uint8), ".png"), content_type="image/png")
    assert r.status_code == 200 and r.json["faces"] == []


# ---- a real server on a free port ------------------------------------------------------

def test_real_server_bad_inputs_and_keeps_serving():
    app = make_app(cfg_with(max_body_mb=1.0), decode=real_decode())
    with running_server(app) as srv:
        cases = [
            (b"", {"Content-Type": "application/json"}, 400, "empty"),
            (b"{not json", {"Content-Type": "application/json"}, 400, "not_json"),
            (b'{"image": "%%%"}', {"Content-Type": "application/json"}, 400, "bad_base64"),
            (b"\x00" * 100, {"Content-Type": "image/png"}, 400, "not_an_image"),
            (b"{" + b"a" * 3_000_000, {"Content-Type": "application/json"}, 413, "too_large"),
            (bomb_png(), {"Content-Type": "image/png"}, 413, "too_many_pixels"),
        ]
        for body, headers, status, code in cases:
            st, h, data = request_to(srv, "POST", "/analyze", body, headers)
            assert st == status and h["content-type"] == "application/json", data[:200]
            assert json.loads(data)["code"] == code
        st, _, data = request_to(srv, "GET", "/missing")
        assert st == 404 and json.loads(data)["code"] == "not_found"
        st, _, data = request_to(srv, "DELETE", "/analyze")
        assert st == 405 and json.loads(data)["code"] == "method_not_allowed"
        body, ctype = multipart("image", "ok.jpg", encode(np.full((60, 80, 3), 50, np.uint8)))
        st, _, data = request_to(srv, "POST", "/analyze", body, {"Content-Type": ctype})
        assert st == 200 and len(json.loads(data)["faces"]) == 1
        assert request_to(srv, "GET", "/healthz")[0] == 200


def test_real_server_chunked_body_over_limit_is_413():
    app = make_app(cfg_with(max_body_mb=1.0))
    with running_server(app) as srv:
        payload = json.dumps({"image": b64(b"x" * 3_000_000)}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        chunks = (payload[i:i + 65536] for i in range(0, len(payload), 65536))
        conn.request("POST", "/analyze", body=chunks, headers={"Content-Type": "application/json"},
                     encode_chunked=True)
        r = conn.getresponse()
        assert r.status == 413 and json.loads(r.read())["code"] == "too_large"
        conn.close()
        small = json.dumps({"image": b64(encode(np.zeros((9, 9, 3), np.uint8)))}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.request("POST", "/analyze", body=iter([small[:10], small[10:]]),
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        assert conn.getresponse().status == 200
        conn.close()


def test_real_server_concurrent_requests_never_share_an_analyzer():
    fakes = [FakeAnalyzer(delay=0.01), FakeAnalyzer(delay=0.01)]
    app = make_app(analyzer=fakes)
    body = json.dumps({"image": b64(encode(np.zeros((32, 32, 3), np.uint8)))}).encode()
    statuses: list[int] = []
    lock = threading.Lock()

    def client_thread():
        for _ in range(10):
            st, _, _ = request_to(srv, "POST", "/analyze?annotate=0", body, {"Content-Type": "application/json"})
            with lock:
                statuses.append(st)

    with running_server(app) as srv:
        threads = [threading.Thread(target=client_thread) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert statuses == [200] * 80
    assert sum(f.calls for f in fakes) == 80
    assert all(f.overlaps == 0 for f in fakes)  # each analyzer served one request at a time
    assert all(f.calls > 0 for f in fakes)  # and both were used


def test_analysis_runs_on_the_pool_threads_not_on_request_threads():
    """OpenCV pays a set-up per new thread (putText ~50 ms): the work must stay on the pool's
    long-lived workers, whatever thread the WSGI server answers a connection on."""
    fake = FakeAnalyzer()
    body = json.dumps({"image": b64(encode(np.zeros((16, 16, 3), np.uint8)))}).encode()
    with running_server(make_app(analyzer=fake)) as srv:
        for _ in range(6):  # a new connection (so a new server thread) per request
            assert request_to(srv, "POST", "/analyze", body, {"Content-Type": "application/json"})[0] == 200
    assert fake.calls == 6 and len(fake.threads) == 1


def test_pool_timeout_is_503_busy_and_the_job_is_dropped():
    slow = FakeAnalyzer(delay=0.3)
    pool = web.AnalyzerPool([slow])
    img = np.zeros((8, 8, 3), np.uint8)
    try:
        first = threading.Thread(target=pool.run, args=(img, None))
        first.start()
        wait_until(lambda: slow.calls == 1, 10, "the first job running", poll=0.005)
        with pytest.raises(web.ApiError) as e:
            pool.run(img, None, timeout=0.05)
        assert (e.value.status, e.value.code) == (503, "busy")
        first.join(5)
        assert pool.run(img, 80).jpeg[:2] == b"\xff\xd8"
        assert slow.calls == 2  # the timed-out job was cancelled before it started
    finally:
        pool.close()


def test_pool_worker_exception_reaches_the_request():
    class Broken:
        def analyze(self, image, conf=None):
            raise ValueError("bad net")

    pool = web.AnalyzerPool([Broken()])
    try:
        with pytest.raises(ValueError, match="bad net"):
            pool.run(np.zeros((8, 8, 3), np.uint8), None)
        with pytest.raises(ValueError):  # the worker survives its job's exception
            pool.run(np.zeros((8, 8, 3), np.uint8), None)
    finally:
        pool.close()


def test_pool_makes_one_analyzer_per_thread_lazily_and_at_most_size():
    made: list[int] = []
    lock = threading.Lock()

    def factory():
        with lock:
            made.append(threading.get_ident())
        return FakeAnalyzer(delay=0.02)

    pool = web.AnalyzerPool(factory, size=2)
    try:
        assert made == []  # nothing loaded before the first job
        img = np.zeros((8, 8, 3), np.uint8)
        threads = [threading.Thread(target=pool.run, args=(img, None)) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert 1 <= len(made) <= 2 and len(set(made)) == len(made)  # one per worker thread
        pool.warm()  # the barrier puts one job on each of the 2 threads
        assert len(made) == 2 and len(set(made)) == 2
    finally:
        pool.close()
    with pytest.raises(web.ApiError) as e:  # closed: refused as busy, not a crash
        pool.run(np.zeros((8, 8, 3), np.uint8), None)
    assert e.value.status == 503


def test_pool_warm_surfaces_a_model_error():
    def broken():
        raise RuntimeError("model file is damaged")

    pool = web.AnalyzerPool(broken, size=1)
    try:
        with pytest.raises(RuntimeError, match="damaged"):
            pool.warm()
    finally:
        pool.close()


def test_server_is_waitress_with_keep_alive():
    with running_server(make_app()) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        for _ in range(3):  # three requests on one connection
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            assert r.status == 200 and json.loads(r.read())["status"] == "ready"
            assert r.getheader("Server") == "streamer"
        conn.close()


def test_shutdown_with_idle_keepalive_connections_is_bounded():
    srv = web.Server(make_app(), "127.0.0.1", 0).start()
    conns = []
    for _ in range(4):
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        c.request("GET", "/healthz")
        c.getresponse().read()
        conns.append(c)  # left open, idle
    t0 = time.monotonic()
    srv.shutdown()
    assert time.monotonic() - t0 < 10.0  # a hang trips this, not a slow machine
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
    for c in conns:
        c.close()


def test_shutdown_when_the_wake_up_pipe_is_gone_still_closes_the_port():
    """CI once saw EBADF from waitress's trigger at shutdown: the server must still let go of
    its port and connections instead of raising out of shutdown."""
    srv = web.Server(make_app(), "127.0.0.1", 0).start()
    assert request_to(srv, "GET", "/healthz")[0] == 200
    trig = srv._srv.trigger
    os.close(trig.trigger)  # the write end the shutdown would wake the loop through
    trig._fds = [fd for fd in trig._fds if fd != trig.trigger]
    t0 = time.monotonic()
    srv.shutdown()
    assert time.monotonic() - t0 < 10.0  # a hang trips this, not a slow machine
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()


def test_metrics_parse_uses_the_exposition_format():
    text = ('# HELP a_total x\n# TYPE a_total counter\na_total{camera="c",k="v"} 3.0\n'
            '# TYPE h histogram\nh_bucket{le="0.5"} 1.0\nh_bucket{le="+Inf"} 2.0\nh_count 2.0\nh_sum 1.5\n')
    m = parse_metrics(text)
    assert metric(m, "a_total", camera="c") == 3 and metric(m, "a_total", camera="d") is None
    assert metric(m, "h_bucket", le="+Inf") == 2 and metric(m, "h_sum") == 1.5


def test_real_server_mjpeg_stream_and_shutdown():
    mj = LatestJpeg()
    stop = threading.Event()
    frame = np.zeros((48, 64, 3), np.uint8)

    def producer():  # stands in for the pipeline's output stage
        i = 0
        while not stop.wait(0.02):
            if mj.wanted:
                frame[:] = i % 255
                mj.put(frame)
                i += 1

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    app = make_app(mjpeg=mj)
    try:
        with running_server(app) as srv:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            conn.request("GET", "/stream.mjpg")
            r = conn.getresponse()
            assert r.status == 200
            assert r.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
            jpegs = []
            buf = b""
            while len(jpegs) < 3:
                buf += r.read1(65536)
                while True:
                    start = buf.find(b"\xff\xd8")
                    end = buf.find(b"\xff\xd9", start)
                    if start < 0 or end < 0:
                        break
                    jpegs.append(buf[start:end + 2])
                    buf = buf[end + 2:]
            imgs = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
            assert all(i is not None and i.shape == (48, 64, 3) for i in imgs)
            assert len({int(i.mean()) for i in imgs}) == 3  # three different frames, newest first
            conn.close()
    finally:
        stop.set()
        t.join(2)


def test_server_shutdown_ends_an_open_stream_quickly():
    mj = LatestJpeg()
    mj.put(np.zeros((8, 8, 3), np.uint8))
    app = make_app(mjpeg=mj)
    srv = web.Server(app, "127.0.0.1", 0).start()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/stream.mjpg")
    r = conn.getresponse()
    assert r.status == 200 and b"\xff\xd8" in r.read1(65536)
    t0 = time.monotonic()
    srv.shutdown()
    rest = r.read()  # returns when the server ends the stream (a hang would not)
    assert time.monotonic() - t0 < 10.0  # a hang trips this, not a slow machine
    # The chunked body was terminated (no IncompleteRead above) and, newest frames only, the
    # one frame already sent is not sent again.
    assert r.isclosed() and rest == b"", rest[:200]
    conn.close()


def test_port_in_use_is_a_clear_error():
    app = make_app()
    with running_server(app) as srv:
        with pytest.raises(Exception) as e:
            web.Server(app, "127.0.0.1", srv.port)
        assert f"web.port {srv.port}" in str(e.value)


def test_real_server_real_models_face_photo():
    cfg = config_mod.load()
    app = web.create_app(cfg, web.AnalyzerPool.build(cfg, 1), decode=real_decode())
    with running_server(app) as srv:
        body, ctype = multipart("file", "face.jpg", face_jpeg())
        st, _, data = request_to(srv, "POST", "/analyze", body, {"Content-Type": ctype})
        assert st == 200
        assert len(json.loads(data)["faces"]) == 1
        st, _, data = request_to(srv, "GET", "/metrics")
        m = parse_metrics(data.decode())
        assert metric(m, "streamer_analyze_faces_total") == 1


@pytest.mark.slow
def test_stream_serve_wiring_with_a_real_pipeline():
    """What ``run.py stream --serve`` does: real pipeline on a real video, server beside it."""
    from streamer.runtime import wiring as app_mod

    video = data_path("video", "face_recognition__short_hamilton_clip.mp4")
    cfg = config_mod.load(None, {"source.uri": str(video), "source.loop": True,
                                 "source.realtime": True, "web.port": free_port()})
    mj = LatestJpeg()
    pipeline = app_mod.build_pipeline(cfg, mjpeg=mj)
    done = threading.Event()
    runner = threading.Thread(target=lambda: (pipeline.run(), done.set()), daemon=True)
    runner.start()
    server = web.start_background(cfg, pipeline=pipeline, mjpeg=mj)
    try:
        # the first MJPEG frame proves frames flow through inference and the output stage
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/stream.mjpg")
        r = conn.getresponse()
        buf = b""
        while b"\xff\xd9" not in buf:
            buf += r.read1(65536)
        conn.close()
        jpeg = buf[buf.index(b"\xff\xd8"):buf.index(b"\xff\xd9") + 2]
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (360, 640, 3)
        st, _, data = request_to(server, "GET", "/healthz")
        assert st == 200, data
        st, _, data = request_to(server, "GET", "/metrics")
        m = parse_metrics(data.decode())
        assert metric(m, "streamer_frames_processed_total") > 0
        assert metric(m, "streamer_latency_seconds_count") > 0
        s = json.loads(request_to(server, "GET", "/api/status")[2])
        assert s["pipeline"] and s["running"] and s["frames_processed"] > 0
        pipeline.stop()
        assert done.wait(10)
        st, _, data = request_to(server, "GET", "/healthz")
        assert st == 503 and "pipeline stopped" in json.loads(data)["reasons"]
    finally:
        pipeline.stop()
        server.shutdown()


def test_run_py_serve_end_to_end(tmp_path):
    """``python run.py serve --port P``: serves, logs one line per request, stops on SIGTERM."""
    import signal
    import subprocess
    import sys

    port = free_port()
    cfg = tmp_path / "web.yaml"
    cfg.write_text("web:\n  token: t0ken\n")
    proc = subprocess.Popen([sys.executable, "run.py", "serve", "--config", str(cfg), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # printed once the models are loaded and the port is bound
        assert line.strip() == f"serving on http://127.0.0.1:{port}", (line, proc.stderr.read()[-2000:])
        srv = SimpleNamespace(port=port)
        assert request_to(srv, "GET", "/healthz")[0] == 200
        assert request_to(srv, "GET", "/")[0] == 200
        st, _, data = request_to(srv, "POST", "/analyze", face_jpeg(), {"Content-Type": "image/jpeg"})
        assert st == 401 and json.loads(data)["code"] == "unauthorized"
        st, _, data = request_to(srv, "POST", "/analyze", face_jpeg(),
                                 {"Content-Type": "image/jpeg", "Authorization": "Bearer t0ken"})
        assert st == 200 and len(json.loads(data)["faces"]) == 1
        st, _, data = request_to(srv, "POST", "/analyze", b"\x00junk",
                                 {"Content-Type": "image/png", "Authorization": "Bearer t0ken"})
        assert st == 400 and json.loads(data)["code"] == "not_an_image"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        err = proc.stderr.read()
        assert "127.0.0.1 GET /healthz 200 " in err
        assert "127.0.0.1 POST /analyze 200 " in err and "faces=1" in err
        assert "127.0.0.1 POST /analyze 400 " in err and "code=not_an_image" in err
        assert "Traceback" not in err and "Debugger" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
