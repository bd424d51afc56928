"""Headless Chromium driven through chromedriver's W3C WebDriver HTTP protocol with urllib
(no selenium dependency): the ``Browser`` client, ``wait_for`` and the ``start_browser``
context manager behind the browser tests' fixtures. Screenshots go to ``ARTIFACTS``
(test-artifacts/, gitignored) so a person can look at what the pages show."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from conftest import ROOT, require_binary
from helpers.web_fixtures import free_port

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


@contextmanager
def start_browser():
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




def click_at(b: Browser, css: str, fx: float, fy: float) -> None:
    """A real mouse click (W3C actions) at fraction (fx, fy) of the element's box."""
    # fully in view first: WebDriver's origin is the element's in-view centre
    rect = b.js("const e = document.querySelector(arguments[0]); e.scrollIntoView({block: 'center'});"
                "const r = e.getBoundingClientRect(); return [r.width, r.height];", css)
    dx, dy = int((fx - 0.5) * rect[0]), int((fy - 0.5) * rect[1])  # offsets from the centre
    b.call("POST", "/actions", {"actions": [{
        "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
        "actions": [{"type": "pointerMove", "duration": 0, "origin": {ELEMENT: b.find(css)}, "x": dx, "y": dy},
                    {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0}]}]})
    b.call("DELETE", "/actions")
