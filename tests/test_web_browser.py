"""The page in a real headless Chromium, driven through chromedriver's W3C WebDriver HTTP
protocol with urllib (no selenium dependency), against a real server on a free port.

Screenshots go to ``test-artifacts/`` (gitignored) so a person can look at what the page shows.
Without chromium or chromedriver: a skip naming the binary, a failure under CI=true (conftest).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from conftest import video_path
from streamer import config as config_mod
from streamer.web import server as web
from streamer.media.output import LatestJpeg
from helpers.chromium import ARTIFACTS, Browser, start_browser, wait_for
from helpers.web_fixtures import (assert_box_on_the_crop, encode, face_image,
                      fake_pipeline, free_port, make_app, real_decode, running_server)


@pytest.fixture(scope="module")
def browser():
    with start_browser() as b:
        yield b


def _face_table(b: Browser) -> list[list[str]]:
    return b.js("return [...document.querySelectorAll('#faces tbody tr')]"
                ".map(r => [...r.cells].map(c => c.textContent));")


def test_upload_real_face_photo_shows_it_in_the_table(browser, tmp_path):
    photo = tmp_path / "face.jpg"
    photo.write_bytes(encode(face_image((640, 480))))
    cfg = config_mod.load()
    app = web.create_app(cfg, web.AnalyzerPool.build(cfg, 1), decode=real_decode())
    with running_server(app) as srv:
        browser.get(srv.url + "/")
        assert wait_for(browser, "document.getElementById('live-none') && "
                                 "!document.getElementById('live-none').hidden")
        browser.send_file("#file", photo)
        assert wait_for(browser, "document.body.dataset.analyze === 'done'", 30), \
            browser.js("return document.getElementById('analyze-status').textContent")
        rows = _face_table(browser)
        assert len(rows) == 1, rows
        idx, gender, conf, age, rng, box, score, note = rows[0]
        assert idx == "0" and note == ""  # known face: no note
        assert gender in ("male", "female")
        assert conf.endswith("%") and 50 <= int(conf[:-1]) <= 100
        assert 1 <= float(age) <= 100 and "-" in rng
        assert_box_on_the_crop([int(v) for v in box.split(",")])
        # the annotated image really loaded (decoded by the browser, full size)
        assert browser.js("const i = document.getElementById('result-img');"
                          "return i.complete && i.naturalWidth;") == 640
        assert "1 face" in browser.js("return document.getElementById('result-caption').textContent")
        shot = browser.screenshot(ARTIFACTS / "web_page.png")
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_without_pipeline_and_a_bad_upload(browser, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"this is not a picture at all" * 20)
    app = make_app(decode=real_decode())
    with running_server(app) as srv:
        browser.get(srv.url + "/")
        assert wait_for(browser, "!document.getElementById('live-none').hidden")
        assert browser.js("return document.getElementById('live').hidden") is True
        assert "No pipeline runs" in browser.js("return document.getElementById('live-none').textContent")
        browser.send_file("#file", bad)
        assert wait_for(browser, "document.body.dataset.analyze === 'error'")
        msg = browser.js("return document.getElementById('analyze-status').textContent")
        assert "image" in msg.lower()  # the server's one-line reason, shown as is
        assert _face_table(browser) == []


def test_live_panel_with_a_running_stream(browser):
    """Live panel against a stand-in pipeline (stats) and a real LatestJpeg fed with frames."""
    mj = LatestJpeg()
    stop = threading.Event()
    pipe = fake_pipeline()
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[60:180, 100:220] = (0, 255, 0)

    def producer():
        while not stop.wait(0.04):
            if mj.wanted:
                mj.put(frame)
                pipe.last_frame_mono = time.monotonic()

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    try:
        with running_server(make_app(pipeline=pipe, mjpeg=mj)) as srv:
            browser.get(srv.url + "/")
            assert wait_for(browser, "!document.getElementById('live').hidden && "
                                     "document.getElementById('s-fps').textContent === '24.5'")
            assert wait_for(browser, "document.getElementById('live-img').naturalWidth === 320", 20)
            text = {k: browser.js(f"return document.getElementById('s-{k}').textContent")
                    for k in ("faces", "tracks", "counts", "source")}
            assert text == {"faces": "2", "tracks": "1", "counts": "door: 3 / 1", "source": "connected"}
            browser.screenshot(ARTIFACTS / "web_live_fake.png")
            browser.get("about:blank")  # closes the MJPEG connection before the server stops
    finally:
        stop.set()
        t.join(2)


@pytest.mark.slow
def test_live_panel_with_a_real_pipeline(browser):
    """``run.py stream --serve`` wiring: a real pipeline on a real video, looped, in-process."""
    from streamer.runtime import wiring as app_mod

    video = video_path("face_recognition__short_hamilton_clip.mp4")
    cfg = config_mod.load(None, {"source.uri": str(video), "source.loop": True, "source.realtime": True,
                                 "web.port": free_port()})
    mj = LatestJpeg()
    pipeline = app_mod.build_pipeline(cfg, mjpeg=mj)
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    server = web.start_background(cfg, pipeline=pipeline, mjpeg=mj)
    try:
        browser.get(server.url + "/")
        assert wait_for(browser, "!document.getElementById('live').hidden", 20)
        assert wait_for(browser, "document.getElementById('live-img').naturalWidth > 0", 30)
        assert wait_for(browser, "parseFloat(document.getElementById('s-fps').textContent) > 0", 20)
        browser.screenshot(ARTIFACTS / "web_live.png")
        browser.get("about:blank")
    finally:
        pipeline.stop()
        runner.join(10)
        server.shutdown()



class SideBySideAnalyzer:
    """Three faces returned right to left (as a detector may order them); the middle one's
    attributes unknown, with the reason."""

    def analyze(self, image, conf=None):
        from streamer.core.analyze import Analysis
        from streamer.types import Attributes, FaceResult

        h, w = image.shape[:2]
        known = Attributes("female", 0.91, 31.2, 25.0, 38.0, 0.4, 1)
        unknown = Attributes(None, None, None, None, None, None, 0, "face too small (18 px < 24 px)")
        boxes = [(0.7, known), (0.4, unknown), (0.1, known)]
        faces = tuple(FaceResult((w * x, h * 0.3, w * x + w * 0.15, h * 0.6), 0.9, a) for x, a in boxes)
        return Analysis(faces, {"detect": 0.1, "attributes": 0.1})


def test_result_numbers_faces_left_to_right_explains_unknown_and_downloads(browser, tmp_path):
    photo = tmp_path / "group.jpg"
    photo.write_bytes(encode(np.full((900, 2400, 3), 118, np.uint8)))
    with running_server(make_app(analyzer=SideBySideAnalyzer(), decode=real_decode())) as srv:
        browser.get(srv.url + "/")
        browser.send_file("#file", photo)
        assert wait_for(browser, "document.body.dataset.analyze === 'done'", 30)
        rows = _face_table(browser)
        assert [r[0] for r in rows] == ["0", "1", "2"]
        xs = [int(r[5].split(",")[0]) for r in rows]
        assert xs == sorted(xs) and xs[0] == 240  # left to right
        assert rows[1][1] == "unknown" and rows[1][7] == "unknown: face too small (18 px < 24 px)"
        assert rows[0][7] == "" and rows[2][7] == ""
        dl = browser.js("const a = document.getElementById('result-download');"
                        "return [a.hidden, a.download, a.href.slice(0, 23), a.href.length]")
        assert dl[0] is False and dl[1] == "annotated-group.jpg"
        assert dl[2] == "data:image/jpeg;base64," and dl[3] > 1000
        # the labels were sized for the width the page shows the image at
        shown = browser.js("return document.getElementById('result-img').clientWidth")
        assert 0 < shown < 2400
        browser.screenshot(ARTIFACTS / "web_result_numbered.png")
