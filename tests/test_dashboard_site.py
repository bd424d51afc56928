"""The dashboard end to end: ``run.py site`` with real camera processes (real models, the real
SQLite store, the real web server) in real headless Chromium, on clips in which real faces
(UTKFace dev crops) walk across a real background frame on known paths, looped so crossings
keep happening.

The site (one run shared by the module): ``door`` counts a vertical line ``entrance`` across
its three walking lanes (the upper two left->right = ``in``, the lower right->left = ``out``)
and has an unreachable MQTT broker; ``desk`` walks the same way but its only line, ``corner``, lies
where nobody walks; ``gate``'s source file does not exist.

- the grid shows door and desk running with non-blank, changing snapshots and fps > 0;
- the counts chart, once the store holds crossings, shows per hour exactly what /api/counts
  says for that camera, line and day, and the CSV link returns the same numbers;
- the editor: a line drawn with real clicks on desk's snapshot, named and saved, is in the
  config file (old file kept as .bak), desk restarts (new pid), and the next crossings are
  ``cross`` events of the new line, in the direction the line was drawn;
- a degenerate zone from the editor is refused (400, the page says why), the file untouched;
- gate is ``down`` with its reason on the page while the others run; /healthz is 503 naming
  gate and door's MQTT link. (The same states through ``Site`` directly, with backoff and
  hang detection: tests/test_site_states.py.)

Screenshots: test-artifacts/site_e2e_{grid,chart,editor_before,editor_after,editor_refused}.png.
The RSS of the site and camera processes is written to test-artifacts/site_e2e_rss.json (a
measurement, not asserted). Waits are bounded only against hangs; nothing asserts a duration.
"""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from bench.scenes import COUNT_FEMALE, COUNT_MALE
from conftest import ROOT, data_path, require_binary
from helpers import face_scene
from helpers.chromium import ARTIFACTS, click_at, start_browser, wait_for
from helpers.web_fixtures import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# The scene: 640x360 at 10 fps; three faces of 100 px walk at the same time in three lanes
# (no overlap): the upper two left -> right, the lower one right -> left (2 in : 1 out, so a
# chart that mixed up in and out would show), then 3 s of empty background so tracks end.
W, H, FPS, FACE, SPEED = 640, 360, 10.0, 100, 8.0
LANES = (60, 180, 300)
DIRECTIONS = ("in", "in", "out")  # per lane, across a line drawn downwards through the middle
GAP_FRAMES = 30
ENTRANCE = [[0.5, 0.0], [0.5, 1.0]]  # drawn downwards: left -> right is "in"
CORNER = [[0.02, 0.95], [0.2, 0.95]]  # below both lanes: nobody crosses it
START_S, STEP_S, RESTART_S, CROSS_S = 240, 0.5, 180, 120  # bounds against hangs only


def _clip(out: Path, faces_dir: Path, bg: np.ndarray, crops: tuple[str, str, str]) -> Path:
    left, right = 20 + FACE / 2, W - 20 - FACE / 2
    walkers = [face_scene.Walker(crop, face_scene.line_path(*((left, right) if d == "in" else (right, left)),
                                                            y, SPEED), 0, FACE)
               for crop, y, d in zip(crops, LANES, DIRECTIONS)]
    face_scene.write_clip(out, faces_dir, bg, walkers, FPS, frames=max(w.end for w in walkers) + GAP_FRAMES)
    return out


class SiteRun:
    def __init__(self, tmp: Path, proc: subprocess.Popen, cfg: Path, base: str):
        self.tmp, self.proc, self.cfg, self.base = tmp, proc, cfg, base

    def request(self, path: str, method: str = "GET", body=None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get(self, path: str):
        try:
            status, body = self.request(path)
        except OSError:
            return None
        return json.loads(body) if status == 200 else None

    def cameras(self) -> dict:
        return {c["name"]: c for c in self.get("/api/cameras") or []}

    def stderr_tail(self) -> str:
        """The site's log without the web access lines, and what /api/cameras says now."""
        text = (self.tmp / "stderr.txt").read_text(errors="replace").splitlines()
        quiet = "\n".join(ln for ln in text if "streamer.web.app:" not in ln)[-3000:]
        return quiet + "\n--- /api/cameras ---\n" + json.dumps(self.get("/api/cameras"))


def _wait(pred, timeout: float, what: str, site: SiteRun | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        if site is not None and site.proc.poll() is not None:
            raise AssertionError(f"the site exited ({site.proc.returncode}) while waiting for {what}:\n"
                                 + site.stderr_tail())
        time.sleep(STEP_S)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         + (f"\n--- site stderr ---\n{site.stderr_tail()}" if site else ""))


def _rss(pid: int) -> dict | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kb = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M))
    return {"rss_mb": round(int(kb["VmRSS"]) / 1024, 1), "peak_mb": round(int(kb["VmHWM"]) / 1024, 1)}


def _measure_rss(site: SiteRun) -> None:
    """Report (not assert): RSS now and peak RSS of the site process and each camera's."""
    got = {"site": _rss(site.proc.pid)}
    for name, c in site.cameras().items():
        if c.get("pid"):
            got[f"camera {name}"] = dict(_rss(c["pid"]) or {}, status=c["status"])
    got["note"] = "VmRSS / VmHWM from /proc after the module's tests, 640x360 clips at 10 fps"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "site_e2e_rss.json").write_text(json.dumps(got, indent=2) + "\n")
    print("\nRSS:", json.dumps(got))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    # Chromium first (skip locally / fail under CI=true, naming it) before a minute of site start-up
    require_binary("chromium", "chromium-browser", "google-chrome", package="chromium")
    require_binary("chromedriver", package="chromium-driver")
    faces_dir = data_path("agegender", "utkface_dev")
    bg = face_scene.background(data_path("video", "opencv__vtest_PETS09-S2L1_x264.mp4"), (W, H))
    tmp = tmp_path_factory.mktemp("site_e2e")
    door = _clip(tmp / "door.mp4", faces_dir, bg, (COUNT_FEMALE[0], COUNT_MALE[0], COUNT_FEMALE[1]))
    desk = _clip(tmp / "desk.mp4", faces_dir, bg, (COUNT_MALE[1], COUNT_FEMALE[2], COUNT_MALE[2]))
    port = free_port()
    dead = free_port()  # bound and released: nobody listens there
    cams = {
        "door": {"source": {"uri": str(door), "loop": True, "realtime": True},
                 "counting": {"lines": [{"name": "entrance", "points": ENTRANCE}]},
                 "mqtt": {"enabled": True, "url": f"mqtt://127.0.0.1:{dead}", "spool_dir": str(tmp / "spool")}},
        "desk": {"source": {"uri": str(desk), "loop": True, "realtime": True},
                 "counting": {"lines": [{"name": "corner", "points": CORNER}]}},
        "gate": {"source": {"uri": str(tmp / "no-such-clip.mp4")}},
    }
    cfg = tmp / "site.yaml"
    cfg.write_text(yaml.safe_dump({
        "counting": {"state_dir": "state", "summary_interval_s": 0, "reset": "never"},
        "store": {"path": "data/events.sqlite"},
        "web": {"host": "127.0.0.1", "port": port}, "cameras": cams}, sort_keys=False))
    err = open(tmp / "stderr.txt", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "site", "--config", str(cfg)],
                            cwd=tmp, stdout=subprocess.DEVNULL, stderr=err)
    run = SiteRun(tmp, proc, cfg, f"http://127.0.0.1:{port}")
    def both_running():
        c = run.cameras()
        for n in ("door", "desk"):
            if c and c[n]["status"] == "down" and c[n]["restarts"] >= 3:  # it will not get better
                raise AssertionError(f"camera {n} down after {c[n]['restarts']} restarts: {c[n]['reason']}")
        return c and all(c[n]["status"] == "running" and c[n]["last_frame_age_s"] is not None
                         for n in ("door", "desk"))
    try:
        _wait(both_running, START_S, "door and desk running", run)
        yield run
        _measure_rss(run)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0, run.stderr_tail()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        err.close()


@pytest.fixture(scope="module")
def browser(site):
    with start_browser() as b:
        b.get(site.base + "/dashboard")
        assert wait_for(b, "document.body.dataset.cameras === '3'", 30)
        yield b


def _decode(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, f"not an image ({len(data)} bytes)"
    return img


def _snapshot(site: SiteRun, name: str) -> np.ndarray:
    status, body = site.request(f"/api/cameras/{name}/snapshot.jpg")
    assert status == 200, body[:200]
    return _decode(body)


# ---- 1. the grid ---------------------------------------------------------------------------

def test_grid_shows_both_cameras_live(site, browser):
    b = browser
    tile = "document.querySelector('#grid .tile[data-name=' + {} + ']')"
    for name in ("door", "desk"):
        t = tile.format(json.dumps(name))
        assert wait_for(b, f"{t}.dataset.status === 'running' && {t}.querySelector('img').dataset.loaded === '1'"
                           f" && parseFloat({t}.querySelector('.fps').textContent) > 0", 60), \
            b.js(f"return {t}.textContent")
        assert re.search(r"\b\d+\.\d fps", b.js(f"return {t}.querySelector('.fps').textContent"))
        # the snapshot is a real frame (a real background and faces), not a blank image ...
        first = _snapshot(site, name)
        assert first.shape[:2] == (H, W) and float(first.std()) > 20, (first.shape, first.std())
        # ... and live: a later one differs (the faces moved)
        _wait(lambda: float(np.abs(_snapshot(site, name).astype(np.int16) - first).mean()) > 1.0, 30,
              f"a new frame from {name}", site)
    shot = _decode(b.screenshot(ARTIFACTS / "site_e2e_grid.png").read_bytes())
    dpr = b.js("return window.devicePixelRatio") or 1
    for name in ("door", "desk"):  # what the page shows in the tile is not blank either
        x, y, w, h = b.js("const r = document.querySelector('#grid .tile[data-name=' + arguments[0] + '] img')"
                          ".getBoundingClientRect(); return [r.x, r.y, r.width, r.height];", name)
        assert w > 50 and h > 30, (name, w, h)
        region = shot[int(y * dpr):int((y + h) * dpr), int(x * dpr):int((x + w) * dpr)]
        assert region.size and float(region.std()) > 20, (name, region.shape, region.std() if region.size else None)


# ---- 2. the counts chart -------------------------------------------------------------------

def _hour_index(start: str, since: float) -> int:
    return int((datetime.fromisoformat(start).timestamp() - since) // 3600)


def test_chart_equals_the_store_and_csv(site, browser):
    b = browser
    now = datetime.now()
    since = datetime(now.year, now.month, now.day).timestamp()

    def door_counts():
        s = site.get(f"/api/counts?camera=door&line=entrance&bucket=hour&since={since}&until={since + 86400}")
        tin, tout = (sum(r[d] for r in s["series"]) for d in ("in", "out")) if s else (0, 0)
        return tin > tout >= 1 and s  # 2 in : 1 out per loop
    _wait(door_counts, CROSS_S, "crossings of door/entrance in the store (more in than out)", site)
    crosses = site.get("/api/events?camera=door&type=cross&limit=50")["events"]
    assert crosses and {e["line"] for e in crosses} == {"entrance"}

    # choose door / entrance in the page (the line list comes from the cameras' counts)
    b.js("delete document.getElementById('chart-hours').dataset.drawn;"
         "const c = document.getElementById('c-camera'); c.value = 'door'; c.dispatchEvent(new Event('change'));")
    assert wait_for(b, "document.getElementById('chart-hours').dataset.drawn", 30)
    assert wait_for(b, "[...document.getElementById('c-line').options].some(o => o.value === 'entrance')", 30)
    redraw = ("const s = document.getElementById('chart-hours'); delete s.dataset.drawn;"
              "const l = document.getElementById('c-line'); l.value = 'entrance';"
              "l.dispatchEvent(new Event('change'));")
    b.js(redraw)
    assert wait_for(b, "document.getElementById('chart-hours').dataset.drawn", 30)
    q = b.js("return document.getElementById('c-csv').href").split("?", 1)[1]
    for _ in range(20):
        # The clips keep crossing: read the store before and after the page draws, and compare
        # only when nothing was added in between (counts only grow).
        before = site.get("/api/counts?" + q)
        b.js(redraw)
        assert wait_for(b, "document.getElementById('chart-hours').dataset.drawn", 30)
        href = b.js("return document.getElementById('c-csv').href")
        assert href.split("?", 1)[1] == q, (href, q)
        bars = b.js("return [...document.querySelectorAll('#chart-hours rect')].map(r => "
                    "[r.getAttribute('class'), +r.dataset.value])")
        mix = b.js("const m = id => Object.fromEntries([...document.querySelectorAll('#' + id + ' rect')]"
                   ".map(r => [r.dataset.key, +r.dataset.value])); return [m('chart-gender'), m('chart-age')];")
        totals = b.js("const s = document.getElementById('chart-hours');"
                      "return [+s.dataset.totalIn, +s.dataset.totalOut];")
        csv_text = b.js_async("fetch(arguments[0]).then(r => r.text()).then(arguments[1])", href)
        after = site.get("/api/counts?" + q)
        if before == after:
            break
    else:
        pytest.fail("the store changed during every one of 20 redraws")
    assert "camera=door" in q and "line=entrance" in q and "bucket=hour" in q, q
    assert f"since={int(since)}" in q, q
    series = after["series"]
    ins, outs = [0] * 24, [0] * 24
    for row in series:
        h = _hour_index(row["start"], since)
        assert 0 <= h < 24, row["start"]
        ins[h] += row["in"]
        outs[h] += row["out"]
    assert bars == [x for h in range(24) for x in (["bar-in", ins[h]], ["bar-out", outs[h]])], (bars, series)
    assert totals == [sum(ins), sum(outs)] and totals[0] > totals[1] >= 1
    for drawn, key in zip(mix, ("by_gender", "by_age")):
        want = {k: sum(r[key][k] for r in series) for k in series[0][key]}
        assert drawn == {k: v for k, v in want.items() if v > 0}, (key, drawn, want)
    assert sum(mix[0].values()) == sum(ins) + sum(outs)
    # the CSV link (what "Download CSV" saves) holds the same numbers, row for row
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [r["start"] for r in rows] == [r["start"] for r in series]
    for r, s in zip(rows, series):
        assert (int(r["in"]), int(r["out"])) == (s["in"], s["out"]), (r, s)
        assert {k[len("gender_"):]: int(v) for k, v in r.items() if k.startswith("gender_")} == s["by_gender"]
        assert {k[len("age_"):]: int(v) for k, v in r.items() if k.startswith("age_")} == s["by_age"]
    status, direct = site.request("/api/counts.csv?" + q)
    assert status == 200 and direct.decode() == csv_text
    b.js("document.getElementById('counts-title').scrollIntoView()")
    b.screenshot(ARTIFACTS / "site_e2e_chart.png")


# ---- 3. the editor: a new line that counts ---------------------------------------------------

def _open_editor(b, camera: str, shapes: int) -> None:
    b.js("const e = document.getElementById('e-camera'); e.value = arguments[0];"
         "e.dispatchEvent(new Event('change'));", camera)
    assert wait_for(b, "document.getElementById('e-img').naturalWidth > 0 && "
                       f"document.querySelectorAll('#e-shapes li').length === {shapes}", 30)
    b.js("document.getElementById('editor-title').scrollIntoView()")


def _type(b, css: str, text: str) -> None:
    el = b.find(css)
    b.call("POST", f"/element/{el}/clear", {})
    b.call("POST", f"/element/{el}/value", {"text": text})


def _click(b, css: str) -> None:
    b.call("POST", f"/element/{b.find(css)}/click", {})


def _save(b) -> tuple[str, str]:
    # no clearing here: the page drops the previous save's outcome when a new save starts
    _click(b, "#e-save")
    assert wait_for(b, "document.getElementById('e-status').dataset.save", 30)
    return b.js("const s = document.getElementById('e-status'); return [s.dataset.save, s.textContent];")


def test_editor_saves_a_line_that_counts_on_the_next_crossing(site, browser):
    b = browser
    pid = site.cameras()["desk"]["pid"]
    # desk's only line is off the walking path: it has counted nobody
    assert site.get("/api/events?camera=desk&type=cross&limit=100")["events"] == []
    before = site.cfg.read_bytes()
    bak = site.cfg.with_name(site.cfg.name + ".bak")

    _open_editor(b, "desk", 1)
    b.screenshot(ARTIFACTS / "site_e2e_editor_before.png")
    click_at(b, "#e-svg", 0.5, 0.03)  # a vertical line down the middle, drawn top to bottom
    click_at(b, "#e-svg", 0.5, 0.97)
    assert b.js("return document.querySelectorAll('#e-svg circle').length") == 2
    _type(b, "#e-name", "aisle")
    _click(b, "#e-add")
    kind, msg = _save(b)
    assert kind == "ok", msg
    b.screenshot(ARTIFACTS / "site_e2e_editor_after.png")

    assert site.cfg.read_bytes() != before and bak.read_bytes() == before
    lines = yaml.safe_load(site.cfg.read_text())["cameras"]["desk"]["counting"]["lines"]
    assert [ln["name"] for ln in lines] == ["corner", "aisle"], lines
    assert lines[0]["points"] == CORNER
    (x1, y1), (x2, y2) = lines[1]["points"]
    assert abs(x1 - 0.5) < 0.02 and abs(x2 - 0.5) < 0.02 and y1 < 0.06 and y2 > 0.94, lines[1]
    assert yaml.safe_load(before)["cameras"]["door"] == yaml.safe_load(site.cfg.read_text())["cameras"]["door"]

    new = _wait(lambda: (c := site.cameras()["desk"]) and c["status"] == "running" and c["pid"] != pid
                and c["pid"], RESTART_S, "desk restarted with the new line", site)
    assert new != pid and site.get("/api/cameras/desk/geometry")["lines"][1]["name"] == "aisle"

    def crossed_both_ways():
        evs = [e for e in site.get("/api/events?camera=desk&type=cross&limit=200")["events"]]
        return {e["direction"] for e in evs if e["line"] == "aisle"} == {"in", "out"} and evs
    evs = _wait(crossed_both_ways, CROSS_S, "desk's crossings of the new line, both ways", site)
    assert all(e["line"] == "aisle" for e in evs), {e["line"] for e in evs}
    for e in evs:  # drawn downwards: the lanes walked left -> right are in, the other out
        x1, y1, x2, y2 = e["box"]
        lane = int(np.argmin([abs((y1 + y2) / 2 - y) for y in LANES]))
        assert e["direction"] == DIRECTIONS[lane], e


# ---- 4. a degenerate zone ------------------------------------------------------------------------

def test_degenerate_zone_is_refused_and_changes_nothing(site, browser):
    b = browser
    before = site.cfg.read_bytes()
    bak = site.cfg.with_name(site.cfg.name + ".bak")
    bak_before = bak.read_bytes() if bak.exists() else None
    pid = site.cameras()["door"]["pid"]

    _open_editor(b, "door", 1)
    b.js("const k = document.getElementById('e-kind'); k.value = 'zone'; k.dispatchEvent(new Event('change'));")
    for fx in (0.2, 0.5, 0.8):  # three points on one row: a zone without area
        click_at(b, "#e-svg", fx, 0.5)
    _type(b, "#e-name", "flat")
    _click(b, "#e-add")
    kind, msg = _save(b)
    b.screenshot(ARTIFACTS / "site_e2e_editor_refused.png")
    assert kind == "error" and "Not saved" in msg and "zones" in msg, msg
    status, body = site.request("/api/cameras/door/geometry", "PUT", {
        "lines": [{"name": "entrance", "points": ENTRANCE}],
        "zones": [{"name": "flat", "points": [[0.2, 0.5], [0.5, 0.5], [0.8, 0.5]]}]})
    assert 400 <= status < 500, (status, body)
    err = json.loads(body)
    assert "zones" in json.dumps(err), err
    assert site.cfg.read_bytes() == before
    assert (bak.read_bytes() if bak.exists() else None) == bak_before
    assert site.cameras()["door"]["pid"] == pid  # not restarted


# ---- 5. a bad source and an unreachable broker -----------------------------------------------

def test_bad_source_is_down_with_its_reason_and_healthz_is_503(site, browser):
    b = browser
    cams = _wait(lambda: (c := site.cameras()) and c["desk"]["status"] == "running" and c, RESTART_S,
                 "desk running", site)
    gate = cams["gate"]
    assert gate["status"] == "down" and "no-such-clip.mp4" in (gate.get("reason") or ""), gate
    assert cams["door"]["status"] == "running" and cams["desk"]["status"] == "running"
    t = "document.querySelector('#grid .tile[data-name=gate]')"
    assert wait_for(b, f"{t}.dataset.status === 'down' && {t}.querySelector('.reason') && "
                       f"{t}.querySelector('.reason').textContent.includes('no-such-clip.mp4')", 30), \
        b.js(f"return {t}.textContent")

    def unhealthy():
        status, body = site.request("/healthz")
        doc = json.loads(body)
        r = doc.get("reasons", [])
        return (status == 503 and any(x.startswith("camera door: MQTT not connected") for x in r)
                and not any(x.startswith("camera desk") for x in r) and (status, doc))
    status, doc = _wait(unhealthy, 60, "/healthz 503 naming door's MQTT link and not desk", site)
    reasons = doc["reasons"]
    assert doc["status"] == "not_ready"
    assert any(r.startswith("camera gate: down") and "no-such-clip.mp4" in r for r in reasons), reasons
    assert not any(r.startswith("camera desk") for r in reasons), reasons
