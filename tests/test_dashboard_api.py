"""The site API (``streamer.web.site_routes``) against a fake SiteView: every route, every bad
query value (4xx JSON naming the parameter), token and editor rules, site health and metrics,
and the MJPEG of a site camera over a real waitress server."""

from __future__ import annotations

import csv
import http.client
import io
import json
import time

import cv2
import numpy as np
import pytest

from conftest import ROOT
from helpers.fake_site import FakeSite, epoch, person, snapshot_jpeg
from helpers.web_fixtures import cfg_with, make_app, request_to, running_server
from streamer.web.metrics import parse as parse_metrics, value as metric
from streamer.web.queries import EVENT_TYPES

T0 = epoch("2024-05-01T08:00:00Z")


def site_events() -> list[dict]:
    evs = [person("door", 1, T0 + 60, "start"), person("door", 2, T0 + 120, "end", years=62.0),
           person("yard", 3, T0 + 7200, "end", gender="male", years=19.0)]
    # crossings: 08:xx two in (female, male) and one out; 10:xx one in; another line once
    evs += [person("door", 10, T0 + 300, "cross", line="entrance", direction="in"),
            person("door", 11, T0 + 900, "cross", line="entrance", direction="in", gender="male", years=40.0),
            person("door", 12, T0 + 1800, "cross", line="entrance", direction="out", gender=None, years=None),
            person("door", 13, T0 + 7300, "cross", line="entrance", direction="in"),
            person("door", 14, T0 + 7400, "cross", line="exit", direction="in")]
    return evs


@pytest.fixture
def site():
    return FakeSite(events=site_events())


@pytest.fixture
def client(site):
    return make_app(site=site).test_client()


def bad_param(r, param: str, status: int = 400):
    assert r.status_code == status, (r.status_code, r.get_data()[:300])
    assert r.is_json and r.json["param"] == param and param in r.json["error"], r.json
    return r.json


# ---- routes ----------------------------------------------------------------------------

def test_cameras_lists_every_camera_status(client, site):
    r = client.get("/api/cameras")
    assert r.status_code == 200
    assert r.json == [c.to_dict() for c in site.cameras()]
    door, yard = r.json
    assert door["name"] == "door" and door["status"] == "running" and door["pid"] == 4242
    assert yard["status"] == "down" and yard["reason"] == "source: connection refused"
    assert "***" in door["source"]


def test_events_newest_first_and_filtered(client, site):
    evs = client.get("/api/events").json["events"]
    assert [e["ts"] for e in evs] == sorted((e["ts"] for e in site_events()), reverse=True)
    ends = client.get("/api/events?type=end&camera=door").json["events"]
    assert [e["id"] for e in ends] == ["run1-door-2"]
    r = client.get(f"/api/events?since={T0 + 1000}&until=2024-05-01T10:00:00Z&limit=5")
    assert [e["id"] for e in r.json["events"]] == ["run1-door-12"]
    assert site.store.calls[-1] == ("events", {"camera": None, "type": None, "since": T0 + 1000,
                                               "until": T0 + 7200, "limit": 5})
    assert len(client.get("/api/events?limit=2").json["events"]) == 2


def test_counts_per_hour_with_gender_and_age_mix(client):
    s = client.get("/api/counts?camera=door&line=entrance&bucket=hour").json["series"]
    assert [row["start"] for row in s] == ["2024-05-01T08:00:00Z", "2024-05-01T10:00:00Z"]
    first = s[0]
    assert (first["in"], first["out"]) == (2, 1)
    assert first["by_gender"] == {"female": 1, "male": 1, "unknown": 1}
    assert first["by_age"] == {"25-34": 1, "35-44": 1, "unknown": 1}
    day = client.get("/api/counts?bucket=day").json["series"]
    assert len(day) == 1 and (day[0]["in"], day[0]["out"]) == (4, 1)  # both lines


def test_counts_csv_matches_the_json(client):
    q = "camera=door&line=entrance"
    series = client.get(f"/api/counts?{q}").json["series"]
    r = client.get(f"/api/counts.csv?{q}")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["start"] for row in rows] == [s["start"] for s in series]
    assert [(int(row["in"]), int(row["out"])) for row in rows] == [(s["in"], s["out"]) for s in series]
    assert int(rows[0]["gender_male"]) == 1 and int(rows[1]["gender_male"]) == 0
    assert list(rows[0])[:3] == ["start", "in", "out"]
    assert [k for k in rows[0] if k.startswith("age_")] == ["age_25-34", "age_35-44", "age_unknown"]


def test_snapshot_and_unknown_camera(client, site):
    r = client.get("/api/cameras/door/snapshot.jpg")
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and r.data == site.snapshots["door"]
    assert r.headers["Cache-Control"] == "no-store"
    r = client.get("/api/cameras/nope/snapshot.jpg")
    assert r.status_code == 404 and r.json["code"] == "unknown_camera" and "door" in r.json["error"]
    site.snapshots["yard"] = None
    r = client.get("/api/cameras/yard/snapshot.jpg")
    assert r.status_code == 404 and r.json["code"] == "no_frame"


def test_geometry_get_and_put(client, site):
    g = client.get("/api/cameras/door/geometry").json
    assert g == {"lines": [], "zones": [], "size": [320, 240]}
    body = {"lines": [{"name": "entrance", "points": [[0.1, 0.5], [0.9, 0.5]]}],
            "zones": [{"name": "desk", "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]]}]}
    r = client.put("/api/cameras/door/geometry", json=body)
    assert r.status_code == 200 and r.json["saved"] is True
    assert site.saved == [("door", body["lines"], body["zones"])]
    assert client.get("/api/cameras/door/geometry").json["lines"] == body["lines"]


@pytest.mark.parametrize("body, param", [
    ({"zones": [{"name": "z", "points": [[0, 0], [1, 1], [2, 2]]}]}, "zones[0].points"),  # collinear
    ({"zones": [{"name": "z", "points": [[0, 0], [1, 0]]}]}, "zones[0].points"),
    ({"lines": [{"name": "l", "points": [[5, 5], [5, 5]]}]}, "lines[0].points"),
    ({"lines": [{"name": "l", "points": [[0, 0], [1, 1], [2, 0]]}]}, "lines[0].points"),
    ({"lines": [{"name": "", "points": [[0, 0], [1, 1]]}]}, "lines[0].name"),
    ({"lines": [{"name": "a", "points": [[0, 0], [1, 1]]}, {"name": "a", "points": [[0, 1], [1, 0]]}]},
     "lines[1].name"),
    ({"lines": [{"name": "l", "points": [[0, "x"], [1, 1]]}]}, "lines[0].points[0]"),
    ({"lines": [{"name": "l", "points": [[0, -1], [1, 1]]}]}, "lines[0].points[0]"),
    ({"lines": "entrance"}, "lines"),
    ({"lines": [], "colour": "red"}, "colour"),
    ([1, 2], "body"),
])
def test_bad_geometry_is_4xx_and_changes_nothing(client, site, body, param):
    before = json.dumps(site.geometry("door"))
    bad_param(client.put("/api/cameras/door/geometry", json=body), param)
    assert site.saved == [] and json.dumps(site.geometry("door")) == before


def test_geometry_the_site_refuses_is_4xx(client, site):
    # the web layer's shape check passes; the site's own validation refuses (nothing saved)
    def refuse(name, lines, zones):
        from streamer.errors import ConfigError
        raise ConfigError("cameras.door.counting.lines[0]: outside the frame")

    site.save_geometry = refuse
    r = client.put("/api/cameras/door/geometry", json={"lines": [{"name": "l", "points": [[0, 0], [9, 9]]}]})
    assert r.status_code == 400 and r.json["code"] == "bad_geometry" and "outside the frame" in r.json["error"]


def test_geometry_put_not_json_and_unknown_camera(client):
    r = client.put("/api/cameras/door/geometry", data=b"{nope", content_type="application/json")
    assert r.status_code == 400 and r.json["code"] == "not_json"
    r = client.put("/api/cameras/nope/geometry", json={"lines": []})
    assert r.status_code == 404 and r.json["code"] == "unknown_camera"
    assert client.get("/api/cameras/nope/geometry").status_code == 404


def test_crops_only_with_keep_crops(site, tmp_path):
    crop = tmp_path / "c.jpg"
    crop.write_bytes(snapshot_jpeg(size=(64, 64)))
    site.store.crops["run1-door-2"] = str(crop)
    off = make_app(site=site).test_client()
    r = off.get("/api/crops/run1-door-2.jpg")
    assert r.status_code == 404 and r.json["code"] == "no_crops"
    on = make_app(site=site, keep_crops=True).test_client()
    r = on.get("/api/crops/run1-door-2.jpg")
    assert r.status_code == 200 and r.data == crop.read_bytes()
    assert on.get("/api/crops/run1-door-99.jpg").json["code"] == "not_found"
    bad_param(on.get("/api/crops/-x%20y.jpg"), "event_id")
    assert on.get("/api/crops/..%2Fetc.jpg").status_code == 404  # a slash never reaches the store


# ---- bad query values ------------------------------------------------------------------

@pytest.mark.parametrize("path, param", [
    ("/api/events?since=abc", "since"), ("/api/events?until=2024-13-45", "until"),
    ("/api/events?since=nan", "since"), ("/api/events?since=inf", "since"),
    ("/api/events?since=-5", "since"), ("/api/events?since=2024-05-02&until=2024-05-01", "until"),
    ("/api/events?limit=-1", "limit"), ("/api/events?limit=0", "limit"),
    ("/api/events?limit=abc", "limit"), ("/api/events?limit=1000000", "limit"),
    ("/api/events?type=party", "type"), ("/api/events?camera=" + "x" * 300, "camera"),
    ("/api/counts?bucket=week", "bucket"), ("/api/counts?since=yesterday", "since"),
    ("/api/counts.csv?bucket=minute", "bucket"), ("/api/counts?line=%01", "line"),
])
def test_bad_query_values_name_the_parameter(client, path, param):
    bad_param(client.get(path), param)


@pytest.mark.parametrize("path", ["/api/events?camera=nope", "/api/counts?camera=nope",
                                  "/api/counts.csv?camera=nope"])
def test_unknown_camera_in_a_query_is_404_naming_it(client, path):
    body = bad_param(client.get(path), "camera", 404)
    assert body["code"] == "unknown_camera"


def test_event_types_follow_the_schema():
    schema = json.loads((ROOT / "schema" / "event.schema.json").read_text())
    assert tuple(schema["properties"]["type"]["enum"]) == EVENT_TYPES


def test_without_a_site_the_api_says_so():
    c = make_app().test_client()
    for path in ("/api/cameras", "/api/events", "/api/counts", "/api/counts.csv",
                 "/api/cameras/door/snapshot.jpg", "/api/cameras/door/geometry"):
        r = c.get(path)
        assert r.status_code == 404 and r.json["code"] == "no_site", path
        assert "run.py site" in r.json["error"]


# ---- token and the editor's write rule -------------------------------------------------

SITE_ROUTES = ["/api/cameras", "/api/events", "/api/counts", "/api/counts.csv",
               "/api/cameras/door/snapshot.jpg", "/api/cameras/door/stream.mjpg",
               "/api/cameras/door/geometry", "/api/crops/run1-door-2.jpg"]


@pytest.mark.parametrize("path", SITE_ROUTES)
def test_token_covers_every_site_route(site, path):
    c = make_app(cfg_with(token="s3cret"), site=site).test_client()
    r = c.get(path)
    assert r.status_code == 401 and r.json["code"] == "unauthorized"
    ok = c.get(path, headers={"Authorization": "Bearer s3cret"}, buffered=False)
    assert ok.status_code != 401
    ok.close()
    r = c.put("/api/cameras/door/geometry", json={"lines": []})
    assert r.status_code == 401


def test_query_token_only_where_an_img_needs_it(site):
    c = make_app(cfg_with(token="s3cret"), site=site).test_client()
    assert c.get("/api/cameras/door/snapshot.jpg?access_token=s3cret").status_code == 200
    assert c.get("/api/counts.csv?access_token=s3cret").status_code == 200
    assert c.get("/api/cameras?access_token=s3cret").status_code == 401
    assert c.get("/api/events?access_token=s3cret").status_code == 401
    assert c.get("/dashboard").status_code in (200, 404)  # the page itself is public


def test_editor_refuses_writes_beyond_localhost_without_a_token(site):
    exposed = make_app(cfg_with(host="0.0.0.0"), site=site).test_client()
    r = exposed.put("/api/cameras/door/geometry", json={"lines": []})
    assert r.status_code == 403 and r.json["code"] == "forbidden"
    assert "web.token" in r.json["error"] and "0.0.0.0" in r.json["error"]
    assert site.saved == []
    assert exposed.get("/api/cameras/door/geometry").status_code == 200  # reads stay open
    guarded = make_app(cfg_with(host="0.0.0.0", token="t"), site=site).test_client()
    r = guarded.put("/api/cameras/door/geometry", json={"lines": []}, headers={"Authorization": "Bearer t"})
    assert r.status_code == 200 and len(site.saved) == 1
    local = make_app(cfg_with(host="127.0.0.1"), site=site).test_client()
    assert local.put("/api/cameras/door/geometry", json={"lines": []}).status_code == 200


# ---- health and metrics ----------------------------------------------------------------

def test_site_health_aggregates_cameras_and_mqtt(site):
    c = make_app(site=site).test_client()
    r = c.get("/healthz")
    assert r.status_code == 503 and r.json["status"] == "not_ready"
    assert "camera yard: down (source: connection refused)" in r.json["reasons"]
    cams = {x["name"]: x for x in r.json["cameras"]}
    assert cams["yard"]["restarts"] == 3 and cams["door"]["source_connected"] is True
    site.set_camera("yard", status="running", source_connected=True, reason=None, last_frame_age_s=0.2)
    r = c.get("/healthz")
    assert r.status_code == 200 and r.json["reasons"] == [], r.json
    site.set_camera("door", mqtt={"connected": False, "backlog": 17})
    r = c.get("/healthz")
    assert r.status_code == 503
    assert any("MQTT" in x and "17" in x for x in r.json["reasons"]), r.json
    assert {x["name"]: x for x in r.json["cameras"]}["door"]["mqtt"] == {"connected": False, "backlog": 17}


def test_single_camera_health_turns_503_when_the_mqtt_sink_is_down():
    from helpers.web_fixtures import fake_pipeline

    p = fake_pipeline()
    links = {"mqtt": {"connected": True, "backlog": 0}}
    p.sinks.health = lambda: links
    c = make_app(pipeline=p).test_client()
    assert c.get("/healthz").status_code == 200
    m = parse_metrics(c.get("/metrics").get_data(as_text=True))
    assert metric(m, "streamer_mqtt_connected", camera="camera", sink="mqtt") == 1
    links["mqtt"] = {"connected": False, "backlog": 42}
    r = c.get("/healthz")
    assert r.status_code == 503 and "mqtt disconnected, 42 events waiting in the spool" in r.json["reasons"]
    assert r.json["sinks"]["mqtt"]["backlog"] == 42
    m = parse_metrics(c.get("/metrics").get_data(as_text=True))
    assert metric(m, "streamer_mqtt_connected", camera="camera", sink="mqtt") == 0
    assert metric(m, "streamer_mqtt_spool_depth", camera="camera", sink="mqtt") == 42


def test_site_metrics_label_every_camera(site):
    c = make_app(site=site).test_client()
    m = parse_metrics(c.get("/metrics").get_data(as_text=True))
    assert metric(m, "streamer_camera_up", camera="door") == 1
    assert metric(m, "streamer_camera_up", camera="yard") == 0
    assert metric(m, "streamer_camera_state", camera="yard", state="down") == 1
    assert metric(m, "streamer_fps", camera="door") == 12.5
    assert metric(m, "streamer_camera_restarts_total", camera="yard") == 3
    assert metric(m, "streamer_counted_people_today", camera="door", name="entrance", direction="in") == 7
    assert metric(m, "streamer_camera_stat", camera="door", stat="frames_in") == 900
    assert metric(m, "streamer_mqtt_connected", camera="door", sink="mqtt") == 1
    assert metric(m, "streamer_mqtt_spool_depth", camera="door", sink="mqtt") == 0
    site_series = [s for s in m if s[0].startswith(("streamer_camera", "streamer_fps", "streamer_mqtt",
                                                     "streamer_counted", "streamer_last_frame"))]
    assert site_series and all("camera" in labels for _, labels, _ in site_series)


# ---- a site camera's MJPEG over a real server ------------------------------------------

def test_site_camera_stream_over_a_real_server(site):
    with running_server(make_app(site=site)) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("GET", "/api/cameras/door/stream.mjpg")
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Content-Type").startswith("multipart/x-mixed-replace")
        seen, buf, n = [], b"", 0  # distinct frames in arrival order
        colors = iter([(0, 0, 255), (0, 255, 0)])
        deadline = time.monotonic() + 20
        while len(seen) < 3 and time.monotonic() < deadline:
            buf += r.read1(65536)
            while b"\xff\xd9" in buf and b"\xff\xd8" in buf:
                s = buf.index(b"\xff\xd8")
                e = buf.index(b"\xff\xd9", s)
                img = cv2.imdecode(np.frombuffer(buf[s:e + 2], np.uint8), cv2.IMREAD_COLOR)
                buf = buf[e + 2:]
                n += 1
                mean = tuple(int(v) for v in img.reshape(-1, 3).mean(0))
                if not seen or seen[-1] != mean:
                    seen.append(mean)
                    nxt = next(colors, None)
                    if nxt:  # a new snapshot arrives at the camera
                        site.snapshots["door"] = snapshot_jpeg(color=nxt)
        assert len(seen) == 3 and len(set(seen)) == 3, seen  # every new snapshot, in order
        assert seen[1][2] > 200 and seen[2][1] > 200  # red (BGR), then green
        st, _, data = request_to(srv, "GET", "/api/cameras/nope/stream.mjpg")
        assert st == 404 and json.loads(data)["code"] == "unknown_camera"
        conn.close()
