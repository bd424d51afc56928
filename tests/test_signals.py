"""SIGTERM / SIGINT to a real ``run.py stream``: exit 0 within 2 s in every state: during the
first open of a silent server, while loading models, while streaming (every event flushed: each
started track has its ``end``), during the flush, while the live source is reconnecting and
while a read is stuck inside cv2 on a frozen server."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from conftest import count_events, missing, video_path
from helpers.rtsp_server import RtspServer, StreamerProcess

CLIP = "face_recognition__short_hamilton_clip.mp4"
ROOT_MODELS = Path(__file__).resolve().parent.parent / "models"
# The contract is exit within 2 s; a test bound that tight is flaky on a loaded machine, so the
# test only catches a hang and the real figure is measured by `python run.py bench --only live`.
HANG_S = 10.0
SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]
FAST = {"attributes": {"enabled": False}}  # the source and shutdown matter here, not attributes


@pytest.fixture(scope="module")
def clip(rtsp_clip):
    return rtsp_clip


count = count_events


def assert_clean_exit(st: StreamerProcess, took: float, what: str) -> None:
    print(f"{what}: signal to exit {took:.2f} s")
    assert st.proc.returncode == 0, st.stderr()[-3000:]
    assert took < HANG_S, f"{what}: exit took {took:.2f} s (hung)"
    evs = st.events()
    started = {e["track_id"] for e in evs if e["type"] == "start"}
    ended = {e["track_id"] for e in evs if e["type"] == "end"}
    assert started and started <= ended, f"tracks without an end event: {started - ended}"
    assert "summary" in st.stdout()
    assert "Traceback" not in st.stderr()


@pytest.mark.parametrize("sig", SIGNALS)
def test_signal_while_streaming_flushes_events_and_exits_fast(sig, tmp_path):
    # A file paced like a camera and looped: the run never ends by itself.
    st = StreamerProcess(tmp_path, str(video_path(CLIP)), FAST, "--realtime", "--loop")
    try:
        st.wait_for("a tracked face", lambda e: count(e, "start") >= 1, 60)
        took = st.signal_and_wait(sig)
    finally:
        st.kill()
    assert_clean_exit(st, took, f"{sig.name} while streaming a file")


@pytest.mark.parametrize("sig", SIGNALS)
def test_signal_while_reconnecting_exits_fast(sig, clip, tmp_path):
    with RtspServer(clip) as srv:
        st = StreamerProcess(tmp_path, srv.url(), dict(FAST, source={"backoff_max_s": 2.0}))
        try:
            st.wait_for("a tracked face", lambda e: count(e, "start") >= 1, 60)
            srv.kill()  # down for good: the pipeline retries with backoff until the signal
            st.wait_for("source_down", lambda e: count(e, "source_down") == 1, 15)
            time.sleep(1.5)  # into the backoff / reconnect attempts
            took = st.signal_and_wait(sig)
        finally:
            st.kill()
    assert_clean_exit(st, took, f"{sig.name} while reconnecting")
    assert st.types()[-1] == "source_down"  # no source_up: it never came back


def test_sigterm_while_a_read_is_stuck_in_cv2_exits_fast(clip, tmp_path):
    """A frozen server keeps the read blocked inside FFmpeg; the read deadline is long (30 s), so
    the signal arrives while a helper thread is stuck in cv2. The process still exits 0."""
    with RtspServer(clip) as srv:
        st = StreamerProcess(tmp_path, srv.url(), dict(FAST, source={"read_timeout_s": 30.0}))
        try:
            st.wait_for("a tracked face", lambda e: count(e, "start") >= 1, 60)
            srv.freeze()
            time.sleep(1.0)  # the reader is now blocked in cv2
            took = st.signal_and_wait(signal.SIGTERM)
        finally:
            srv.thaw()
            st.kill()
    assert_clean_exit(st, took, "SIGTERM with a read stuck in cv2")
    assert count(st.events(), "source_down") == 0  # 30 s deadline not reached: no outage


# ---- signals before the stream runs: the first open and the model loading ------------------
# The handlers are installed before the pipeline is built (streamer/cli.py) and the build runs
# on a helper thread (wiring.build_pipeline_unless_stopped), so a signal while cv2 is stuck in
# an FFmpeg open or busy loading a net still ends the process with 0 within the budget.

def assert_stopped_before_start(st: StreamerProcess, took: float, what: str) -> None:
    print(f"{what}: signal to exit {took:.2f} s")
    err = st.stderr()
    assert st.proc.returncode == 0, err[-3000:]
    assert took < HANG_S, f"{what}: exit took {took:.2f} s (hung)"
    assert "Traceback" not in err, err
    assert "stopped before the stream started" in err, err  # the signal hit the start-up
    assert st.events() == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", SIGNALS)
def test_signal_during_the_first_open_of_a_silent_server_exits_0(sig, tmp_path):
    """A TCP port that accepts the connection and never answers: FFmpeg's RTSP open waits for
    the reply (here up to 60 s); the signal comes while it waits."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(30)
    port = srv.getsockname()[1]
    cfg = dict(FAST, source={"open_timeout_s": 60, "read_timeout_s": 60})
    st = StreamerProcess(tmp_path, f"rtsp://127.0.0.1:{port}/stream", cfg)
    conn = None
    try:
        conn, _ = srv.accept()  # the streamer is inside its first open now
        conn.settimeout(5)
        assert conn.recv(1024).startswith(b"OPTIONS"), "expected an RTSP request"
        time.sleep(0.3)  # well inside the open, which would last a minute
        took = st.signal_and_wait(sig)
    finally:
        st.kill()
        if conn is not None:
            conn.close()
        srv.close()
    assert_stopped_before_start(st, took, f"{sig.name} during the first open")


@pytest.mark.timeout(90)
def test_sigterm_while_loading_models_exits_0(tmp_path):
    """The signal arrives the moment the process opens the age net (inotify on a private copy
    of the models folder); SIGSTOP freezes it there so the signal is pending inside the load."""
    import shutil

    from helpers import inotify

    if not inotify.available():
        missing("inotify (Linux) is needed to catch the model load")
    models = tmp_path / "models"
    shutil.copytree(ROOT_MODELS, models, ignore=shutil.ignore_patterns("*.part", "fetch.py"))
    if not (models / "age-v1.onnx").exists():
        missing("models/age-v1.onnx not fetched (run: python run.py models --fetch)")
    with inotify.OpenWatch(models) as watch:
        st = StreamerProcess(tmp_path, str(video_path(CLIP)), {"models_dir": str(models)},
                             "--realtime", "--loop")
        try:
            assert watch.wait_for("age-v1.onnx", 60, alive=lambda: st.proc.poll() is None), \
                st.stderr()[-3000:]
            st.proc.send_signal(signal.SIGSTOP)
            st.proc.send_signal(signal.SIGTERM)  # pending while it is frozen inside the load
            t0 = time.monotonic()
            st.proc.send_signal(signal.SIGCONT)
            st.proc.wait(10)
            took = time.monotonic() - t0
        finally:
            st.kill()
    assert_stopped_before_start(st, took, "SIGTERM while loading models")


@pytest.mark.timeout(90)
def test_second_sigterm_during_the_flush_still_exits_0_with_every_event(tmp_path):
    st = StreamerProcess(tmp_path, str(video_path(CLIP)), FAST, "--realtime", "--loop")
    try:
        st.wait_for("a tracked face", lambda e: count(e, "start") >= 1, 60)
        t0 = time.monotonic()
        st.proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)  # the pipeline is draining and flushing now
        st.proc.send_signal(signal.SIGTERM)
        st.proc.wait(10)
        took = time.monotonic() - t0
    finally:
        st.kill()
    assert_clean_exit(st, took, "two SIGTERMs, the second during the flush")
