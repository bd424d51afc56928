"""The three ways of processing a clip that the speed sections compare: decode only (the
ceiling), the seed's way (one loop, every net on every face of every frame) and the product's
pipeline exactly as ``run.py stream --headless`` builds it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from bench.common import has_attributes, pct


def decode_only(clip: Path, max_frames: int = 0) -> dict:
    """The ceiling: a ``cv2.VideoCapture`` read loop, nothing else."""
    n, fps, _ = _timed_reads(clip, max_frames)
    return {"frames": n, "fps": fps}


def _timed_reads(clip: Path, max_frames: int, per_frame=None) -> tuple[int, float, int]:
    """Read ``clip`` (calling ``per_frame(image) -> faces`` on each frame): (frames, fps from the
    first to the last frame, faces). OpenCV gets every core, as in a process of its own: a
    pipeline run before may have left it fewer (a stream's ``inference.threads`` auto)."""
    import cv2

    from streamer.inference.backend import cores
    before = cv2.getNumThreads()
    cv2.setNumThreads(cores())
    try:
        return _reads(cv2, clip, max_frames, per_frame)
    finally:
        cv2.setNumThreads(before)


def _reads(cv2, clip: Path, max_frames: int, per_frame) -> tuple[int, float, int]:
    cap = cv2.VideoCapture(str(clip))
    n, faces, t_first, t_last = 0, 0, None, None
    while True:
        ok, image = cap.read()
        if not ok:
            break
        if per_frame is not None:
            faces += per_frame(image)
        now = time.perf_counter()
        t_first = t_first or now
        t_last = now
        n += 1
        if max_frames and n >= max_frames:
            break
    cap.release()
    return n, round((n - 1) / (t_last - t_first), 1) if n > 1 else 0.0, faces


class SeedWay:
    """The seed's loop: res10 SSD on every frame, then for every face both attribute nets,
    each fed by its own ``blobFromImage`` of the padded box crop (no alignment, no batching,
    no tracking). The product's ONNX nets stand in for the seed's Caffe ones (not available
    offline, and much heavier: counting them would flatter the product)."""

    PAD = 0.2
    MEAN_RGB = (122.782, 117.001, 104.298)

    def __init__(self):
        import cv2

        from streamer import config
        from streamer.core import detect
        from streamer.media import modelstore
        cfg = config.load(None, {"detector.kind": "ssd_tf"})
        self.detector = detect.build(cfg.detector)
        self.age = cv2.dnn.readNet(str(modelstore.path_of("age-v1.onnx")))
        self.gender = cv2.dnn.readNet(str(modelstore.path_of("gender-v1.onnx")))
        self.threshold = cfg.detector.score_threshold

    def process(self, image) -> int:
        import cv2
        import numpy as np

        h, w = image.shape[:2]
        faces = 0
        for d in self.detector.detect(image):
            if d.score < self.threshold:
                continue
            x1, y1, x2, y2 = d.box
            px, py = (x2 - x1) * self.PAD, (y2 - y1) * self.PAD
            crop = image[max(0, int(y1 - py)):min(h, int(y2 + py)), max(0, int(x1 - px)):min(w, int(x2 + px))]
            if crop.size == 0:
                continue
            faces += 1
            for net, size in ((self.gender, 32), (self.age, 64)):
                blob = cv2.dnn.blobFromImage(crop, 1 / 256, (size, size), self.MEAN_RGB, True, False)
                net.setInput(blob)
                out = net.forward().ravel()
                if net is self.age:
                    float(np.dot(out, np.arange(len(out))))
                else:
                    int(np.argmax(out))
        return faces


def seed_way(clip: Path, max_frames: int = 0, seed: Optional[SeedWay] = None) -> dict:
    seed = seed or SeedWay()
    n, fps, faces = _timed_reads(clip, max_frames, seed.process)
    return {"frames": n, "fps": fps,
            "faces_per_frame": round(faces / n, 3) if n else 0.0,
            "attribute_calls_per_frame": round(faces / n, 3) if n else 0.0}


def run_pipeline(clip: Path, max_frames: int = 0, realtime: bool = False,
                 overrides: Optional[dict] = None) -> dict:
    """The product's pipeline exactly as ``run.py stream --headless`` builds it, in-process.

    Returns the pipeline's own summary plus p99 latency, frame-age percentiles and faces per
    frame, collected through ``on_result`` (called right where the pipeline measures latency).
    """
    from streamer.runtime import wiring as app
    from streamer import config
    o = {"source.uri": str(clip), "source.realtime": realtime,
         "output.max_frames": max_frames or None}
    if not has_attributes():
        o["attributes.enabled"] = False
    o.update(overrides or {})
    cfg = config.load(None, o)
    lat: list[float] = []
    faces: list[int] = []
    tracks: list[int] = []

    def on_result(r) -> None:
        lat.append((time.monotonic() - r.frame.mono) * 1000)
        faces.append(r.processed.faces)
        tracks.append(sum(1 for x in r.processed.people if x.track.confirmed))

    pipe = app.build_pipeline(cfg, on_result=on_result)
    s = pipe.run()
    n = len(faces)
    age = pipe.frame_age
    s.update({
        "latency_ms_p50": pct(lat, 50), "latency_ms_p95": pct(lat, 95),
        "latency_ms_p99": pct(lat, 99), "latency_ms_max": round(max(lat), 1) if lat else None,
        "frame_age_ms_p50": age.percentile(50) if age.n else None,
        "frame_age_ms_p95": age.percentile(95) if age.n else None,
        "frame_age_ms_p99": age.percentile(99) if age.n else None,
        "frame_age_ms_mean": round(age.total_ms / age.n, 1) if age.n else None,
        "faces_per_frame": round(sum(faces) / n, 3) if n else 0.0,
        "confirmed_tracks_per_frame": round(sum(tracks) / n, 3) if n else 0.0,
        "attributes_enabled": cfg.attributes.enabled,
    })
    return s


def run_pipeline_variant(clip: Path, max_frames: int, v: dict) -> dict:
    """``run_pipeline`` with config ``overrides`` and/or a number of OpenCV ``threads``
    (restored after)."""
    import cv2
    threads = cv2.getNumThreads()
    try:
        if v.get("threads"):
            cv2.setNumThreads(v["threads"])
        return run_pipeline(clip, max_frames, overrides=v.get("overrides"))
    finally:
        cv2.setNumThreads(threads)
