"""Small helpers every bench module shares: where things are, statistics of samples, the
machine, logging.

Standard library only at the top (``bench.registry.load`` imports every module of the
package); numpy/cv2 are imported inside the functions that need them.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
CLIP = "face_recognition__short_hamilton_clip.mp4"
RESOLUTIONS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
GOALS = {
    "pipeline_vs_decode_1080p": 0.5,  # >= 50 % of decode-only fps at 1080p
    "pipeline_vs_seed": 3.0,  # >= 3x the seed's way
    "latency_p95_ms_720p": 50.0,
    "density_streams": 10,  # issue #13: >= 10 real-time 720p 15 fps streams, every frame detected
    "startup_s": 1.0,
}


def data_root() -> Optional[Path]:
    env = os.environ.get("STREAMER_DATA")
    p = Path(env) if env else ROOT.parent / "shared" / "data"
    return p if p.is_dir() else None


def median(xs):
    """Median of the values that are not None, rounded (None when there are none)."""
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


def quiet_logs() -> None:
    import logging

    import cv2
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("streamer").setLevel(logging.WARNING)


def has_attributes() -> bool:
    import importlib.util
    return importlib.util.find_spec("streamer.core.attributes") is not None


def say(msg: str) -> None:
    """Progress on stderr (stdout stays for the final one-line result)."""
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_script(name: str):
    """``scripts/<name>.py`` as a module (the scripts folder is not a package)."""
    import importlib.util
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
