#!/usr/bin/env python3
"""Where one frame's time goes, stage by stage, on a real clip.

    python scripts/profile_frame.py [CLIP] [--frames N] [--cprofile 15] [--json OUT]

Runs the product's own stages in one thread, frame after frame, exactly as the inference
thread calls them (``app.build_processor`` -> ``Processor.process``), and times each stage by
wrapping it (no code changes needed in the stages):

    decode   VideoCapture.read (the capture thread's work)
    resize   detect._downscale (the frame shrunk for YuNet)
    detect   the detector's network + decoding its output (detect() minus resize)
    scenecut SceneCutDetector.is_cut
    track    Tracker.update
    chips    align.face_chips (alignment, pyramid, warp, sharpness) for faces due
    nets     cv2.dnn.Net.forward of the attribute nets (found on the attribute objects)
    attr     the rest of attributes.estimate (blobs, smoothing, bookkeeping)
    events   EventBuilder.update
    other    the rest of Processor.process
    draw     overlay.draw (only when a window / video / MJPEG watches; not on the headless path)
    encode   JPEG (MJPEG viewers) and mp4v (``--output``) per frame (same: only with a consumer)

In the pipeline, decode runs on the capture thread in parallel with inference (the rest), so
headless throughput on 2 cores is bounded by max(decode, inference) plus contention.

Also used by ``run.py bench --only profile`` through ``profile(clip)``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOTES = {
    "decode": "time blocked in VideoCapture.read (capture thread; FFmpeg decodes ahead on its own threads)",
    "resize": "frame downscaled for the detector",
    "detect": "detector network + output decoding",
    "scenecut": "scene-cut check",
    "track": "Kalman + assignment",
    "chips": "face alignment + chip sampling (faces due only)",
    "nets": "attribute nets forward (faces due only)",
    "attr": "rest of attribute estimation",
    "events": "event lifecycle",
    "other": "rest of Processor.process",
    "draw": "overlay (only with a viewer/output)",
    "encode_jpeg": "JPEG q80 for MJPEG (only while watched)",
    "encode_mp4v": "mp4v VideoWriter (only with --output)",
}
HEADLESS = ("decode", "resize", "detect", "scenecut", "track", "chips", "nets", "attr", "events", "other")


class Timers:
    """Wall time (``t``) and CPU time of the whole process (``c``) per stage. The profile runs
    one Python thread, so the process CPU time during a stage is that stage's CPU cost, OpenCV's
    worker threads included: on a busy machine it stays close to the quiet-machine wall time
    while the wall time grows with the wait for a core."""

    def __init__(self):
        self.t = defaultdict(float)
        self.c = defaultdict(float)
        self.n = defaultdict(int)

    def add(self, stage: str, wall: float, cpu: float) -> None:
        self.t[stage] += wall
        self.c[stage] += cpu
        self.n[stage] += 1

    def wrap(self, stage: str, fn):
        def timed(*a, **k):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                self.add(stage, time.perf_counter() - t0, time.process_time() - c0)
        timed.__wrapped__ = fn
        return timed


class Proxy:
    """Stands in for a stage object: named methods are timed, everything else passes through."""

    def __init__(self, obj, timers: Timers, methods: dict):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_wrapped", {m: timers.wrap(stage, getattr(obj, m))
                                              for m, stage in methods.items() if hasattr(obj, m)})

    def __getattr__(self, name):
        w = object.__getattribute__(self, "_wrapped")
        return w[name] if name in w else getattr(object.__getattribute__(self, "_obj"), name)

    def __setattr__(self, name, value):
        setattr(object.__getattribute__(self, "_obj"), name, value)


class NetProxy:
    def __init__(self, net, timers: Timers):
        self._net = net
        self.forward = timers.wrap("nets", net.forward)

    def __getattr__(self, name):
        return getattr(self._net, name)


def _wrap_nets(obj, timers: Timers, depth: int = 0, seen=None) -> int:
    """Replace every cv2.dnn.Net reachable through attributes of ``obj`` by a timing proxy."""
    import cv2
    seen = seen if seen is not None else set()
    if depth > 3 or id(obj) in seen:
        return 0
    seen.add(id(obj))
    found = 0
    attrs = getattr(obj, "__dict__", None)
    if not attrs:
        return 0
    for k, v in list(attrs.items()):
        if isinstance(v, cv2.dnn.Net):
            try:
                setattr(obj, k, NetProxy(v, timers))
                found += 1
            except (AttributeError, TypeError):  # frozen dataclass
                object.__setattr__(obj, k, NetProxy(v, timers))
                found += 1
        elif isinstance(v, (list, tuple, dict)):
            items = v.values() if isinstance(v, dict) else v
            for it in items:
                found += _wrap_nets(it, timers, depth + 1, seen)
        elif hasattr(v, "__dict__") and type(v).__module__.startswith("streamer"):
            found += _wrap_nets(v, timers, depth + 1, seen)
    return found


def profile(clip: str | Path, max_frames: int = 0, cprofile_top: int = 12, config_overrides=None) -> dict:
    import cv2

    from streamer.core import align, detect
    from streamer.runtime import wiring as app
    from streamer import config
    from streamer.media import overlay
    from streamer.types import Frame, Stats

    o = {"source.uri": str(clip)}
    import importlib.util
    attributes_present = importlib.util.find_spec("streamer.core.attributes") is not None
    if not attributes_present:
        o["attributes.enabled"] = False
    o.update(config_overrides or {})
    attributes_present = attributes_present and o.get("attributes.enabled", True)
    cfg = config.load(None, o)
    proc = app.build_processor(cfg)
    timers = Timers()

    # Wrap the stages where the processor looks them up.
    orig_downscale = detect._downscale
    detect._downscale = timers.wrap("resize", orig_downscale)
    proc.detector = Proxy(proc.detector, timers, {"detect": "detect_total"})
    proc.tracker = Proxy(proc.tracker, timers, {"update": "track"})
    proc.events = Proxy(proc.events, timers, {"update": "events"})
    if proc.scenecut is not None:
        proc.scenecut = Proxy(proc.scenecut, timers, {"is_cut": "scenecut"})
    restore = [(detect, "_downscale", orig_downscale)]
    nets_found = 0
    if proc.attributes is not None:
        import streamer.core.attributes as attributes_mod
        for mod in (align, attributes_mod):
            for name in ("face_chips",):
                f = getattr(mod, name, None)
                if f is not None:
                    setattr(mod, name, timers.wrap("chips", getattr(f, "__wrapped__", f)))
                    restore.append((mod, name, f))
        nets_found = _wrap_nets(proc.attributes, timers)
        proc.attributes = Proxy(proc.attributes, timers, {"estimate": "attr_total"})

    # Decode alone first: in the profiled loop read() only shows the time it blocks, because
    # FFmpeg decodes ahead on its own threads while the frame is processed.
    cap = cv2.VideoCapture(str(clip))
    t0, c0, k = time.perf_counter(), time.process_time(), 0
    while cap.read()[0]:
        k += 1
        if max_frames and k >= max_frames:
            break
    decode_alone = {"ms": round((time.perf_counter() - t0) / max(k, 1) * 1000, 2),
                    "cpu_ms": round((time.process_time() - c0) / max(k, 1) * 1000, 2)}
    cap.release()
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    tmp = tempfile.mkdtemp(prefix="profile-")
    writer = None
    prof = cProfile.Profile()
    n = faces = 0
    try:
        while True:
            t0, c0 = time.perf_counter(), time.process_time()
            ok, image = cap.read()
            timers.add("decode", time.perf_counter() - t0, time.process_time() - c0)
            if not ok:
                break
            frame = Frame(n, time.time(), time.monotonic(), image)
            t0, c0 = time.perf_counter(), time.process_time()
            if cprofile_top:
                prof.enable()
            p = proc.process(frame)
            if cprofile_top:
                prof.disable()
            timers.add("process", time.perf_counter() - t0, time.process_time() - c0)
            faces += p.faces
            # Output stage (only with a consumer): draw, then encode as MJPEG and as a file would.
            img = image.copy()
            stats = Stats(frames_in=n + 1, frames_processed=n + 1, fps=fps, latency_ms=10.0,
                          faces=p.faces, tracks=len(p.people))
            timers.wrap("draw", overlay.draw)(img, p.people, stats)
            timers.wrap("encode_jpeg", cv2.imencode)(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
            if writer is None:
                writer = cv2.VideoWriter(os.path.join(tmp, "p.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                         fps, (img.shape[1], img.shape[0]))
            timers.wrap("encode_mp4v", writer.write)(img)
            n += 1
            if max_frames and n >= max_frames:
                break
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        for mod, name, f in restore:
            setattr(mod, name, f)
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    if not n:
        raise RuntimeError(f"no frame decoded from {clip}")

    def split(T):
        return {
            "decode": T["decode"],
            "resize": T["resize"],
            "detect": T["detect_total"] - T["resize"],
            "scenecut": T["scenecut"],
            "track": T["track"],
            "chips": T["chips"],
            "nets": T["nets"],
            "attr": max(0.0, T["attr_total"] - T["chips"] - T["nets"]),
            "events": T["events"],
            "other": max(0.0, T["process"] - T["detect_total"] - T["scenecut"] - T["track"]
                         - T["attr_total"] - T["events"]),
            "draw": T["draw"],
            "encode_jpeg": T["encode_jpeg"],
            "encode_mp4v": T["encode_mp4v"],
        }

    stages, cpu = split(timers.t), split(timers.c)
    headless = sum(stages[k] for k in HEADLESS)
    out_stages = {k: {"ms": round(v / n * 1000, 2), "cpu_ms": round(cpu[k] / n * 1000, 2),
                      "share": round(v / headless, 3) if k in HEADLESS and headless else None,
                      "note": NOTES[k]} for k, v in stages.items()}
    out_stages["decode_alone"] = dict(decode_alone, share=None,
                                      note="decode-only loop over the same frames: FFmpeg's full "
                                           "cost (all its threads), the capture thread's real load")
    # How often the per-face stages ran: chips per frame vs faces the nets saw per frame.
    out_stages["chips"]["calls_per_frame"] = round(timers.n["chips"] / n, 3)
    out_stages["nets"]["calls_per_frame"] = round(timers.n["nets"] / n, 3)
    faces_classified = getattr(proc.attributes, "calls", None) if proc.attributes is not None else None
    inference_ms = timers.t["process"] / n * 1000
    decode_ms = max(stages["decode"] / n * 1000, decode_alone["ms"])
    top = []
    if cprofile_top:
        st = pstats.Stats(prof)
        rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:cprofile_top]
        for (file, line, func), (cc, nc, tt, ct, _) in rows:
            name = func if file == "~" else f"{Path(file).name}:{line}({func})"
            top.append({"function": name, "ms_per_frame": round(tt / n * 1000, 3),
                        "calls_per_frame": round(nc / n, 2)})
    biggest = max(HEADLESS, key=lambda k: stages[k])
    return {
        "clip": str(clip), "frames": n, "faces_per_frame": round(faces / n, 2),
        "faces_classified_per_frame": round(faces_classified / n, 3) if faces_classified is not None else None,
        "attributes_present": attributes_present, "attribute_nets_timed": nets_found,
        "stages": out_stages,
        "inference_ms_per_frame": round(inference_ms, 2),
        "decode_ms_per_frame": round(decode_ms, 2),
        "summary": (f"Headless, per frame: inference thread {inference_ms:.1f} ms (everything but "
                    f"decode), capture thread {decode_ms:.1f} ms (decode alone: "
                    f"{decode_alone['cpu_ms']:.1f} ms CPU); sequential sum "
                    f"{inference_ms + decode_ms:.1f} ms = {1000 / (inference_ms + decode_ms):.0f} fps "
                    f"on one core, bound {1000 / max(inference_ms, decode_ms):.0f} fps with the two "
                    f"threads on two cores. Biggest headless item: {biggest} "
                    f"({stages[biggest] / n * 1000:.1f} ms). Note: timings here are under cProfile "
                    "(a few % overhead on Python-heavy stages); cpu ms is the process's CPU time during the stage (OpenCV worker threads included)."),
        "top": top,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", nargs="?", help="video file (default: the sample clip)")
    ap.add_argument("--frames", type=int, default=0, help="stop after N frames")
    ap.add_argument("--cprofile", type=int, default=15, help="top N functions by own time (0: none)")
    ap.add_argument("--detect-width", type=int, help="detector.width override")
    ap.add_argument("--no-attributes", action="store_true", help="attributes.enabled false")
    ap.add_argument("--json", help="write the result here too")
    a = ap.parse_args()
    import cv2
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    clip = a.clip
    if not clip:
        data = os.environ.get("STREAMER_DATA") or str(ROOT.parent / "shared" / "data")
        clip = str(Path(data) / "video" / "face_recognition__short_hamilton_clip.mp4")
    o = {"detector.width": a.detect_width} if a.detect_width else {}
    if a.no_attributes:
        o["attributes.enabled"] = False
    r = profile(clip, a.frames, a.cprofile, o)
    print(f"{r['frames']} frames of {r['clip']}, {r['faces_per_frame']} faces/frame, "
          f"face_chips {r['stages']['chips']['calls_per_frame']}/frame, faces classified "
          f"{r['faces_classified_per_frame']}/frame, attribute-net forward calls "
          f"{r['stages']['nets']['calls_per_frame']}/frame")
    print(f"{'stage':<12}{'ms/frame':>10}{'cpu ms':>8}{'share':>8}  what")
    for k, v in r["stages"].items():
        share = f"{v['share']:.0%}" if v["share"] is not None else ""
        print(f"{k:<12}{v['ms']:>10.2f}{v['cpu_ms']:>8.2f}{share:>8}  {v['note']}")
    print(r["summary"])
    if r["top"]:
        print("\ntop functions by own time (ms/frame, calls/frame):")
        for t in r["top"]:
            print(f"  {t['ms_per_frame']:8.3f} {t['calls_per_frame']:8.2f}  {t['function']}")
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
