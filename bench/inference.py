"""Sections ``backends`` and ``density_backends``: speed, start-up, memory and streams per box,
per inference backend and detector (issue 13).

``backends``: for each (backend, detector) the whole pipeline in-process on the 1080p sample
clip (detection every frame + tracking + attributes), beside decode-only and the seed's way
measured in the same run; start-up (``run.py stream`` spawn -> first processed frame) with a
cold and a warm OpenVINO model cache; the RSS of one real-time 720p 15 fps stream; and the
warm cost of each net on this CPU (ms per call, 640x352 detector input, batch of 4 chips).

``density_backends``: how many real-time 720p 15 fps streams (one ``run.py stream`` process
each, every frame detected unless the variant says otherwise) run at once with < 1 % drops,
per backend, threads per process and cadence. Each stream decodes on one FFmpeg thread (the
product's ``source.decoder_threads`` auto up to 1080p): N processes already fill both cores.

    python run.py bench --only backends,density_backends
"""

from __future__ import annotations

import os

from bench import registry
from bench.common import median, say
from bench.report import table

DEFAULT_ROW = "default (auto), yunet"
FPS_VARIANTS = {
    DEFAULT_ROW: {"detector.kind": "yunet"},  # inference.backend auto: this machine's measured choice
    "openvino, yunet": {"inference.backend": "openvino", "detector.kind": "yunet"},
    "opencv, yunet": {"inference.backend": "opencv", "detector.kind": "yunet"},
    "onnxruntime, yunet": {"inference.backend": "onnxruntime", "detector.kind": "yunet"},
    "openvino, centerface": {"inference.backend": "openvino", "detector.kind": "centerface"},
    "opencv, centerface": {"inference.backend": "opencv", "detector.kind": "centerface"},
}
DENSITY_VARIANTS = {
    "openvino, 1 thread": {"inference": {"backend": "openvino", "threads": 1}},
    "opencv, 1 thread": {"inference": {"backend": "opencv", "threads": 1}},
    "onnxruntime, 1 thread": {"inference": {"backend": "onnxruntime", "threads": 1}},
    "openvino, 2 threads": {"inference": {"backend": "openvino", "threads": 2}},
    # The cadence options on the default backend (`auto`: what `run.py models --tune` measured
    # fastest here), so "how many more" is against the default's own count.
    "default backend, 1 thread, interval 2": {"inference": {"threads": 1}, "detector": {"interval": 2}},
    "default backend, 1 thread, interval 3": {"inference": {"threads": 1}, "detector": {"interval": 3}},
    "default backend, 1 thread, interval 5": {"inference": {"threads": 1}, "detector": {"interval": 5}},
    # Every frame detected on a smaller copy: faces under ~27 px (720p) are lost; AP50 cost
    # in the `accuracy` section's scales.
    "default backend, 1 thread, detector.width 480": {"inference": {"threads": 1},
                                                      "detector": {"width": 480}},
    # Several cameras in one process (`--source` repeated): one copy of the runtime and nets.
    "one process, default backend, 1 thread": {"inference": {"threads": 1}},
}
ONE_PROCESS = "one process"
NET_BACKENDS = ("openvino", "opencv", "onnxruntime")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class _WithConfig:
    """A Context whose child streams run with one extra config file."""

    def __init__(self, ctx: registry.Context, path):
        self._ctx, self._path = ctx, path

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def stream_config_args(self) -> list[str]:
        return ["--config", str(self._path)]


def _config_file(ctx: registry.Context, name: str, data: dict):
    import yaml
    from streamer import config
    base = yaml.safe_load(config.DEFAULT_PATH.read_text())
    for section, keys in data.items():
        base.setdefault(section, {}).update(keys)
    p = ctx.cache / f"bench-{name}.yaml"
    p.write_text(yaml.safe_dump(base))
    return p


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def net_costs(repeat: int = 30) -> dict:
    """Warm ms per call of each net on each backend (median of ``repeat``), wall and CPU."""
    import time

    import numpy as np

    from streamer import inference
    from streamer.core.attribute_nets import AGE_ONNX, GENDER_ONNX, DlibNets
    from streamer.core.detectors import centerface, yunet
    from streamer.media import modelstore

    nets = [("YuNet 640x352", yunet.MODEL, yunet.SPEC, yunet.OUTPUTS, (1, 352, 640, 3)),
            ("CenterFace 640x352", centerface.MODEL, centerface.SPEC, centerface.OUTPUTS, (1, 352, 640, 3)),
            ("age, batch 4", AGE_ONNX, DlibNets.SPEC, (), (4, 64, 64, 3)),
            ("gender, batch 4", GENDER_ONNX, DlibNets.SPEC, (), (4, 32, 32, 3))]
    x_rng = np.random.default_rng(0)
    out: dict = {}
    for label, name, spec, outs, shape in nets:
        x = x_rng.integers(0, 256, shape, dtype=np.uint8)
        for b in NET_BACKENDS:
            m = inference.load(modelstore.path_of(name), spec, outs, backend=b)
            if m.backend != b:  # CenterFace's fixed input size leaves ONNX Runtime
                continue
            for _ in range(3):
                m.infer(x)
            wall, cpu = [], []
            for _ in range(repeat):
                t, c = time.perf_counter(), time.process_time()
                m.infer(x)
                wall.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
            out.setdefault(label, {})[b] = {"wall_ms": round(median(wall), 2), "cpu_ms": round(median(cpu), 2)}
    return out


def auto_backend() -> str:
    """What ``inference.backend: auto`` stands for on this machine, resolved by the product's
    own rule (``inference.active_backend``: its measurement, else OpenVINO, else OpenCV)."""
    from streamer import inference
    inference.configure(backend="auto")
    return inference.active_backend()


def render(d: dict) -> list:
    out = []
    f = d.get("fps", {})
    if f:
        out.append(f"1080p sample clip, {f.get('frames')} frames, median of {len(f.get('rounds', []))} interleaved rounds, "
                   f"default config ({f.get('threads')} inference thread(s): every core but the capture thread's; "
                   f"`auto` is {f.get('auto_is', 'openvino')} on this machine, see `run.py models --tune`); "
                   f"decode-only {f.get('decode_fps')} fps, seed's way {f.get('seed_fps')} fps.")
        out.append(table(["backend, detector", "pipeline fps", "vs decode-only", "vs seed's way"],
                         [[k, v["pipeline_fps"], f"{v['vs_decode']:.0%}", f"{v['vs_seed']:.2f}x"]
                          for k, v in f.get("variants", {}).items()]))
    s = d.get("startup", {})
    if s:
        out.append(table(["backend", "start-up, cold model cache (s)", "start-up, warm cache (s)",
                          "RSS, one 720p 15 fps stream: steady / peak (MB)"],
                         [[k, v.get("cold_s"), v.get("warm_s"),
                           f"{v.get('rss_steady_mb')} / {v.get('rss_peak_mb')}"] for k, v in s.items()]))
    n = d.get("nets", {})
    if n:
        cell = (lambda v, b: f"{v[b]['wall_ms']} / {v[b]['cpu_ms']}" if b in v else "–")
        out.append(table(["net", "OpenVINO wall / CPU ms", "OpenCV DNN wall / CPU ms", "ONNX Runtime wall / CPU ms"],
                         [[k, cell(v, "openvino"), cell(v, "opencv"), cell(v, "onnxruntime")]
                          for k, v in n.items()]))
    return out


@registry.section("backends", "Inference backends and detectors: fps, start-up, RSS, cost per net",
                  render, order=16, goal_labels={
                      "pipeline_vs_seed_1080p_default": ("1080p default config / the seed's way", ">="),
                      "pipeline_vs_decode_1080p_default": ("1080p default config / decode-only", ">="),
                      "startup_s_warm_default": ("start-up to the first processed frame, default backend (s)", "<="),
                      "rss_mb_one_stream_default": ("RSS of one 720p 15 fps stream, default backend (MB)", "<=")})
def backends(ctx: registry.Context) -> dict:
    import tempfile

    from bench.startup import startup_probe
    from bench.streams import run_streams
    from bench.ways import decode_only, run_pipeline, seed_way

    clip = ctx.clips.get("1080p")
    frames = ctx.max_frames or 300
    from streamer.inference.backend import stream_threads
    threads = stream_threads()  # what inference.threads 0 (the default) gives a stream
    names = list(FPS_VARIANTS)[:2] if ctx.quick else list(FPS_VARIANTS)
    # Rounds interleave decode-only, the seed's way and every variant, and the ratios are taken
    # within a round, then the median over rounds: on a shared machine the load drifts between
    # runs far more than it does within one round.
    rounds = []
    for i in range(ctx.runs):
        say(f"backends: 1080p round {i + 1}/{ctx.runs}: decode-only, seed's way, {len(names)} variants")
        r = {"decode": decode_only(clip, frames)["fps"], "seed": seed_way(clip, frames)["fps"]}
        for name in names:
            o = FPS_VARIANTS[name]
            r[name] = run_pipeline(clip, frames, overrides=o)["processing_fps"]  # default threads
        rounds.append(r)
    fps = {"frames": frames, "threads": threads, "rounds": rounds,
           "decode_fps": median([r["decode"] for r in rounds]), "seed_fps": median([r["seed"] for r in rounds]),
           "variants": {}}
    for name in names:
        fps["variants"][name] = {"pipeline_fps": median([r[name] for r in rounds]),
                                 "vs_decode": round(median([r[name] / r["decode"] for r in rounds]), 3),
                                 "vs_seed": round(median([r[name] / r["seed"] for r in rounds]), 2)}
    out: dict = {"fps": fps, "startup": {}}
    clip720 = ctx.clips.get("720p")
    clip15 = ctx.clips.get("720p", fps=15)
    for b in ("openvino",) if ctx.quick else NET_BACKENDS:
        with tempfile.TemporaryDirectory(dir=ctx.cache) as cold:
            cfgp = _config_file(ctx, f"startup-{b}", {"inference": {"backend": b, "cache_dir": cold}})
            say(f"backends: start-up on {b}, cold then warm cache")
            c = startup_probe(clip720, ["--config", str(cfgp)])
            w = [startup_probe(clip720, ["--config", str(cfgp)]) for _ in range(ctx.runs)]
            say(f"backends: RSS of one 720p 15 fps stream on {b}")
            rs = run_streams(_WithConfig(ctx, cfgp), 1, clip15, 3.0 if ctx.quick else 10.0, 15.0)
        out["startup"][b] = {"cold_s": c.get("total_s"), "warm_s": median([x.get("total_s") for x in w if x.get("total_s")]),
                             "warm_phases": w[-1], "rss_steady_mb": rs["rss_steady_mb"], "rss_peak_mb": rs["rss_peak_mb"]}
    if not ctx.quick:
        say("backends: cost per net")
        out["nets"] = net_costs(30)
    best = out["fps"]["variants"][DEFAULT_ROW]
    auto = out["fps"]["auto_is"] = auto_backend()
    st = out["startup"].get(auto) or out["startup"]["openvino"]
    out["goals"] = {
        "pipeline_vs_seed_1080p_default": {"value": best["vs_seed"], "goal": 4.0, "met": best["vs_seed"] >= 4.0},
        "pipeline_vs_decode_1080p_default": {"value": best["vs_decode"], "goal": 0.45, "met": best["vs_decode"] >= 0.45},
        "startup_s_warm_default": {"value": st["warm_s"], "goal": 1.0, "met": (st["warm_s"] or 9) <= 1.0},
        "rss_mb_one_stream_default": {"value": st["rss_steady_mb"], "goal": 150,
                                      "met": (st["rss_steady_mb"] or 999) <= 150},
    }
    return out


def render_density(d: dict) -> list:
    rows = []
    for k, v in d.get("variants", {}).items():
        best = next((t for t in v["trials"] if t["n"] == v["max_streams"]), {})
        rows.append([k, v["max_streams"], v.get("cpu_ms_per_frame"), v.get("streams_by_cpu"),
                     best.get("drop_ratio"), best.get("min_stream_fps"),
                     best.get("rss_steady_mb"), best.get("rss_peak_mb"),
                     ", ".join(f"{t['n']}: {t['drop_ratio']:.1%}" for t in v["trials"])])
    out = [f"720p 15 fps real time, {d.get('seconds_per_trial')} s per trial, decoder 1 thread per stream, "
           "each stream from its own point of the clip (`Clips.shifted`); "
           f"sustained = {d.get('criterion')}. \"one process\": the streams are cameras of one "
           "`run.py stream --source ... --source ...` process, RSS per stream = the process's / n.",
           table(["variant", "streams sustained", "CPU ms / frame (one stream)", "streams the CPU allows",
                  "drops at that n", "slowest stream fps",
                  "RSS per stream, steady (MB)", "RSS per stream, peak (MB)", "trials (n: drops)"], rows)]
    f = d.get("floor")
    if f:
        out += ["", f"CPU floor on this machine, one thread each: decoding a 720p frame {f['decode_cpu_ms']} ms; "
                "detecting on it (resize, YuNet on OpenVINO, output decoding):",
                table(["detector.width", "detect CPU ms / frame", "decode + detect ms",
                       "streams at 15 fps if nothing else ran"],
                      [[w, v["detect_cpu_ms"], round(f["decode_cpu_ms"] + v["detect_cpu_ms"], 2),
                        v["streams_at_most"]] for w, v in f["widths"].items()])]
    return out


@registry.section("density_backends", "Streams per box per backend, threads and cadence", render_density,
                  order=36)
def density_backends(ctx: registry.Context) -> dict:
    from bench.streams import DENSITY_MAX_DROP, DENSITY_MIN_FPS_RATIO, density_search, run_streams

    a = ctx.a
    clip = ctx.clips.get("720p", fps=15)
    seconds = a.density_seconds or (3.0 if ctx.quick else 12.0)
    limit = a.density_max or (2 if ctx.quick else 16)
    names = list(DENSITY_VARIANTS)[:1] if ctx.quick else list(DENSITY_VARIANTS)
    out = {"seconds_per_trial": seconds, "criterion": f"drops < {DENSITY_MAX_DROP:.0%} and every stream >= "
                                                      f"{DENSITY_MIN_FPS_RATIO:.0%} of 15 fps",
           "variants": {}}
    start = 1 if ctx.quick else 6
    say("density: CPU floor (decode and detect alone, one thread each)")
    out["floor"] = cpu_floor(clip, frames=40 if ctx.quick else 150)
    for name in names:
        cfgp = _config_file(ctx, f"density-{_slug(name)}", DENSITY_VARIANTS[name])
        c = _WithConfig(ctx, cfgp)
        trials: dict[int, dict] = {}

        def trial(n: int) -> bool:
            say(f"density [{name}]: {n} stream(s) x {seconds:g} s")
            trials[n] = t = run_streams(c, n, ctx.clips.shifted("720p", 15, n), seconds, 15.0,
                                        one_process=name.startswith(ONE_PROCESS))
            say(f"  drops {t['drop_ratio']:.2%}, slowest {t['min_stream_fps']} fps, RSS {t['rss_steady_mb']} MB, "
                f"{'ok' if t['sustained'] else 'NOT sustained'}")
            return t["sustained"]

        say(f"density [{name}]: CPU per frame of one stream")
        cost = stream_cpu_ms(ctx, cfgp, clip, 60 if ctx.quick else 450)
        est = round(_cores() * 1000 / (15 * cost["cpu_ms_per_frame"]), 1) if cost["cpu_ms_per_frame"] > 0 else None
        say(f"  {cost['cpu_ms_per_frame']} ms CPU per frame: about {est} streams on {_cores()} cores")
        best = density_search(trial, start, limit)
        out["variants"][name] = {"config": DENSITY_VARIANTS[name], "max_streams": best,
                                 "cpu_ms_per_frame": cost["cpu_ms_per_frame"], "streams_by_cpu": est,
                                 "trials": [trials[k] for k in sorted(trials)]}
    return out


def cpu_floor(clip, widths=(640, 480), frames: int = 150) -> dict:
    """What two parts of a stream's frame cost alone, one thread each, CPU ms: decoding it
    (FFmpeg, 1 thread) and detecting on it (resize + YuNet on OpenVINO + decoding the output),
    and the streams a box could hold if nothing else ran: cores * 1000 / (15 * (decode +
    detect)). No pipeline can beat this figure on this CPU; the pipeline's own CPU per frame
    (``stream_cpu_ms``) adds tracking, attributes, events and the hand-offs between threads."""
    import time

    import cv2

    from streamer import inference
    from streamer.config import DetectorConfig
    from streamer.core import detectors

    cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    imgs, c = [], time.process_time()
    while len(imgs) < frames:
        ok, f = cap.read()
        if not ok:
            break
        imgs.append(f)
    decode = (time.process_time() - c) * 1000 / max(1, len(imgs))
    cap.release()
    before = inference.settings()
    inference.configure(backend="openvino", threads=1)
    out = {"decode_cpu_ms": round(decode, 2), "frames": len(imgs), "widths": {}}
    try:
        for w in widths:
            det = detectors.build(DetectorConfig(kind="yunet", width=w))
            det.detect(imgs[0])
            c = time.process_time()
            for im in imgs:
                det.detect(im)
            ms = (time.process_time() - c) * 1000 / len(imgs)
            out["widths"][w] = {"detect_cpu_ms": round(ms, 2),
                                "streams_at_most": round(_cores() * 1000 / (15 * (decode + ms)), 1)}
    finally:
        inference.configure(backend=before.backend, threads=before.threads)
    return out


def stream_cpu_ms(ctx: registry.Context, cfgp, clip, frames: int = 450) -> dict:
    """CPU time per frame of one ``run.py stream`` process (user + system, all its threads,
    decode included) on ``clip`` looped, as fast as it goes, less the CPU of a 1-frame run
    (start-up): the load-independent figure behind density. A box of C cores holds about
    C * 1000 / (fps * cpu_ms) such streams."""
    one = _cpu_run(ctx, cfgp, clip, 1)
    many = _cpu_run(ctx, cfgp, clip, frames)
    ms = (many["cpu_s"] - one["cpu_s"]) * 1000 / max(1, many["frames"] - one["frames"])
    return {"frames": many["frames"], "startup_cpu_s": one["cpu_s"], "cpu_ms_per_frame": round(ms, 2)}


def _cpu_run(ctx: registry.Context, cfgp, clip, frames: int) -> dict:
    import json
    import resource
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from bench.common import ROOT
    with tempfile.TemporaryDirectory(dir=ctx.cache) as tmp:
        summary = Path(tmp) / "s.json"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "run.py", "stream", "--config", str(cfgp), "--source", str(clip),
                        "--max-frames", str(frames), "--loop", "--headless", "--camera", "cpu",
                        "--summary-json", str(summary)], cwd=ROOT,
                       capture_output=True, timeout=600, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        s = json.loads(summary.read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"frames": s.get("frames_processed") or frames, "cpu_s": cpu}
