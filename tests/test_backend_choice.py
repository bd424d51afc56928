"""``inference.backend: auto`` follows this machine's measurement (streamer/inference/choice.py):
the rule on given costs, the record's validity, and the real path: ``run.py models --tune``
timing the real nets, then a real stream process resolving ``auto`` from what it wrote."""

import json
import logging
import os
import subprocess
import sys

import pytest

from streamer import inference
from streamer.inference import backend as backend_mod
from streamer.inference import choice
from conftest import ROOT, video_path


@pytest.mark.parametrize("costs, expected", [
    ({"openvino": 4.0, "onnxruntime": 3.0, "opencv": 9.0}, "onnxruntime"),  # 25 % cheaper
    ({"openvino": 4.0, "onnxruntime": 3.9, "opencv": 9.0}, "openvino"),  # 2.5 %: within noise
    ({"openvino": 4.0, "onnxruntime": 5.0}, "openvino"),
    ({"onnxruntime": 5.0, "opencv": 9.0}, "onnxruntime"),  # OpenVINO not installed
    ({"opencv": 9.0}, "opencv"),
    ({}, "openvino"),
])
def test_the_cheapest_backend_is_chosen_unless_openvino_is_within_the_margin(costs, expected):
    assert choice.pick(costs, margin=0.05) == expected


def _record(tmp_path, **change):
    rec = {"key": choice.machine_key(None), "chosen": "opencv", "measured_at": "then",
           "costs": {"opencv": {"frame_ms": 1.0}, "openvino": {"frame_ms": 2.0}}}
    rec.update(change)
    p = tmp_path / "backend.json"
    p.write_text(json.dumps(rec))
    return p


def test_a_record_counts_only_for_the_machine_and_versions_it_was_measured_on(tmp_path):
    assert choice.measured(path=tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert choice.measured(path=tmp_path / "bad.json") is None
    assert choice.measured(path=_record(tmp_path))["chosen"] == "opencv"
    key = choice.machine_key(None)
    other_cpu = dict(key, cpu="Some Other CPU [0000000000]")
    assert choice.measured(path=_record(tmp_path, key=other_cpu)) is None
    newer = dict(key, versions=dict(key["versions"], openvino="1999.0"))
    assert choice.measured(path=_record(tmp_path, key=newer)) is None
    assert choice.measured(path=_record(tmp_path, chosen="tensorrt")) is None


def test_auto_resolves_to_the_measured_backend_and_an_explicit_one_wins(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("STREAMER_BACKEND_CHOICE", str(_record(tmp_path)))
    monkeypatch.setattr(backend_mod, "_resolved", None)
    try:
        inference.configure(backend="auto")
        with caplog.at_level(logging.INFO, logger="streamer.inference.backend"):
            assert inference.active_backend() == "opencv"
        assert any("auto is opencv, the fastest measured" in r.getMessage() for r in caplog.records)
        monkeypatch.setattr(backend_mod, "_resolved", None)
        inference.configure(backend="openvino")
        assert inference.active_backend() == "openvino"
    finally:
        monkeypatch.setattr(backend_mod, "_resolved", None)
        inference.configure(backend="auto")


def _run(*args, env):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, env=env)


@pytest.mark.models
def test_tune_times_the_real_nets_and_a_stream_then_runs_on_the_choice(tmp_path):
    path = tmp_path / "backend.json"
    env = dict(os.environ, STREAMER_BACKEND_CHOICE=str(path))
    r = _run("models", "--tune-if-needed", env=env)
    assert r.returncode == 0, r.stderr
    rec = json.loads(path.read_text())
    installed = [b for b in choice.CANDIDATES if choice.available(b)]
    assert sorted(rec["costs"]) == sorted(installed)
    for b, c in rec["costs"].items():  # real timings: positive, YuNet the dominant part
        assert 0 < c["gender_ms"] and 0 < c["age_ms"] and c["yunet_ms"] > c["gender_ms"], (b, c)
    frame = {b: c["frame_ms"] for b, c in rec["costs"].items()}
    assert rec["chosen"] == choice.pick(frame)
    assert f"auto = {rec['chosen']}" in r.stdout

    again = _run("models", "--tune-if-needed", env=env)  # measured already: not re-timed
    assert again.returncode == 0 and "measured " + rec["measured_at"] in again.stdout
    assert json.loads(path.read_text()) == rec

    s = _run("stream", "--source", str(video_path("face_recognition__short_hamilton_clip.mp4")),
             "--max-frames", "5", "--headless", env=env)
    assert s.returncode == 0, s.stderr
    assert f"auto is {rec['chosen']}, the fastest measured on this machine" in s.stderr

    rec["key"]["cpu"] = "Some Other CPU [0000000000]"  # copied from another box
    path.write_text(json.dumps(rec))
    s = _run("stream", "--source", str(video_path("face_recognition__short_hamilton_clip.mp4")),
             "--max-frames", "5", "--headless", env=env)
    assert s.returncode == 0, s.stderr
    assert "measured on another machine or set-up (cpu)" in s.stderr
    assert "auto is OpenVINO where it imports" in s.stderr


def _site(tmp_path, backend="auto"):
    import yaml
    from streamer.config import load_site
    clip = str(video_path("face_recognition__short_hamilton_clip.mp4"))
    p = tmp_path / "site.yaml"
    p.write_text(yaml.safe_dump({"cameras": {"door": {"source": {"uri": clip},
                                                      "inference": {"backend": backend}}}}))
    return load_site(p)


@pytest.mark.models
def test_a_site_measures_once_before_its_cameras_on_a_machine_without_a_measurement(tmp_path, monkeypatch):
    import threading
    from streamer.runtime import site
    path = tmp_path / "backend.json"
    monkeypatch.setenv("STREAMER_BACKEND_CHOICE", str(path))

    site.measure_backends(_site(tmp_path, backend="openvino"), threading.Event())
    assert not path.exists(), "no camera on auto: nothing to measure"

    stopped = threading.Event()
    stopped.set()
    site.measure_backends(_site(tmp_path), stopped)  # a stop before it ends: abandoned
    assert not path.exists()

    site.measure_backends(_site(tmp_path), threading.Event())
    rec = json.loads(path.read_text())
    assert rec["chosen"] in choice.CANDIDATES and rec["key"] == choice.machine_key(None)
    stamp = path.stat().st_mtime_ns
    site.measure_backends(_site(tmp_path), threading.Event())  # measured already: kept
    assert path.stat().st_mtime_ns == stamp


@pytest.mark.models
def test_a_backend_that_cannot_load_is_left_out_of_the_measurement(monkeypatch):
    real = inference.load

    def load(path, spec, outputs=(), **kw):
        if kw.get("backend") == "opencv":
            raise RuntimeError("this build has no DNN module")
        return real(path, spec, outputs, **kw)
    monkeypatch.setattr(inference, "load", load)
    said = []
    costs = choice.measure(backends=("opencv", "openvino"), rounds=1, calls=2, progress=said.append)
    assert list(costs) == ["openvino"]
    assert any("opencv left out: this build has no DNN module" in s for s in said)


@pytest.mark.models
def test_an_unwritable_choice_file_leaves_auto_alone(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = dict(os.environ, STREAMER_BACKEND_CHOICE=str(blocker / "backend.json"))  # under a file
    r = _run("models", "--tune", env=env)
    assert r.returncode == 0, r.stderr
    assert "measurement not stored" in r.stderr and "auto stays OpenVINO" in r.stderr
