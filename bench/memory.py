"""Section ``memory``: what holds a stream's RSS, step by step (issue 13: "find what holds it").

A fresh interpreter performs, one at a time, what ``run.py stream`` does before its first
frame (imports, the inference runtime ``auto`` stands for here, each net loaded and run once) and
prints its RSS after each step, split into anonymous memory (the process's own) and file pages
(shared libraries: counted in every process's RSS, but one copy in RAM for all processes that
map them). Then real 720p 15 fps streams: one per process, and n cameras in one process,
whose growth per extra camera is what a dense box pays per stream.

    python run.py bench --only memory
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench import registry
from bench.common import ROOT, say
from bench.report import table

_STEPS = r"""
import json, sys
sys.path.insert(0, {root!r})
def mem():
    d = {{}}
    for line in open("/proc/self/status"):
        k = line.split(":")[0]
        if k in ("VmRSS", "RssAnon", "RssFile"):
            d[k] = int(line.split()[1]) / 1024
    return d
rows = []
def step(name):
    rows.append([name, mem()])
step("interpreter")
import numpy, cv2
step("numpy + cv2")
from streamer import cli, config
from streamer.runtime import wiring
cfg = config.load(None, {{"inference.threads": 1}})
step("streamer, its config and dependencies (yaml)")
from streamer import inference
inference.configure(backend=cfg.inference.backend, threads=1)
backend = inference.active_backend()
if backend == "openvino":
    from streamer.inference import ov_backend
    ov_backend.core().get_versions("CPU")
elif backend == "onnxruntime":
    import onnxruntime
step("inference runtime: " + backend)
from streamer.core import detectors
det = detectors.build(cfg.detector)
frame = numpy.zeros((720, 1280, 3), numpy.uint8)
det.detect(frame)
step("YuNet loaded for 720p and run once")
from streamer.core import attribute_nets
nets = attribute_nets.build_nets(cfg.attributes)
nets.forward(numpy.zeros((8, 64, 64, 3), numpy.uint8), numpy.zeros((8, 32, 32, 3), numpy.uint8))
step("age and gender nets loaded and run on a batch of 8")
from streamer.core.track import Tracker
Tracker.warm_up()
step("tracker warmed up")
print(json.dumps(rows))
"""


def steps() -> list:
    r = subprocess.run([sys.executable, "-c", _STEPS.format(root=str(ROOT))], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"memory steps failed: {r.stderr.strip().splitlines()[-1:]}")
    rows = json.loads(r.stdout.strip().splitlines()[-1])
    out, prev = [], None
    for name, m in rows:
        out.append({"step": name, "rss_mb": round(m["VmRSS"], 1), "anon_mb": round(m["RssAnon"], 1),
                    "file_mb": round(m["RssFile"], 1),
                    "added_mb": round(m["VmRSS"] - prev, 1) if prev is not None else None})
        prev = m["VmRSS"]
    return out


def render(d: dict) -> list:
    out = ["Step by step in a fresh process (the default backend, 1 thread, warm model cache): RSS after each "
           "step; anonymous = the process's own memory, file = shared-library pages (one copy in RAM "
           "for every process that maps them).", "",
           table(["step", "RSS (MB)", "added (MB)", "anonymous (MB)", "file pages (MB)"],
                 [[s["step"], s["rss_mb"], s["added_mb"], s["anon_mb"], s["file_mb"]]
                  for s in d.get("steps", [])])]
    st = d.get("streams", {})
    if st:
        rows = [[k, v["n"], v["processes"], v["process_rss_mb"], v["rss_steady_mb"], v.get("pss_steady_mb"),
                 f"{v['drop_ratio']:.1%}"] for k, v in st.items()]
        out += ["", "Real 720p 15 fps streams (`run.py stream --realtime`, decoder 1 thread); PSS = RSS with "
                "each shared page divided among the processes mapping it (what a stream adds to the box):", "",
                table(["layout", "streams", "processes", "RSS of a process (MB)", "RSS per stream (MB)",
                       "PSS per stream (MB)", "dropped"], rows)]
        if d.get("per_extra_camera_mb") is not None:
            out += ["", f"Each extra camera in one process adds {d['per_extra_camera_mb']} MB "
                        "(its queues, decoder, frames, tracker and threads); the runtime and the nets "
                        "are loaded once."]
    return out


@registry.section("memory", "Memory: what holds a stream's RSS", render, order=37,
                  goal_labels={"rss_mb_per_stream_one_process": (
                      "RSS per stream, 4 cameras in one process (MB)", "<="),
                      "rss_mb_one_stream": ("RSS of a one-stream process (MB)", "<=")})
def memory(ctx: registry.Context) -> dict:
    from bench.inference import _config_file, _WithConfig
    from bench.streams import run_streams

    say("memory: step by step in a fresh process")
    out: dict = {"steps": steps(), "streams": {}}
    cfgp = _config_file(ctx, "memory", {"inference": {"threads": 1}})
    c = _WithConfig(ctx, cfgp)
    seconds = 2.0 if ctx.quick else 8.0
    layouts = ((("cameras of one process", 1, True), ("cameras of one process", 4, True)) if ctx.quick else
               (("one process per stream", 1, False), ("one process per stream", 4, False),
                ("cameras of one process", 1, True), ("cameras of one process", 4, True)))
    for label, n, one in layouts:
        say(f"memory: {n} stream(s), {label}")
        out["streams"][f"{label}, {n}"] = run_streams(c, n, ctx.clips.shifted("720p", 15, n), seconds, 15.0,
                                                      one_process=one)
    one_cam = out["streams"]["cameras of one process, 1"]["process_rss_mb"]
    four = out["streams"]["cameras of one process, 4"]
    if one_cam and four["process_rss_mb"]:
        out["per_extra_camera_mb"] = round((four["process_rss_mb"] - one_cam) / 3, 1)
    out["goals"] = {"rss_mb_per_stream_one_process": {
        "value": four["rss_steady_mb"], "goal": 150, "met": (four["rss_steady_mb"] or 999) <= 150}}
    alone = out["streams"].get("one process per stream, 1")
    if alone and alone.get("rss_steady_mb"):
        out["goals"]["rss_mb_one_stream"] = {"value": alone["rss_steady_mb"], "goal": 150,
                                             "met": alone["rss_steady_mb"] <= 150}
    return out
