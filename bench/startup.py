"""Section ``resources``: start-up (process spawn -> first processed frame, phase by phase),
import costs of the stream path, and the RSS of one real-time stream."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import registry
from bench.common import GOALS, ROOT, median, say
from bench.report import table
from bench.streams import run_streams

# The child: ``cli.main(["stream", ...])`` with ``wiring.build_pipeline`` wrapped to
# timestamp its start, its end and the first result (then stop).
_PROBE = r"""
import json, sys, time
t_py = time.monotonic()
sys.path.insert(0, {root!r})
from streamer.runtime import wiring
from streamer import cli
marks = {{"t_py": t_py}}
_build = wiring.build_pipeline
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
wiring.build_pipeline = build_pipeline
rc = cli.main(["stream"] + {argv!r})
marks.pop("pipe", None)
with open({out!r}, "w") as f:
    json.dump(dict(marks, rc=rc), f)
"""

# What ``run.py stream`` imports (``cli.main`` imports only the chosen subcommand's module).
STREAM_MODULES = ("streamer.cli", "streamer.config", "streamer.runtime.wiring", "streamer.runtime.pipeline",
                  "streamer.core.processor", "streamer.core.track", "streamer.core.scenecut", "streamer.core.attributes",
                  "streamer.core.events", "streamer.core.detect", "streamer.media.sources", "streamer.media.output")


def startup_probe(clip: Path, config_args: list[str] = (), bytecode_cache: bool = True) -> dict:
    """``run.py stream`` from spawn to its first processed frame: the CLI's own code in a fresh
    interpreter, with ``wiring.build_pipeline`` wrapped to timestamp its start, its end and the
    first result. The clock is CLOCK_MONOTONIC, shared by every process on Linux, so the
    child's timestamps compare with the parent's spawn time.

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


def render_resources(d) -> list:
    s = d.get("startup_s", {})
    rss = d.get("rss", {})
    return [table(["measure", "value"], [
        ["startup total: spawn → first processed frame (s)", s.get("total_s")],
        ["… interpreter start", s.get("python_s")],
        ["… imports and CLI set-up", s.get("imports_s")],
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


def resources_findings(data: dict) -> list[str]:
    r = data["resources"]
    imp, st = r.get("import_s") or {}, r.get("startup_s") or {}
    if not (imp.get("streamer.core.track") and st.get("total_s")):
        return []
    return [f"Startup {st['total_s']} s, of which importing `streamer.core.track` (scipy.optimize "
            f"for `linear_sum_assignment`) costs {imp['streamer.core.track']} s in a fresh process."]


@registry.section("resources", "Startup and memory", render_resources, order=40,
                  findings=resources_findings,
                  goal_labels={"startup_s": ("startup: spawn → first processed frame (s)", "<=")})
def resources(ctx: registry.Context) -> dict:
    """Startup (process spawn -> first processed frame) and peak / steady RSS."""
    clip = ctx.clips.get("720p")
    n = 1 if ctx.quick else 5
    cfg_args = ctx.stream_config_args()
    startup_probe(clip, cfg_args)  # writes __pycache__, warms the file cache
    probes, nocache = [], []
    for i in range(n):
        say(f"startup probe {i + 1}/{n}")
        probes.append(startup_probe(clip, cfg_args))
        if i < 2:
            nocache.append(startup_probe(clip, cfg_args, bytecode_cache=False))
    keys = ("python_s", "imports_s", "build_s", "first_frame_s", "total_s")
    ok = [p for p in probes if "error" not in p]
    startup = {k: median([p[k] for p in ok]) for k in keys} if ok else {}
    ok = [p for p in nocache if "error" not in p]
    startup_nocache = {k: median([p[k] for p in ok]) for k in keys} if ok else {}
    # The CLI end to end (spawn -> exit, including shutdown) for one frame, as a user sees it.
    cli = []
    for _ in range(1 if ctx.quick else 3):
        with tempfile.TemporaryDirectory(dir=ctx.cache) as tmp:
            t0 = time.monotonic()
            cmd = [sys.executable, str(ROOT / "run.py"), "stream", *cfg_args, "--source", str(clip),
                   "--max-frames", "1", "--headless", "--summary-json", str(Path(tmp) / "s.json")]
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=120, env=env)
            if r.returncode == 0:
                cli.append(round(time.monotonic() - t0, 3))
    imports = [import_costs() for _ in range(1 if ctx.quick else 3)]
    mods = sorted({m for i in imports for m in i}, key=lambda m: -statistics.median(
        [i.get(m, 0.0) for i in imports]))
    import_s = {m: median([i.get(m, 0.0) for i in imports]) for m in mods[:8]}
    seconds = 3.0 if ctx.quick else 20.0
    say(f"RSS: one 720p stream at 30 fps in real time for {seconds:g} s")
    one = run_streams(ctx, 1, clip, seconds, 29.97)
    out = {"startup_s": startup, "startup_runs": probes, "cli_one_frame_wall_s": median(cli),
           "startup_no_bytecode_cache_s": startup_nocache,
           "env_PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
           "import_s": import_s,
           "rss": {"clip": "720p, 30 fps, real time", "seconds": seconds,
                   "steady_mb": one["rss_steady_mb"], "peak_mb": one["rss_peak_mb"],
                   "drop_ratio": one["drop_ratio"]}}
    if startup.get("total_s") is not None:
        out["goals"] = {"startup_s": {"value": startup["total_s"], "goal": GOALS["startup_s"],
                                      "met": startup["total_s"] <= GOALS["startup_s"]}}
    return out
