"""One camera of a site, in its own process: ``python -m streamer.runtime.site_camera --fd N``.

Started by ``streamer.runtime.site_supervisor`` with one end of a socketpair as fd ``N``; the
first message on it is ``("cfg", Config, options)``. The camera then runs the same pipeline as
``run.py stream`` (``wiring.build_pipeline``) with two hooks: an extra sink that forwards every
event to the site, and a snapshot JPEG at a low rate (``site_channel``).

Exit codes (the supervisor reads them): 0 the source ended (a file without ``loop``) or the
site asked us to stop; 2 the camera could not start (bad source, bad model: the reason was
sent as ``fatal`` and is printed as the last stderr line); 4 the pipeline ended by itself on a
live or looped source (gave up reconnecting, crash loop): restart me; anything else is a crash.

Heartbeats go out every ``HEARTBEAT_S`` while the camera makes progress. They stop when frames
arrive but inference has processed none for ``STUCK_S`` (inference stuck in a call): the
supervisor then sees no heartbeat and kills and restarts this process. A source that sends
nothing is not "stuck": the pipeline's own deadlines declare it lost and reconnect, and the
heartbeat says ``source_up: false``. If the site process goes away (the socket closes), the
camera stops itself: no orphan outlives its site.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from multiprocessing.connection import Connection

EXIT_ENDED, EXIT_START_FAILED, EXIT_UNEXPECTED_END = 0, 2, 4
HEARTBEAT_S = 0.5
STUCK_S = 5.0


def _heartbeat(pipeline, outbox, faces_enabled: bool, stop: threading.Event) -> None:
    last_processed, last_in, progress_at = -1, -1, time.monotonic()
    while not stop.wait(HEARTBEAT_S):
        now = time.monotonic()
        processed, frames_in = pipeline.frames_processed, pipeline.frames_in
        if processed != last_processed or frames_in == last_in:
            progress_at = now  # processing moves, or nothing is waiting to be processed
        last_processed, last_in = processed, frames_in
        if now - progress_at > STUCK_S:
            continue  # frames arrive, none is processed: let the supervisor's hang timer fire
        st = pipeline.stats
        age = (now - pipeline.last_frame_mono) if pipeline.last_frame_mono else None
        health = getattr(pipeline.sinks, "health", None)
        mqtt = None
        if callable(health):
            try:
                h = health()
                mqtt = h.get("mqtt") if isinstance(h, dict) else None  # {sink: health}
            except Exception as e:  # a sink's health must not stop heartbeats
                mqtt = {"error": str(e)}
        outbox.heartbeat({
            "pid": os.getpid(), "fps": st.fps, "last_frame_age_s": age,
            "source_up": bool(pipeline.source_up), "counts": dict(st.counts or {}),
            "faces": st.faces, "tracks": st.tracks, "events_lost": outbox.events_lost,
            "mqtt": mqtt, "stats": {**pipeline.summary(), "site_events_lost": outbox.events_lost},
            "sent_at": time.time(),
        })


def _receiver(conn: Connection, pipeline, snap, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            if not conn.poll(0.2):
                continue
            msg = conn.recv()
        except (EOFError, OSError):
            logging.getLogger("streamer.site").warning("site process gone: stopping")
            pipeline.stop()
            return
        except Exception:  # a garbled channel cannot resynchronise: stop, the site restarts us
            logging.getLogger("streamer.site").exception("bad message from the site: stopping")
            pipeline.stop()
            return
        if msg[0] == "want":
            snap.want(float(msg[1]))
        elif msg[0] == "stop":
            pipeline.stop()


def run(fd: int) -> int:
    from streamer.errors import StreamerError
    from streamer.runtime import wiring
    from streamer.runtime.signals import stop_on_signals
    from streamer.runtime.site_channel import BestFaces, Outbox, SiteSink, SnapshotJpeg

    conn = Connection(fd)
    stop_requested = threading.Event()
    pipeline = None

    stop_on_signals(stop_requested, also=lambda: pipeline is not None and pipeline.stop())
    if not conn.poll(30.0):
        print("error: no config from the site process", file=sys.stderr)
        return EXIT_START_FAILED
    _, cfg, opts = conn.recv()
    logging.getLogger().setLevel(cfg.log_level.upper())
    outbox = Outbox(conn)
    snap = SnapshotJpeg(outbox, idle_fps=opts.get("snapshot_idle_fps", 1.0),
                        watch_fps=opts.get("snapshot_watch_fps", 5.0))
    faces = BestFaces(snap) if opts.get("keep_crops") else None
    try:
        pipeline = wiring.build_pipeline(cfg, mjpeg=snap,
                                         on_result=faces.on_result if faces else None,
                                         extra_sinks=[SiteSink(outbox, faces)])
    except StreamerError as e:
        return _fatal(outbox, str(e))
    except Exception as e:  # cv2.error and friends: still one line for the dashboard
        return _fatal(outbox, f"{type(e).__name__}: {e}")
    if stop_requested.is_set():
        pipeline.stop()
    size = getattr(pipeline.source, "size", None)
    outbox.control(("hello", {"size": list(size) if size else None,
                              "fps": getattr(pipeline.source, "fps", None), "pid": os.getpid()}))
    done = threading.Event()
    threads = [threading.Thread(target=_heartbeat, args=(pipeline, outbox, bool(faces), done),
                                name="heartbeat", daemon=True),
               threading.Thread(target=_receiver, args=(conn, pipeline, snap, done),
                                name="site-receiver", daemon=True)]
    for t in threads:
        t.start()
    summary = pipeline.run()
    done.set()
    outbox.control(("bye", summary))
    outbox.close(0.8)
    if stop_requested.is_set() or outbox.broken:
        return EXIT_ENDED
    if pipeline.live or cfg.source.loop:
        logging.getLogger("streamer.site").error("pipeline ended by itself on a live source")
        return EXIT_UNEXPECTED_END
    return EXIT_ENDED


def _fatal(outbox, message: str) -> int:
    from streamer.media.sources import redact

    line = redact(message).splitlines()[0] if message else "failed to start"
    outbox.control(("fatal", line))
    outbox.close(1.0)
    print(f"error: {line}", file=sys.stderr)
    return EXIT_START_FAILED


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="site_camera")
    ap.add_argument("--fd", type=int, required=True)
    ap.add_argument("--name", default="camera")  # shown by ps; the config carries the real one
    a = ap.parse_args(argv)
    from streamer.runtime.malloc import limit_arenas
    limit_arenas()
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    # No timestamps: the site process prefixes each line with its own time and camera name.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(a.fd)
    except KeyboardInterrupt:
        return EXIT_ENDED


if __name__ == "__main__":
    sys.exit(main())
