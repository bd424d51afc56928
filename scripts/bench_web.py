#!/usr/bin/env python3
"""Benchmark of ``POST /analyze`` on loopback (a benchmark, not a test).

Starts ``python run.py serve`` on a free port (or uses ``--url``), then measures with a
640x480 JPEG holding one real face (a UTKFace crop on a grey canvas, from $STREAMER_DATA or
../shared/data; ``--image`` for your own):

1. latency, one client, keep-alive: p50 / p95 / mean, annotated (default) and ``?annotate=0``,
   with the server's own ``timing_ms`` breakdown;
2. throughput: ``--clients`` threads posting back-to-back for ``--seconds``: requests/s, errors.

The client runs on the same 2 cores as the server, so throughput here is a floor (the client's
JSON and base64 work competes with the server's). Prints a markdown table and the command;
``--json OUT`` also writes the numbers (``run.py bench`` reads them).

Goal on 2 cores: p50 <= 30 ms, >= 50 requests/s, zero errors.
"""

from __future__ import annotations

import argparse
import base64
import csv
import http.client
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GOAL_P50_MS = 30.0
GOAL_RPS = 50.0


def data_root() -> Path | None:
    env = os.environ.get("STREAMER_DATA")
    p = Path(env) if env else ROOT.parent / "shared" / "data"
    return p if p.is_dir() else None


def face_jpeg(path: str | None) -> tuple[bytes, str]:
    """A 640x480 JPEG with one real face, and where it came from."""
    if path:
        img = cv2.imread(path)
        if img is None:
            sys.exit(f"error: --image {path} is not a readable image")
        return cv2.imencode(".jpg", cv2.resize(img, (640, 480)))[1].tobytes(), path
    root = data_root()
    if root is None:
        sys.exit("error: no test data: set STREAMER_DATA to the shared data folder or pass --image")
    faces = root / "agegender" / "utkface_dev"
    with open(faces / "labels.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["gender"] == "male" and 25 <= int(r["age"]) <= 35]
    crop = cv2.imread(str(faces / rows[2]["path"]))
    canvas = np.full((480, 640, 3), 118, np.uint8)
    canvas[140:340, 220:420] = crop
    return cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes(), \
        f"{rows[2]['path']} on a 640x480 grey canvas"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "run.py"), "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()  # "serving on http://..." once models are loaded and bound
    if "serving on" not in line:
        proc.kill()
        sys.exit(f"error: the server did not start ({' '.join(cmd)}): {line.strip() or 'no output'}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
    return proc


class Client:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, host: str, port: int, token: str | None):
        self.host, self.port = host, port
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.conn = None

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request("POST", path, body=body, headers=self.headers)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, data
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q))  # linear interpolation between the nearest samples


def latency(client: Client, body: bytes, path: str, n: int) -> dict:
    ms, server, faces, errors = [], [], set(), 0
    for _ in range(n):
        t0 = time.perf_counter()
        status, data = client.post(path, body)
        ms.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            errors += 1
            continue
        doc = json.loads(data)
        faces.add(len(doc["faces"]))
        server.append(doc["timing_ms"])
    breakdown = {k: round(statistics.median(t.get(k, 0.0) for t in server), 2)
                 for k in ("decode", "queue", "detect", "attributes", "annotate", "total")} if server else {}
    return {"requests": n, "errors": errors, "p50_ms": round(pct(ms, 50), 1),
            "p95_ms": round(pct(ms, 95), 1), "mean_ms": round(statistics.fmean(ms), 1),
            "faces": sorted(faces), "server_ms_p50": breakdown}


def analyzer_baseline(jpeg: bytes, n: int) -> dict:
    """``Analyzer.analyze`` called directly in this process on the same image, right now: what
    the HTTP path adds is the difference, whatever else the machine is doing."""
    sys.path.insert(0, str(ROOT))
    from streamer import config
    from streamer.core.analyze import Analyzer
    from streamer.media.images import decode_image

    a = Analyzer(config.load())
    img = decode_image(jpeg)
    for _ in range(5):
        a.analyze(img)
    ms, cpu = [], []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        a.analyze(img)
        ms.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return {"p50_ms": round(pct(ms, 50), 1), "p95_ms": round(pct(ms, 95), 1),
            "cpu_ms_mean": round(statistics.fmean(cpu), 1)}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(host: str, port: int, token: str | None, body: bytes, path: str, clients: int,
               seconds: float, server_pid: int | None = None) -> dict:
    stop = threading.Event()
    counts = [0] * clients
    errors = [0] * clients
    lat: list[list[float]] = [[] for _ in range(clients)]

    def run(i: int) -> None:
        c = Client(host, port, token)
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                status, _ = c.post(path, body)
            except (OSError, http.client.HTTPException):
                status = -1
            lat[i].append((time.perf_counter() - t0) * 1000)
            if status == 200:
                counts[i] += 1
            else:
                errors[i] += 1

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    cpu0 = cpu_seconds(server_pid) if server_pid else None
    own0 = time.process_time()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(60)
    wall = time.perf_counter() - t0
    own = time.process_time() - own0
    cpu1 = cpu_seconds(server_pid) if server_pid else None
    all_ms = [x for xs in lat for x in xs]
    n = max(1, sum(counts) + sum(errors))
    return {"clients": clients, "seconds": round(wall, 1), "ok": sum(counts), "errors": sum(errors),
            "rps": round(sum(counts) / wall, 1), "p50_ms": round(pct(all_ms, 50), 1) if all_ms else None,
            "p95_ms": round(pct(all_ms, 95), 1) if all_ms else None,
            # CPU per request is what load elsewhere on the machine does not inflate much:
            # 2 cores / (server + client CPU per request) bounds requests/s on an idle machine.
            "server_cpu_ms_per_request": round((cpu1 - cpu0) * 1000 / n, 1) if cpu0 is not None else None,
            "client_cpu_ms_per_request": round(own * 1000 / n, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="benchmark a running server (default: start run.py serve)")
    ap.add_argument("--token", help="API token of that server (web.token)")
    ap.add_argument("--image", help="your own photo (resized to 640x480)")
    ap.add_argument("-n", type=int, default=200, help="sequential requests per latency run")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients for throughput")
    ap.add_argument("--seconds", type=float, default=15.0, help="throughput run length")
    ap.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    ap.add_argument("--json", help="also write the results to this file")
    a = ap.parse_args()
    if a.quick:
        a.n, a.seconds = 40, 4.0

    jpeg, source = face_jpeg(a.image)
    load_before = os.getloadavg()[0]
    body = json.dumps({"image": base64.b64encode(jpeg).decode(), "filename": "face.jpg"}).encode()
    proc = None
    if a.url:
        u = urlsplit(a.url)
        host, port = u.hostname or "127.0.0.1", u.port or 80
    else:
        host, port = "127.0.0.1", free_port()
        proc = start_server(port)
    try:
        warm = Client(host, port, a.token)
        for _ in range(20):
            status, data = warm.post("/analyze", body)
            if status != 200:
                sys.exit(f"error: warm-up request failed: {status} {data[:200]!r}")
        base = analyzer_baseline(jpeg, a.n)
        lat_ann = latency(warm, body, "/analyze", a.n)
        lat_json = latency(warm, body, "/analyze?annotate=0", a.n)
        pid = proc.pid if proc is not None else None
        thr_ann = throughput(host, port, a.token, body, "/analyze", a.clients, a.seconds, pid)
        thr_json = throughput(host, port, a.token, body, "/analyze?annotate=0", a.clients, a.seconds, pid)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    load_after = os.getloadavg()[0]
    cmd = "python scripts/bench_web.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    errors = lat_ann["errors"] + lat_json["errors"] + thr_ann["errors"] + thr_json["errors"]
    result = {
        "image": source, "jpeg_bytes": len(jpeg), "request_bytes": len(body), "cores": os.cpu_count(),
        "analyzer_direct": base, "latency_annotated": lat_ann, "latency_json_only": lat_json,
        "throughput_annotated": thr_ann, "throughput_json_only": thr_json,
        "goal": {"p50_ms": GOAL_P50_MS, "rps": GOAL_RPS, "errors": 0,
                 "met": lat_ann["p50_ms"] <= GOAL_P50_MS and thr_ann["rps"] >= GOAL_RPS and errors == 0},
        "loadavg_1m": [round(load_before, 2), round(load_after, 2)],
        "command": cmd.strip(),
    }
    b = lat_ann["server_ms_p50"]
    print(f"# /analyze on loopback ({os.cpu_count()} cores)\n")
    print(f"Image: {source}, {len(jpeg) // 1024} KB JPEG, sent as base64 JSON ({len(body) // 1024} KB); "
          f"faces found: {lat_ann['faces']}\n")
    print("| measure | annotated (default) | `?annotate=0` | goal |")
    print("| --- | --- | --- | --- |")
    print(f"| p50 latency, 1 client | {lat_ann['p50_ms']} ms | {lat_json['p50_ms']} ms | <= {GOAL_P50_MS:.0f} ms |")
    print(f"| `Analyzer.analyze` alone, same image, in-process (p50 / p95) | {base['p50_ms']} / "
          f"{base['p95_ms']} ms | | |")
    print(f"| HTTP + JSON + decode (+ annotate) on top, p50 | "
          f"{round(lat_ann['p50_ms'] - base['p50_ms'], 1)} ms | "
          f"{round(lat_json['p50_ms'] - base['p50_ms'], 1)} ms | |")
    print(f"| p95 latency, 1 client | {lat_ann['p95_ms']} ms | {lat_json['p95_ms']} ms | |")
    print(f"| requests/s, {a.clients} clients | {thr_ann['rps']} | {thr_json['rps']} | >= {GOAL_RPS:.0f} |")
    print(f"| p50 / p95 under load | {thr_ann['p50_ms']} / {thr_ann['p95_ms']} ms | "
          f"{thr_json['p50_ms']} / {thr_json['p95_ms']} ms | |")
    if thr_ann["server_cpu_ms_per_request"] is not None:
        print(f"| server CPU per request | {thr_ann['server_cpu_ms_per_request']} ms | "
              f"{thr_json['server_cpu_ms_per_request']} ms | |")
    print(f"| client CPU per request | {thr_ann['client_cpu_ms_per_request']} ms | "
          f"{thr_json['client_cpu_ms_per_request']} ms | |")
    print(f"| errors | {lat_ann['errors'] + thr_ann['errors']} | {lat_json['errors'] + thr_json['errors']} | 0 |")
    print(f"\nServer-side p50 (annotated): decode {b.get('decode')} ms, wait for analyzer "
          f"{b.get('queue')} ms, detect {b.get('detect')} ms, attributes {b.get('attributes')} ms, "
          f"annotate+encode {b.get('annotate')} ms, total {b.get('total')} ms\n")
    print(f"Goal met: {'yes' if result['goal']['met'] else 'no'}. Load average (1 min) before / after: "
          f"{load_before:.2f} / {load_after:.2f} (anything else running makes these numbers worse)\n")
    print(f"Command: `{result['command']}`")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
