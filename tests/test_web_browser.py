"""The page in a real headless Chromium, driven through chromedriver's W3C WebDriver HTTP
protocol with urllib (no selenium dependency), against a real server on a free port.

Screenshots go to ``test-artifacts/`` (gitignored) so a person can look at what the page shows.
Without chromium or chromedriver: a skip naming the binary, a failure under CI=true (conftest).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, require_binary, video_path
from streamer import config as config_mod
from streamer.web import server as web
from streamer.media.output import LatestJpeg
from helpers.web_fixtures import (assert_box_on_the_crop, encode, face_image,
                      fake_pipeline, free_port, make_app, real_decode, running_server)

ARTIFACTS = ROOT / "test-artifacts"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # W3C WebDriver element reference key
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1300"]



class WebDriverError(Exception):
    pass


class Browser:
    """A minimal W3C WebDriver client: just what these tests use."""

    def __init__(self, base: str, session: str):
        self.base = base
        self.session = session

    def call(self, method: str, path: str, body=None, timeout: float = 60.0):
        url = f"{self.base}/session/{self.session}{path}" if self.session else self.base + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise WebDriverError(f"{method} {path}: {e.code} {e.read()[:500]!r}") from None

    def get(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        found = self.call("POST", "/element", {"using": "css selector", "value": css})
        assert isinstance(found, dict) and ELEMENT in found, f"{css}: {found!r}"
        return found[ELEMENT]

    def send_file(self, css: str, path: Path) -> None:
        self.call("POST", f"/element/{self.find(css)}/value", {"text": str(path)})

    def js(self, script: str, *args):
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script: str, *args):
        return self.call("POST", "/execute/async", {"script": script, "args": list(args)})

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("GET", "/screenshot")))
        return path


# Resolves when the predicate (a JS expression over `document`) holds, or with null after the
# timeout: a MutationObserver wakes on DOM changes, so there is no polling interval to tune.
WAIT_FOR = """
const [expr, ms, done] = arguments;
const test = new Function("return (" + expr + ");");
const check = () => { try { return test(); } catch (e) { return false; } };
if (check()) { done(true); return; }
const obs = new MutationObserver(() => { if (check()) { obs.disconnect(); done(true); } });
obs.observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
setTimeout(() => { obs.disconnect(); done(check() || null); }, ms);
"""


def wait_for(b: Browser, expr: str, timeout_s: float = 20.0) -> bool:
    return bool(b.js_async(WAIT_FOR, expr, int(timeout_s * 1000)))


@pytest.fixture(scope="module")
def browser():
    # skip locally / fail under CI=true, naming the binary (conftest.require_binary)
    chromium = require_binary("chromium", "chromium-browser", "google-chrome", package="chromium")
    chromedriver = require_binary("chromedriver", package="chromium-driver")
    port = free_port()
    profile = tempfile.mkdtemp(prefix="streamer-chromium-")
    drv = subprocess.Popen([chromedriver, f"--port={port}"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        # chromedriver prints one line when it listens; read it instead of sleeping.
        ready = threading.Event()

        def watch():
            for line in drv.stdout:
                if "started successfully" in line:
                    ready.set()

        threading.Thread(target=watch, daemon=True).start()
        assert ready.wait(20), "chromedriver did not start within 20 s"
        base = f"http://127.0.0.1:{port}"
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium,
                                   "args": CHROME_FLAGS + [f"--user-data-dir={profile}"]}}}}
        session = Browser(base, "").call("POST", "/session", caps)["sessionId"]
        b = Browser(base, session)
        b.call("POST", "/timeouts", {"script": 60000, "pageLoad": 30000})
        yield b
        try:
            b.call("DELETE", "")
        except Exception:
            pass
    finally:
        drv.terminate()
        try:
            drv.wait(10)
        except subprocess.TimeoutExpired:
            drv.kill()
        shutil.rmtree(profile, ignore_errors=True)


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
        idx, gender, conf, age, rng, box, score = rows[0]
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

