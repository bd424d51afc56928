"""The site dashboard in a real headless Chromium against a real server with a fake SiteView:
the grid shows every camera (live snapshots, status, fps, today's counts), a click opens one
large (MJPEG), recent people come from the store, the chart draws the store's crossings, the
editor saves a line drawn with real mouse clicks, and a degenerate zone is refused with the
server's message on the page. Screenshots in test-artifacts/."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from helpers.chromium import ARTIFACTS, click_at, start_browser, wait_for
from helpers.fake_site import FakeSite, person
from helpers.web_fixtures import make_app, running_server


@pytest.fixture(scope="module")
def browser():
    with start_browser() as b:
        yield b


def today_at(hour: int, minute: int = 0) -> float:
    now = datetime.now()
    return datetime(now.year, now.month, now.day, hour, minute).timestamp()


def store_events() -> list[dict]:
    """Crossings today at 09:xx (3 in, 1 out) and 14:xx (1 in), ages and genders mixed."""
    evs = [person("door", 1, today_at(9, 5), "cross", line="entrance", direction="in"),
           person("door", 2, today_at(9, 20), "cross", line="entrance", direction="in", gender="male", years=52.0),
           person("door", 3, today_at(9, 40), "cross", line="entrance", direction="in", gender="male", years=22.0),
           person("door", 4, today_at(9, 50), "cross", line="entrance", direction="out"),
           person("door", 5, today_at(14, 10), "cross", line="entrance", direction="in", years=70.0)]
    evs += [person("door", 20 + i, today_at(9, 10 + i), "end", gender=g, years=y)
            for i, (g, y) in enumerate([("female", 31.0), ("male", 45.0), (None, None)])]
    return evs


@pytest.fixture
def site():
    return FakeSite(events=store_events())


def test_grid_shows_every_camera_and_opens_one_large(browser, site):
    with running_server(make_app(site=site)) as srv:
        browser.get(srv.url + "/dashboard")
        assert wait_for(browser, "document.body.dataset.cameras === '2'")
        tiles = browser.js("return [...document.querySelectorAll('#grid .tile')].map(t => "
                           "[t.dataset.name, t.dataset.status, t.textContent])")
        assert [t[:2] for t in tiles] == [["door", "running"], ["yard", "down"]]
        assert "12.5 fps" in tiles[0][2] and "entrance: 7 in / 3 out" in tiles[0][2]
        assert "source: connection refused" in tiles[1][2]
        # live views: the snapshots load (decoded by the browser at the fake's size)
        assert wait_for(browser, "[...document.querySelectorAll('#grid .tile img')]"
                                 ".every(i => i.dataset.loaded === '1' && i.naturalWidth === 320)")
        browser.call("POST", f"/element/{browser.find('#grid .tile[data-name=door]')}/click", {})
        assert wait_for(browser, "!document.getElementById('large').hidden && "
                                 "document.getElementById('large-img').naturalWidth === 320")
        assert browser.js("return document.getElementById('large-name').textContent") == "door"
        assert "stream.mjpg" in browser.js("return document.getElementById('large-img').src")
        # recent people: the store's end events, newest first
        assert wait_for(browser, "document.querySelectorAll('#people tbody tr').length === 3")
        rows = browser.js("return [...document.querySelectorAll('#people tbody tr')]"
                          ".map(r => [...r.cells].slice(1).map(c => c.textContent))")
        assert [r[2] for r in rows] == ["unknown", "male", "female"]
        assert rows[2][0] == "09:10:00" and rows[2][1] == "door" and rows[2][3] == "26-36"
        assert all(r[4] == "4.0 s" for r in rows)
        browser.screenshot(ARTIFACTS / "dashboard_grid.png")
        browser.call("POST", f"/element/{browser.find('#large-close')}/click", {})
        browser.get("about:blank")  # closes the MJPEG connection before the server stops


def test_chart_draws_the_store_counts(browser, site):
    with running_server(make_app(site=site)) as srv:
        browser.get(srv.url + "/dashboard")
        assert wait_for(browser, "document.getElementById('chart-hours').dataset.drawn")
        svg = "document.getElementById('chart-hours')"
        assert browser.js(f"return [{svg}.dataset.totalIn, {svg}.dataset.totalOut]") == ["4", "1"]
        bars = browser.js("return [...document.querySelectorAll('#chart-hours rect')]"
                          ".map(r => [r.getAttribute('class'), +r.dataset.value, +r.getAttribute('height')])")
        assert len(bars) == 48  # 24 hours x (in, out)
        ins = [v for c, v, _ in bars if c == "bar-in"]
        outs = [v for c, v, _ in bars if c == "bar-out"]
        assert ins[9] == 3 and ins[14] == 1 and outs[9] == 1 and sum(ins) == 4 and sum(outs) == 1
        heights = {v: h for c, v, h in bars if c == "bar-in"}
        assert heights[3] > heights[1] > 0 == heights[0]  # drawn to scale
        gender = browser.js("return Object.fromEntries([...document.querySelectorAll('#chart-gender rect')]"
                            ".map(r => [r.dataset.key, +r.dataset.value]))")
        assert gender == {"female": 3, "male": 2}
        ages = browser.js("return [...document.querySelectorAll('#chart-age rect')].map(r => r.dataset.key)")
        assert ages == ["18-24", "25-34", "45-54", "65+"]
        browser.js("document.getElementById('counts-title').scrollIntoView()")
        browser.screenshot(ARTIFACTS / "dashboard_counts.png")
        csv_href = browser.js("return document.getElementById('c-csv').href")
        assert "/api/counts.csv?" in csv_href and "bucket=hour" in csv_href
        # another day: nothing crossed
        browser.js("const d = document.getElementById('c-day'); d.value = '2001-01-01';"
                   "d.dispatchEvent(new Event('change'));")
        assert wait_for(browser, f"{svg}.dataset.totalIn === '0'")
        browser.screenshot(ARTIFACTS / "dashboard_empty_day.png")


def test_editor_saves_a_line_and_refuses_a_degenerate_zone(browser, site):
    with running_server(make_app(site=site)) as srv:
        browser.get(srv.url + "/dashboard")
        assert wait_for(browser, "document.getElementById('e-img').naturalWidth === 320 && "
                                 "document.getElementById('e-camera').value === 'door'")
        click_at(browser, "#e-svg", 0.1, 0.5)
        click_at(browser, "#e-svg", 0.9, 0.5)
        assert wait_for(browser, "document.querySelectorAll('#e-svg circle').length === 2")
        browser.js("document.getElementById('e-name').value = 'entrance';")
        browser.call("POST", f"/element/{browser.find('#e-add')}/click", {})
        assert wait_for(browser, "document.querySelectorAll('#e-svg polyline.shape-line').length === 1")
        browser.call("POST", f"/element/{browser.find('#e-save')}/click", {})
        assert wait_for(browser, "document.getElementById('e-status').dataset.save === 'ok'")
        assert len(site.saved) == 1
        cam, lines, zones = site.saved[0]
        assert cam == "door" and zones == [] and [l["name"] for l in lines] == ["entrance"]
        (x1, y1), (x2, y2) = lines[0]["points"]
        assert abs(x1 - 0.1) < 0.02 and abs(x2 - 0.9) < 0.02 and abs(y1 - 0.5) < 0.02 and abs(y2 - 0.5) < 0.02
        browser.screenshot(ARTIFACTS / "dashboard_editor_saved.png")

        # a zone whose three points lie on one line: refused, nothing changes
        browser.js("const k = document.getElementById('e-kind'); k.value = 'zone';"
                   "k.dispatchEvent(new Event('change'));")
        for fx in (0.2, 0.4, 0.6):
            click_at(browser, "#e-svg", fx, 0.3)
        browser.call("POST", f"/element/{browser.find('#e-add')}/click", {})
        browser.call("POST", f"/element/{browser.find('#e-save')}/click", {})
        assert wait_for(browser, "document.getElementById('e-status').dataset.save === 'error'")
        msg = browser.js("return document.getElementById('e-status').textContent")
        assert msg.startswith("Not saved:") and "degenerate" in msg
        assert len(site.saved) == 1 and site.geometry("door")["zones"] == []
        browser.screenshot(ARTIFACTS / "dashboard_editor_refused.png")


def test_dashboard_asks_for_the_token(browser, site):
    from helpers.web_fixtures import cfg_with

    with running_server(make_app(cfg_with(token="s3cret"), site=site)) as srv:
        browser.get(srv.url + "/dashboard")
        browser.js("sessionStorage.clear()")
        browser.get(srv.url + "/dashboard")
        assert wait_for(browser, "!document.getElementById('token-form').hidden")
        assert browser.js("return document.body.dataset.cameras") == "loading"
        browser.js("document.getElementById('token').value = 's3cret';")
        browser.call("POST", f"/element/{browser.find('#token-form button')}/click", {})
        assert wait_for(browser, "document.body.dataset.cameras === '2'")
        assert wait_for(browser, "document.querySelector('#grid .tile img').naturalWidth === 320")
        browser.js("sessionStorage.clear()")
