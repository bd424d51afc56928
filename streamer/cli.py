"""Command line: ``run.py [stream] --source SRC``, ``batch``, ``serve``, ``bench``, ``models``.

Every stream option overrides exactly one config key (listed in the README). User errors print
one line, ``error: ...``, and exit 1; nothing prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

# Raw FFmpeg/OpenCV lines ("[tcp @ 0x...] Connection refused", "moov atom not found",
# obsensor's "Camera index out of range", DNN's setPreferableTarget notes) only repeat, in
# library jargon, the one line we print for the same failure. Both libraries read these at
# their first use, so they are set before anything imports cv2; a user's own setting wins
# (OPENCV_LOG_LEVEL=INFO OPENCV_FFMPEG_LOGLEVEL=32 bring them back for debugging).
_USER_CV_LOG = "OPENCV_LOG_LEVEL" in os.environ
os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

from streamer.runtime.malloc import limit_arenas  # noqa: E402

limit_arenas()  # before any thread starts (streamer/runtime/malloc.py says why)

from streamer import config as config_mod  # noqa: E402  (after the environment above)
from streamer.errors import StreamerError  # noqa: E402

log = logging.getLogger("streamer")

SUBCOMMANDS = ("stream", "batch", "serve", "bench", "models", "site", "config-schema")

# flag -> config key; the README's option table is generated from the same mapping.
STREAM_FLAGS = {
    "source": "source.uri",
    "camera": "camera",
    "display": "output.display",
    "output": "output.video",
    "events": "events.jsonl",
    "stdout_events": "events.stdout",
    "max_frames": "output.max_frames",
    "realtime": "source.realtime",
    "loop": "source.loop",
    "start_time": "source.start_time",
    "detector": "detector.kind",
    "detect_width": "detector.width",
    "mqtt": "mqtt.url",
    "host": "web.host",
    "port": "web.port",
    "models_dir": "models_dir",
}


def _setup_logging(level: str) -> None:
    import cv2

    # OpenCV's own lines (e.g. about DNN targets) are noise for users (see the top of this file).
    if not _USER_CV_LOG:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_FATAL)
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _stream_parser(sub) -> None:
    p = sub.add_parser("stream", help="process a live or recorded video source (default)")
    p.add_argument("--config", help="YAML config (default config/default.yaml)")
    p.add_argument("--source", action="append",
                   help="webcam index, video file, folder of images, rtsp:// or http(s):// URL; repeat "
                        "it to run several cameras in this one process, sharing one copy of the nets")
    p.add_argument("--camera", action="append",
                   help="camera name used in events and MQTT topics (one per --source)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--display", dest="display", action="store_const", const=True,
                   help="show a live window (q or Esc quits)")
    g.add_argument("--headless", dest="display", action="store_const", const=False,
                   help="no window (default)")
    p.add_argument("--output", help="write the annotated video to FILE.mp4")
    p.add_argument("--events", help="append events to FILE.jsonl")
    p.add_argument("--stdout-events", action="store_const", const=True, help="print events on stdout")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    p.add_argument("--realtime", action="store_const", const=True,
                   help="pace a file at its own fps, dropping frames when late, as a camera would")
    p.add_argument("--loop", action="store_const", const=True, help="replay a file forever")
    p.add_argument("--start-time", metavar="ISO",
                   help="when a file or folder was recorded (e.g. 2026-12-01T08:00:00Z): events carry "
                        "this + the frame's time (default: the container's creation_time, else the "
                        "file's mtime)")
    p.add_argument("--detector", choices=["yunet", "centerface", "ssd_tf", "ssd_caffe"])
    p.add_argument("--detect-width", type=int, help="detection runs on a copy this wide")
    p.add_argument("--mqtt", help="publish events to this broker (mqtt://host:port)")
    p.add_argument("--serve", action="store_true", help="also serve the web page and live MJPEG")
    p.add_argument("--host", help="web server address (with --serve)")
    p.add_argument("--port", type=int, help="web server port (with --serve)")
    p.add_argument("--models-dir", help="folder with the model files")
    p.add_argument("--summary-json", help="also write the end-of-run summary to this file")


def _overrides(a: argparse.Namespace, i: int = 0) -> dict:
    """Config overrides from the flags; ``i``: which ``--source`` / ``--camera`` (repeatable)."""
    o = {key: getattr(a, flag, None) for flag, key in STREAM_FLAGS.items()}
    for flag in ("source", "camera"):
        v = o[STREAM_FLAGS[flag]]
        o[STREAM_FLAGS[flag]] = v[i] if isinstance(v, list) else v
    if getattr(a, "mqtt", None):
        o["mqtt.enabled"] = True
    return o


def cmd_stream(a: argparse.Namespace) -> int:
    from streamer.runtime import wiring as app
    from streamer.media.output import LatestJpeg
    from streamer.runtime.signals import stop_on_signals

    import threading

    # Handlers first: a SIGTERM while the first open of a live source or the model loading is
    # blocked inside cv2 must still exit 0 within 2 s (the build runs on a helper thread; this
    # thread only waits, so the handler runs at once).
    stop = threading.Event()
    running: list = []

    stop_on_signals(stop, "the stream", also=lambda: [p.stop() for p in running])
    _setup_logging("info")
    if a.source and len(a.source) > 1:
        return _stream_several(a, stop, running)
    cfg = config_mod.load(a.config, _overrides(a))
    logging.getLogger().setLevel(cfg.log_level.upper())
    mjpeg = LatestJpeg() if a.serve else None
    pipeline = app.build_pipeline_unless_stopped(cfg, stop, mjpeg=mjpeg)
    if pipeline is not None:
        running.append(pipeline)
    # A signal during the build, also one whose handler ran only once the build had returned:
    # nothing was accepted yet, so nothing runs (as with several cameras below).
    if pipeline is None or stop.is_set():
        if pipeline is not None:
            pipeline.stop()
        log.info("stopped before the stream started")
        return 0
    server = None
    if a.serve:
        from streamer.web import server as web
        server = web.start_background(cfg, pipeline=pipeline, mjpeg=mjpeg)
    from streamer.media.sources import redact
    log.info("streaming %s (camera %s)", redact(cfg.source.uri), cfg.camera)
    summary = pipeline.run()
    if server is not None:
        server.shutdown()
    out = sys.stderr if cfg.events.stdout else sys.stdout
    print(format_summary(summary, cfg), file=out)
    if a.summary_json:
        with open(a.summary_json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0


def _stream_several(a: argparse.Namespace, stop, running: list) -> int:
    """Several ``--source`` in one process (``runtime.multi``): headless, no server or video."""
    from streamer.runtime import multi
    from streamer.runtime import wiring as app

    n = len(a.source)
    for flag, on in (("--display", a.display), ("--serve", a.serve), ("--output", a.output)):
        if on:
            raise StreamerError(f"{flag} takes one --source; to watch several cameras run a site "
                                "(run.py site)")
    if a.camera and len(a.camera) != n:
        raise StreamerError(f"give one --camera per --source ({n}) or none, got {len(a.camera)}")
    cfgs = []
    for i in range(n):
        cfg = config_mod.load(a.config, _overrides(a, i))
        cfgs.append(cfg if a.camera else config_mod.replace(cfg, camera=f"{cfg.camera}-{i + 1}"))
    logging.getLogger().setLevel(cfgs[0].log_level.upper())
    names = [c.camera for c in cfgs]
    if len(set(names)) != n:
        raise StreamerError(f"camera names must differ, got {', '.join(names)}")
    for cfg in cfgs:
        p = app.build_pipeline_unless_stopped(cfg, stop)
        if p is None:
            break
        running.append(p)
    if stop.is_set() or len(running) < n:
        for p in running:
            p.stop()
        log.info("stopped before the streams started")
        return 0
    log.info("streaming %d cameras in one process: %s", n, ", ".join(names))
    summaries = multi.run_all(running, stop)
    out = sys.stderr if cfgs[0].events.stdout else sys.stdout
    for cfg, s in zip(cfgs, summaries):
        print(f"camera {cfg.camera}\n{format_summary(s, cfg)}", file=out)
    if a.summary_json:
        with open(a.summary_json, "w") as f:
            json.dump({c.camera: s for c, s in zip(cfgs, summaries)}, f, indent=2)
    return 0


def format_summary(s: dict, cfg) -> str:
    lines = [
        "── summary ─────────────────────────────────────",
        f"frames        {s['frames_processed']} processed / {s['frames_in']} read, "
        f"{s['frames_dropped']} dropped ({s['frames_dropped_queue']} from the queue, "
        f"{s['frames_stale']} stale)",
        f"speed         {s['processing_fps']} fps processing, first frame "
        + (f"{s['ready_s']} s after launch" if s.get("ready_s") is not None
           else f"{s['startup_s']} s after the models loaded"),
        f"latency       p50 {s['latency_ms_p50']:.0f} ms, p95 {s['latency_ms_p95']:.0f} ms",
        f"faces         {s['people']} people tracked, up to {s['faces_max_in_frame']} in one frame",
        f"attributes    {s['attribute_calls']} face classifications "
        f"({s['attribute_calls_per_frame']} per frame)",
        f"events        {json.dumps(s['events'])}",
    ]
    if s["sink_errors"]:
        lines.append(f"sink errors   {json.dumps(s['sink_errors'])}")
    if s.get("mqtt_unsent") is not None:
        lines.append(f"mqtt          mqtt_unsent: {s['mqtt_unsent']} event(s) not acknowledged by the broker"
                     + (" (kept in the spool for the next run)" if s["mqtt_unsent"] else "")
                     + (f", {s['mqtt_dropped']} dropped by the spool bounds" if s.get("mqtt_dropped") else ""))
    faults = {k: s.get(k, 0) for k in ("outages", "reconnects", "decode_errors", "stage_errors",
                                        "hung_calls", "thread_restarts")}
    if any(faults.values()):
        lines.append("faults        " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in faults.items()))
    if cfg.output.video:
        lines.append(f"video         {cfg.output.video}")
    if cfg.events.jsonl:
        lines.append(f"events file   {cfg.events.jsonl}")
    return "\n".join(lines)


def cmd_models(a: argparse.Namespace) -> int:
    from streamer.media import modelstore
    from pathlib import Path

    if a.fetch:
        mirror = os.environ.get("STREAMER_MODEL_MIRROR")
        failed = modelstore.fetch(Path(a.models_dir) if a.models_dir else None,
                                  Path(mirror) if mirror else None)
        if failed:
            raise StreamerError(f"could not fetch {', '.join(failed)}")
    d = modelstore.verify(None, Path(a.models_dir) if a.models_dir else None)
    print(f"models in {d}: verified")
    if a.tune or a.tune_if_needed:
        _tune(Path(a.models_dir) if a.models_dir else None, force=a.tune)
    return 0


def _tune(models_dir, force: bool) -> None:
    """Measure which backend ``auto`` should stand for here (inference/choice.py)."""
    from streamer.inference import choice

    if choice.choice_path() is None:
        print("backends: not measured (STREAMER_BACKEND_CHOICE=off): auto is OpenVINO")
        return
    record = None if force else choice.measured(models_dir)
    if record is None:
        print("backends: timing a stream's nets on each installed backend (a few seconds)...", flush=True)
        try:
            record = choice.tune(models_dir, progress=lambda s: print(f"  {s}", flush=True))
        except (OSError, ValueError) as e:  # an unwritable cache: auto just stays OpenVINO
            print(f"backends: measurement not stored ({e}); auto stays OpenVINO", file=sys.stderr)
            return
    else:
        print(f"backends: measured {record['measured_at']} on this machine (--tune re-measures)")
    for b, c in sorted(record["costs"].items(), key=lambda kv: kv[1]["frame_ms"]):
        print(f"  {b:12s} {c['frame_ms']:6.2f} ms per frame (YuNet 640x352 {c['yunet_ms']:.2f}, "
              f"age {c['age_ms']:.2f}, gender {c['gender_ms']:.2f} ms per call)")
    print(f"backends: inference.backend auto = {record['chosen']} ({choice.choice_path()})")


def cmd_config_schema(a: argparse.Namespace) -> int:
    from streamer.config import schema

    if a.write:
        for p in schema.write():
            print(f"wrote {p}")
    else:
        sys.stdout.write(schema.render("site" if a.site else "config"))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "stream")
    ap = argparse.ArgumentParser(prog="run.py", description="streamer: real-time face analytics")
    sub = ap.add_subparsers(dest="cmd", required=True)
    _stream_parser(sub)
    m = sub.add_parser("models", help="verify (or --fetch) the model files")
    m.add_argument("--fetch", action="store_true")
    m.add_argument("--models-dir")
    m.add_argument("--tune", action="store_true",
                   help="time the nets on every installed backend; auto then uses the fastest")
    m.add_argument("--tune-if-needed", action="store_true",
                   help="--tune unless this machine already has a measurement (the set-up's step)")
    cs = sub.add_parser("config-schema", help="print the JSON Schema of the config file")
    cs.add_argument("--site", action="store_true", help="the multi-camera (cameras:) file's schema")
    cs.add_argument("--write", action="store_true", help="regenerate schema/*.schema.json")
    handlers = {"stream": cmd_stream, "models": cmd_models, "config-schema": cmd_config_schema}
    import importlib

    # Import only the chosen subcommand's module (Flask alone costs ~0.1 s of stream start-up);
    # --help imports them all to list them.
    for name, mod in (("batch", "streamer.batch.cli"), ("serve", "streamer.web.server"), ("bench", "bench.cli"),
                      ("site", "streamer.runtime.site")):
        if argv[0] in (name, "-h", "--help"):
            module = importlib.import_module(mod)
            module.add_parser(sub)
            handlers[name] = module.run_cli
    a = ap.parse_args(argv)
    try:
        return handlers[a.cmd](a)
    except StreamerError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
