"""Live-source reliability against a real RTSP server (GStreamer, killed and restarted).

The real CLI streams ``rtsp://user:secret@127.0.0.1:PORT/cam``; the server is SIGKILLed
mid-stream five times, stays down for a few seconds, and comes back on the same port. The one
process must reconnect every time, report each outage (``source_down``, then ``source_up`` with
``outage_s`` close to the downtime), end every track at each outage, resume processing, never
exit, and never show the password.

No speed is asserted here (a loaded 2-core machine makes any tight bound flaky): the bounds
below only catch a hang (HANG_S) or a wrong mechanism; the real figures (time to detect an
outage, reconnect overhead, SIGTERM to exit, latency under lag) are measured by
``python run.py bench --only live`` (bench/live.py).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from conftest import count_events
from helpers.rtsp_server import RtspServer, StreamerProcess

USER, SECRET = "viewer", "s3cr3t-Pa55"
HANG_S = 10.0  # beyond any honest slowness: only a hang (or a missing mechanism) exceeds it
DOWN_S = 2.0  # downtime of each outage
BACKOFF_MAX_S = 1.0
# Reconnect settings that keep five outages inside a CI minute; the logic is the production one.
SOURCE_CFG = {"read_timeout_s": 2.0, "open_timeout_s": 5.0, "backoff_initial_s": 0.5,
              "backoff_max_s": BACKOFF_MAX_S}


@pytest.fixture(scope="module")
def clip(rtsp_clip):
    return rtsp_clip


count = count_events


def fds_and_threads(pid: int) -> tuple[int, int]:
    status = open(f"/proc/{pid}/status").read().splitlines()
    threads = next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
    return len(os.listdir(f"/proc/{pid}/fd")), threads


def test_five_outages_each_reconnect_without_a_restart(clip, tmp_path):
    with RtspServer(clip, user=USER, password=SECRET) as srv:
        # Attributes off: this test is about the source; detection and tracking stay real.
        cfg = {"camera": "door", "source": SOURCE_CFG, "attributes": {"enabled": False}}
        st = StreamerProcess(tmp_path, srv.url(f"{USER}:{SECRET}"), cfg)
        try:
            st.wait_for("a first tracked face", lambda e: count(e, "start") >= 1, 60)
            downtimes, resources = [], []
            for i in range(1, 6):
                starts = count(st.events(), "start")
                t_kill = time.monotonic()
                srv.kill()
                st.wait_for(f"source_down #{i}", lambda e: count(e, "source_down") == i, 15)
                detected = time.monotonic() - t_kill
                time.sleep(max(0.0, t_kill + DOWN_S - time.monotonic()))  # the downtime itself
                srv.start()
                downtimes.append(time.monotonic() - t_kill)
                t_up = time.monotonic()
                st.wait_for(f"source_up #{i}", lambda e: count(e, "source_up") == i, 20)
                print(f"outage {i}: down detected after {detected:.2f} s, server down "
                      f"{downtimes[-1]:.2f} s, first frame {time.monotonic() - t_up:.2f} s after "
                      "the restart")
                # Processing resumed: the clip starts again with a face, tracked anew.
                st.wait_for(f"a tracked face after reconnect #{i}",
                            lambda e: count(e, "start") > starts, 20)
                assert st.proc.poll() is None
                resources.append(fds_and_threads(st.proc.pid))
            exit_s = st.signal_and_wait(signal.SIGTERM)
        finally:
            st.kill()
    assert st.proc.returncode == 0, st.stderr()[-3000:]
    print(f"SIGTERM to exit: {exit_s:.2f} s; (fds, threads) after each reconnect: {resources}")
    # Nothing leaks per reconnect: no descriptors or helper threads pile up (a little slack for
    # a capture whose release is still in flight; a leak per reconnect would add 5).
    assert resources[-1][0] <= resources[0][0] + 3 and resources[-1][1] <= resources[0][1] + 3

    evs = st.events()
    ups = [e for e in evs if e["type"] == "source_up"]
    downs = [e for e in evs if e["type"] == "source_down"]
    assert len(downs) == 5 and len(ups) == 5
    order = [e["type"] for e in evs if e["type"] in ("source_down", "source_up")]
    assert order == ["source_down", "source_up"] * 5
    for up, down_s in zip(ups, downtimes):
        print(f"outage_s {up['outage_s']:.2f} for {down_s:.2f} s of server downtime")
        # From the last frame to the first new one: at least the downtime (the outage is not
        # under-reported); the overhead (one backoff step and a fresh RTSP session) is a
        # bench figure, here only a hang-sized bound.
        # (less 1 s: frames still buffered in the connection at the kill are read after it)
        assert down_s - 1.0 <= up["outage_s"] <= down_s + HANG_S
        assert up["source"] == srv.url("***")
    # Tracks end cleanly at every outage: no track spans one, every start has its end.
    open_tracks: set[int] = set()
    for e in evs:
        if e["type"] == "start":
            open_tracks.add(e["track_id"])
        elif e["type"] == "end":
            open_tracks.discard(e["track_id"])
        elif e["type"] == "source_down":
            assert not open_tracks, f"tracks {open_tracks} still open at an outage"
    assert not open_tracks
    s = st.summary()
    assert s["reconnects"] == 5 and s["outages"] == 5
    # The password never shows: not in events, logs, or the summary on stdout.
    for text in (st.events_path.read_text(), st.stdout(), st.stderr(),
                 st.summary_path.read_text()):
        assert SECRET not in text
    assert "***@127.0.0.1" in st.stderr()


def test_hung_server_is_detected_by_the_read_deadline_and_reconnected(clip, tmp_path):
    """SIGSTOP: the TCP connection stays up, no byte arrives. No frame for read_timeout_s
    means lost; opens against the frozen server time out too; after SIGCONT frames flow again."""
    with RtspServer(clip) as srv:
        cfg = {"source": dict(SOURCE_CFG, read_timeout_s=1.0), "attributes": {"enabled": False}}
        st = StreamerProcess(tmp_path, srv.url(), cfg)
        try:
            st.wait_for("a first tracked face", lambda e: count(e, "start") >= 1, 60)
            t_freeze = time.monotonic()
            srv.freeze()
            evs = st.wait_for("source_down", lambda e: count(e, "source_down") == 1, 10)
            detected = time.monotonic() - t_freeze
            time.sleep(max(0.0, t_freeze + 3.0 - time.monotonic()))
            srv.thaw()
            frozen = time.monotonic() - t_freeze
            evs = st.wait_for("source_up", lambda e: count(e, "source_up") == 1, 20)
            exit_s = st.signal_and_wait(signal.SIGINT)
        finally:
            srv.thaw()
            st.kill()
    assert st.proc.returncode == 0
    down = next(e for e in evs if e["type"] == "source_down")
    up = next(e for e in evs if e["type"] == "source_up")
    print(f"frozen server: lost after {detected:.2f} s (read_timeout_s 1), reason "
          f"{down['reason']!r}; frozen {frozen:.2f} s, outage_s {up['outage_s']:.2f}; "
          f"SIGINT to exit {exit_s:.2f} s")
    # Detected by a deadline (ours or FFmpeg's socket timeout: both say no frame came); the
    # wait_for above bounds it at 10 s, only a hang trips that.
    assert down["reason"].startswith("no frame"), down
    assert up["outage_s"] >= frozen - 1.0  # less frames still buffered when it froze


def test_wrong_password_fails_at_start_without_showing_it(clip, tmp_path):
    with RtspServer(clip, user=USER, password=SECRET) as srv:
        st = StreamerProcess(tmp_path, srv.url(f"{USER}:wrong-{SECRET}"),
                             {"source": {"open_timeout_s": 5.0}})
        st.proc.wait(60)
    assert st.proc.returncode == 1
    err = st.stderr()
    assert "error: cannot open stream rtsp://***@127.0.0.1" in err, err
    assert SECRET not in err + st.stdout()


def test_lag_stays_bounded_when_inference_is_slower_than_the_camera(clip, tmp_path):
    """A 30 fps stream into a ~7 fps inference: the capture queue drops the oldest frames,
    frames older than max_frame_age_s are dropped at inference (both counted), and the lag,
    counted in frames (frames read so far minus the frame taken), stays within the queue for
    the whole run instead of growing. The lag in milliseconds is a bench figure."""
    from streamer.runtime import wiring as app
    from streamer import config

    max_age = 0.25
    with RtspServer(clip) as srv:
        # 8 queued frames at 30 fps span ~0.27 s: the oldest is often past max_age.
        cfg = config.from_dict({"source": dict(SOURCE_CFG, uri=srv.url(), queue_size=8,
                                               max_frame_age_s=max_age),
                                "attributes": {"enabled": False}})
        pipe = app.build_pipeline(cfg)
        real = pipe.processor.process

        lag_frames: list[int] = []

        def slow(frame):
            lag_frames.append(pipe.frames_in - 1 - frame.id)  # frames read after this one
            time.sleep(0.1)
            return real(frame)

        pipe.processor.process = slow
        threading.Timer(8.0, pipe.stop).start()
        s = pipe.run()
    print("lag summary:", {k: s[k] for k in (
        "frames_in", "frames_processed", "frames_dropped", "frames_dropped_queue", "frames_stale",
        "frame_age_ms_p95",
        "source_backlog_ms_max", "latency_ms_p50", "latency_ms_p95")})
    assert s["frames_processed"] > 20
    assert s["frames_dropped_queue"] > 0 and s["frames_stale"] > 0
    assert s["frames_dropped"] == s["frames_dropped_queue"] + s["frames_stale"]  # one definition
    # Every frame read is processed, dropped from the queue, found stale, or still queued (8),
    # or was taken by inference just as stop came (1).
    unaccounted = s["frames_in"] - s["frames_processed"] - s["frames_dropped"] - s["stage_errors"]
    assert 0 <= unaccounted <= 8 + 1
    # Reads outpace inference ~4:1 for 8 s, so an unbounded queue would leave the last frames
    # taken hundreds of frames behind; the bounded one keeps every frame within its 8 slots
    # (+1 for a read landing between the dequeue and this count).
    assert len(lag_frames) == s["frames_processed"] + s["stage_errors"]
    assert s["frames_in"] > 2 * len(lag_frames), "precondition: inference slower than the camera"
    assert 0 <= min(lag_frames) and max(lag_frames) <= 8 + 1, lag_frames


def test_ffmpeg_timeout_option_ends_an_open_against_a_silent_server(tmp_path):
    """A server that accepts TCP and never answers (a wedged camera). open_timeout_s is 60 s,
    read_timeout_s 1 s: only FFmpeg's socket ``timeout`` option, passed through
    OPENCV_FFMPEG_CAPTURE_OPTIONS, can end the open in well under 30 s (1 s plus process
    start). If a future FFmpeg renamed the option (as it did ``stimeout``), the open would
    run its 60 s and this test would fail."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    try:
        t0 = time.monotonic()
        url = f"rtsp://{USER}:{SECRET}@127.0.0.1:{srv.getsockname()[1]}/x"
        st = StreamerProcess(tmp_path, url, {"source": {"open_timeout_s": 60.0,
                                                        "read_timeout_s": 1.0}})
        st.proc.wait(90)
        took = time.monotonic() - t0
    finally:
        stop.set()
        for c in held:
            c.close()
        srv.close()
    print(f"silent server: CLI gave up after {took:.2f} s (process start included)")
    assert st.proc.returncode == 1 and held
    assert "cannot open stream rtsp://***@127.0.0.1" in st.stderr()
    assert SECRET not in st.stderr() + st.stdout()
    assert took < 30.0  # half the open timeout: the socket option ended it, not open_timeout_s
