"""``run.py stream`` processes measured from outside (RSS, drops, fps from their summaries),
and section ``density``: how many 720p 15 fps real-time streams, one process each, run
without drops."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from bench import registry
from bench.common import GOALS, ROOT, median, say
from bench.report import table

DENSITY_MAX_DROP = 0.01  # a stream "sustains" with < 1 % frames dropped ...
DENSITY_MIN_FPS_RATIO = 0.97  # ... and processes at >= 97 % of its 15 fps
DENSITY_VARIANTS = {
    # (A "1 OpenCV thread per process" variant ran here until a stream's own default became
    # one inference thread on two cores: it measured the same work twice, and its 9 vs 10
    # against the default was this VM's noise.)
    "default": {},
}
# This VM's speed moves by 15 % within minutes, so one 15 s trial at the edge passes or fails
# by the moment it lands on: a count is sustained when the majority of up to 3 trials are.
DENSITY_RUNS = 3

# A child stream: the CLI's own code, with Pipeline.run held behind a start barrier.
_STREAM_CHILD = r"""
import os, sys, time
sys.path.insert(0, {root!r})
from streamer import cli
from streamer.runtime import pipeline
import itertools, threading
_run = pipeline.Pipeline.run
_nth = itertools.count()
_lock = threading.Lock()
def run(self):
    with _lock:
        k = next(_nth)  # the k-th camera of this process (several with --source repeated)
    open({ready!r}, "w").close()
    while not os.path.exists({go!r}):
        time.sleep(0.01)
    t = float(open({go!r}).read()) + {offset!r} + k * {step!r}
    time.sleep(max(0.0, t - time.monotonic()))
    return _run(self)
pipeline.Pipeline.run = run
sys.exit(cli.main(["stream"] + {argv!r}))
"""


def proc_status(pid: int) -> Optional[dict]:
    """VmRSS / VmHWM of a process in kB, and Pss (its RSS with every shared page divided among
    the processes that map it: what it really adds to the box), or None once it has gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return out


def stream_argv(config_args: list[str], clip: Path, frames: int, summary: Path) -> list[str]:
    """The arguments after ``run.py stream`` of one benchmark stream."""
    return [*config_args, "--source", str(clip), "--realtime", "--loop", "--max-frames", str(frames),
            "--headless", "--camera", "bench", "--summary-json", str(summary)]


def _several(argv: list[str], sources: list[Path]) -> list[str]:
    """One stream's arguments turned into one camera per source, all in one process."""
    out, skip = [], False
    for x in argv:
        if skip:
            skip = False
            continue
        if x in ("--source", "--camera"):
            skip = True
            if x == "--source":
                for k, src in enumerate(sources):
                    out += ["--source", str(src), "--camera", f"bench-{k + 1}"]
            continue
        out.append(x)
    return out


def run_streams(ctx: registry.Context, n: int, clip, seconds: float, fps: float,
                env: Optional[dict] = None, one_process: bool = False) -> dict:
    """``n`` ``run.py stream`` processes, each reading ``seconds`` of ``clip`` paced at ``fps``
    (``clip``: one path for every stream, or a list with one per stream, as
    ``Clips.shifted`` gives)
    (``one_process``: one process with ``--source`` given ``n`` times; its RSS is then shared
    by its ``n`` streams and reported per stream as RSS / n, the total beside it).

    Each child runs the CLI's own code (``cli.main(["stream", ...])``) behind a start
    barrier: it builds everything (imports, models, source), signals ready, and starts
    streaming only once all ``n`` are ready, phases spread over one frame interval as
    unsynchronised cameras would be. So the trial measures steady state, not the CPU burst
    of ``n`` interpreters starting at once.
    """
    frames = max(2, int(seconds * fps))
    tmp = Path(tempfile.mkdtemp(prefix=f"streams-n{n}-", dir=ctx.cache))
    procs = []
    e = dict(os.environ, **(env or {}))
    nproc, per = (1, n) if one_process else (n, 1)
    clips = list(clip) if isinstance(clip, (list, tuple)) else [clip] * n
    for i in range(nproc):
        log = open(tmp / f"s{i}.log", "wb")
        argv = stream_argv(ctx.stream_config_args(), clips[i], frames, tmp / f"s{i}.json")
        if one_process:
            argv = _several(argv, clips)
        code = _STREAM_CHILD.format(root=str(ROOT), argv=argv, ready=str(tmp / f"ready{i}"),
                                    go=str(tmp / "go"), offset=i / (n * fps), step=1 / (n * fps))
        p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=log,
                             stderr=subprocess.STDOUT, env=e)
        procs.append((p, log))
    t_wait = time.monotonic() + 120
    while time.monotonic() < t_wait and not all(
            (tmp / f"ready{i}").exists() or procs[i][0].poll() is not None for i in range(nproc)):
        time.sleep(0.05)
    (tmp / "go.part").write_text(repr(time.monotonic() + 0.3))
    (tmp / "go.part").replace(tmp / "go")
    rss: dict[int, list[int]] = {i: [] for i in range(nproc)}
    pss: dict[int, list[int]] = {i: [] for i in range(nproc)}
    hwm: dict[int, int] = {}
    deadline = time.monotonic() + seconds * 3 + 60
    while any(p.poll() is None for p, _ in procs) and time.monotonic() < deadline:
        for i, (p, _) in enumerate(procs):
            st = proc_status(p.pid)
            if st:
                rss[i].append(st.get("VmRSS", 0))
                if "Pss" in st:
                    pss[i].append(st["Pss"])
                hwm[i] = max(hwm.get(i, 0), st.get("VmHWM", 0))
        time.sleep(0.25)
    streams = []
    for i, (p, log) in enumerate(procs):
        if p.poll() is None:
            p.kill()
        p.wait()
        log.close()
        try:
            got = json.loads((tmp / f"s{i}.json").read_text())
            got = list(got.values()) if one_process and n > 1 else [got]
        except (OSError, ValueError, AttributeError):
            got = [{"error": f"no summary (exit {p.returncode}); see {tmp / f's{i}.log'}"}] * per
        samples = rss[i][len(rss[i]) // 2:] or rss[i]
        for s in got:
            s["rss_steady_mb"] = round(statistics.median(samples) / 1024 / per, 1) if samples else None
            s["rss_peak_mb"] = round(hwm.get(i, 0) / 1024 / per, 1) if hwm.get(i) else None
            s["process_rss_mb"] = round(statistics.median(samples) / 1024, 1) if samples else None
            ps = pss[i][len(pss[i]) // 2:]
            s["pss_steady_mb"] = round(statistics.median(ps) / 1024 / per, 1) if ps else None
            streams.append(s)
    ok = [s for s in streams if "error" not in s]
    fin = sum(s.get("frames_in", 0) for s in ok)
    lost = sum(s.get("frames_dropped", 0) for s in ok)  # queue + stale (one definition)
    fps_min = min((s.get("processing_fps", 0.0) for s in ok), default=0.0)
    drop = lost / fin if fin else 1.0
    # The bar is per stream ("each dropping < 1 %"): the worst stream decides.
    drop_max = max((s.get("frames_dropped", 0) / s["frames_in"] if s.get("frames_in") else 1.0
                    for s in ok), default=1.0)
    if len(ok) == n:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "n": n, "frames_per_stream": frames, "failed": n - len(ok), "drop_ratio": round(drop, 4),
        "drop_ratio_max": round(drop_max, 4), "frames_in": fin, "frames_lost": lost, "min_stream_fps": fps_min,
        "latency_ms_p95_max": max((s.get("latency_ms_p95", 0.0) for s in ok), default=None),
        "rss_steady_mb": median([s["rss_steady_mb"] for s in streams]),
        "rss_peak_mb": max((s["rss_peak_mb"] or 0 for s in streams), default=None),
        "pss_steady_mb": median([s["pss_steady_mb"] for s in streams if s.get("pss_steady_mb")]) if any(
            s.get("pss_steady_mb") for s in streams) else None,
        "processes": nproc, "process_rss_mb": max((s.get("process_rss_mb") or 0 for s in streams), default=None),
        "errors": [s["error"] for s in streams if "error" in s][:3],
        "sustained": len(ok) == n and drop_max < DENSITY_MAX_DROP and fps_min >= DENSITY_MIN_FPS_RATIO * fps,
    }


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


def render_density(d) -> list:
    out = [f"Criterion: {d.get('criterion')}; {d.get('seconds_per_trial')} s per trial; up to "
           f"{d.get('limit_tested')} streams. Each stream is `run.py stream --realtime --loop "
           "--headless` on the 720p 15 fps clip, each stream from its own point of it (as cameras "
           "of one site show different scenes; the CLI's own code behind a start barrier, so "
           "the trial measures steady state, phases spread over one frame).", ""]
    variants = d.get("variants") or {"default": d}
    for name, v in variants.items():
        env = " ".join(f"{k}={x}" for k, x in (v.get("env") or {}).items())
        rows = [[t["n"], f"{t['drop_ratio']:.2%}", f"{t.get('drop_ratio_max', t['drop_ratio']):.2%}",
                 t.get("min_stream_fps"), t.get("latency_ms_p95_max"),
                 t.get("rss_steady_mb"), t.get("failed"),
                 " ".join(f"{r:.1%}" for r in t.get("worst_stream_drops_per_run", [])) or "–",
                 t.get("sustained")] for t in v.get("trials", [])]
        out += [f"**{name}**{f' (`{env}`)' if env else ''}: **{v.get('max_streams')} streams** sustained.", "",
                table(["streams", "dropped", "worst stream dropped", "slowest stream fps", "worst p95 latency ms",
                       "RSS per stream MB", "failed", "worst stream per run", "sustained"], rows), ""]
    return out


def density_findings(data: dict) -> list[str]:
    dens = data["density"].get("variants", {})
    if len(dens) <= 1:
        return []
    return ["Streams sustained: " + "; ".join(f"{k}: {v['max_streams']}" for k, v in dens.items()) + "."]


@registry.section("density", "Stream density: 720p 15 fps real-time streams, one process each",
                  render_density, order=30, findings=density_findings,
                  goal_labels={"density_streams": ("720p 15 fps streams without drops", ">=")})
def density(ctx: registry.Context) -> dict:
    """How many 720p 15 fps real-time streams (one process each) run without drops."""
    a = ctx.a
    seconds = a.density_seconds or (3.0 if ctx.quick else 15.0)
    limit = a.density_max or (2 if ctx.quick else 12)
    variants = ["default"] if ctx.quick else list(DENSITY_VARIANTS)
    out = {"seconds_per_trial": seconds, "fps": 15, "resolution": "720p",
           "criterion": f"every stream drops < {DENSITY_MAX_DROP:.0%} and runs at >= "
                        f"{DENSITY_MIN_FPS_RATIO:.0%} of 15 fps, in the majority of "
                        f"{1 if ctx.quick else DENSITY_RUNS} runs (the row: the run with the median "
                        f"worst-stream drops, the lower of two)",
           "limit_tested": limit, "variants": {}}
    for v in variants:
        trials: dict[int, dict] = {}

        def trial(n: int) -> bool:
            runs = []
            total = 1 if ctx.quick else DENSITY_RUNS
            need = total // 2 + 1
            while True:
                say(f"density [{v}]: {n} stream(s) x {seconds:g} s of 720p at 15 fps, run {len(runs) + 1}")
                t = run_streams(ctx, n, ctx.clips.shifted("720p", 15, n), seconds, 15.0,
                                env=DENSITY_VARIANTS[v])
                runs.append(t)
                say(f"  drops {t['drop_ratio']:.2%} (worst stream {t['drop_ratio_max']:.2%}), slowest stream {t['min_stream_fps']} fps, "
                    f"{'ok' if t['sustained'] else 'NOT sustained'}")
                ok = sum(r["sustained"] for r in runs)
                if ok >= need or len(runs) - ok > total - need:  # decided either way
                    break
            t = dict(sorted(runs, key=lambda r: r["drop_ratio_max"])[(len(runs) - 1) // 2])
            t["worst_stream_drops_per_run"] = [r["drop_ratio_max"] for r in runs]
            t["sustained"] = ok >= need
            trials[n] = t
            return t["sustained"]

        best = density_search(trial, 1 if ctx.quick else min(GOALS["density_streams"], limit), limit)
        out["variants"][v] = {"env": DENSITY_VARIANTS[v], "max_streams": best,
                              "trials": [trials[k] for k in sorted(trials)]}
    out["max_streams"] = out["variants"]["default"]["max_streams"]
    if not ctx.quick:
        best_v = max(out["variants"].values(), key=lambda x: x["max_streams"])
        out["goals"] = {"density_streams": {"value": out["max_streams"], "goal": GOALS["density_streams"],
                                            "met": out["max_streams"] >= GOALS["density_streams"]}}
        out["best_variant_max_streams"] = best_v["max_streams"]
    return out
