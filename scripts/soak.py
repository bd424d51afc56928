#!/usr/bin/env python3
"""`make soak`: run the real pipeline for a long time and look for slow leaks and slowdowns.

Replays a clip in a loop (``source.loop``), paced like a camera (``source.realtime``) unless
``--fast``, through the real models and a real JSONL events file, in this process. Every
``--every`` seconds it samples this process's RSS (``VmRSS`` from /proc/self/status), open file
descriptors, threads, fps and capture-to-output latency of the last interval into
``out/soak/soak.csv``; at the end it prints a verdict:

- RSS growth between the end of the warm-up (first 20 % of the run, at most 60 s) and the end,
  from the medians of three samples at each side (< 5 % passes); also the slope in MB/hour;
- fps trend: least-squares slope over the run after warm-up, as % of the mean fps (on a shared
  machine this is noisy; it warns past 10 % and never fails the run);
- file descriptors and threads after warm-up vs. at the end (a leak of either shows here).

Exit code 1 when RSS growth fails. ``--source rtsp://...`` soaks a live stream instead.

    python scripts/soak.py --minutes 10
    python scripts/soak.py --seconds 20 --out /tmp/soak
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIELDS = ["t_s", "rss_mb", "fds", "threads", "frames_processed", "fps", "latency_ms_p50",
          "latency_ms_p95", "frames_dropped", "frames_stale", "events", "stage_errors",
          "thread_restarts", "reconnects"]
RSS_LIMIT_PCT = 5.0
FPS_WARN_PCT = 10.0


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0  # kB
    return float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q / 100.0 * len(s)))]


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def default_clip() -> str:
    sys.path.insert(0, str(ROOT / "scripts"))
    from demo import sample_clip  # $STREAMER_DATA, ../shared/data, or a checked download

    return str(sample_clip())


def verdict(rows: list[dict], duration: float) -> dict:
    warm = min(60.0, 0.2 * duration)
    after = [r for r in rows if r["t_s"] >= warm]
    if len(after) < 6:
        return {"ok": False, "reason": f"too few samples after the {warm:.0f} s warm-up "
                                       f"({len(after)}); run longer or sample more often"}
    base = statistics.median(r["rss_mb"] for r in after[:3])
    end = statistics.median(r["rss_mb"] for r in after[-3:])
    growth = (end - base) / base * 100.0
    ts = [r["t_s"] for r in after]
    # A slope from a few minutes extrapolates one allocator step to an hour: only past 5 min.
    rss_slope_h = (round(slope(ts, [r["rss_mb"] for r in after]) * 3600.0, 1)
                   if ts[-1] - ts[0] >= 300 else None)
    fps = [r["fps"] for r in after]
    fps_mean = statistics.fmean(fps)
    fps_trend = slope(ts, fps) * (ts[-1] - ts[0]) / fps_mean * 100.0 if fps_mean else 0.0
    return {
        "ok": growth < RSS_LIMIT_PCT,
        "warmup_s": round(warm, 1),
        "rss_mb_after_warmup": round(base, 1),
        "rss_mb_end": round(end, 1),
        "rss_growth_pct": round(growth, 2),
        "rss_slope_mb_per_h": rss_slope_h,
        "fps_mean": round(fps_mean, 2),
        "fps_min": round(min(fps), 2),
        "fps_max": round(max(fps), 2),
        "fps_trend_pct": round(fps_trend, 1),
        "fps_stable": abs(fps_trend) < FPS_WARN_PCT,
        "latency_ms_p95_median": round(statistics.median(r["latency_ms_p95"] for r in after), 1),
        "fds_after_warmup": after[0]["fds"], "fds_end": after[-1]["fds"],
        "threads_after_warmup": after[0]["threads"], "threads_end": after[-1]["threads"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=0.0)
    ap.add_argument("--seconds", type=float, default=0.0, help="added to --minutes")
    ap.add_argument("--every", type=float, default=5.0, help="sampling interval, seconds")
    ap.add_argument("--source", help="clip or live URL (default: the demo clip, looped)")
    ap.add_argument("--fast", action="store_true", help="do not pace the clip at its fps")
    ap.add_argument("--no-attributes", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "out" / "soak"))
    a = ap.parse_args(argv)
    duration = a.minutes * 60.0 + a.seconds or 600.0

    import logging

    from streamer.runtime import wiring as app
    from streamer import config
    from streamer.media.sources import redact

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import cv2
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    events = out / "events.jsonl"
    events.unlink(missing_ok=True)
    source = a.source or default_clip()
    over = {"source.uri": source, "source.loop": True, "source.realtime": not a.fast,
            "events.jsonl": str(events), "camera": "soak"}
    if a.no_attributes:
        over["attributes.enabled"] = False
    cfg = config.load(None, over)
    pipe = app.build_pipeline(cfg)

    rows: list[dict] = []
    lat: list[float] = []
    t0 = time.monotonic()
    state = {"next": t0 + a.every, "last_t": t0, "last_n": 0}
    csv_path = out / "soak.csv"
    f = open(csv_path, "w", newline="")
    w = csv.DictWriter(f, fieldnames=FIELDS)
    w.writeheader()

    def sample(now: float) -> None:
        n = pipe.frames_processed
        row = {
            "t_s": round(now - t0, 1), "rss_mb": round(rss_mb(), 1), "fds": open_fds(),
            "threads": threading.active_count(), "frames_processed": n,
            "fps": round((n - state["last_n"]) / (now - state["last_t"]), 2),
            "latency_ms_p50": round(pct(lat, 50) * 1000, 1),
            "latency_ms_p95": round(pct(lat, 95) * 1000, 1),
            "frames_dropped": pipe.frames_dropped,  # queue + stale
            "frames_stale": pipe.frames_stale, "events": pipe.sinks.emitted,
            "stage_errors": pipe.stage_errors, "thread_restarts": pipe.thread_restarts,
            "reconnects": pipe.reconnects,
        }
        rows.append(row)
        w.writerow(row)
        f.flush()
        lat.clear()
        state.update(next=now + a.every, last_t=now, last_n=n)
        print(f"[soak {row['t_s']:7.1f}s] rss {row['rss_mb']:7.1f} MB  fps {row['fps']:5.1f}  "
              f"p95 {row['latency_ms_p95']:6.1f} ms  fds {row['fds']}  threads {row['threads']}",
              flush=True)

    def on_result(r) -> None:
        now = time.monotonic()
        lat.append(now - r.frame.mono)
        if now >= state["next"]:
            sample(now)

    pipe.on_result = on_result
    timer = threading.Timer(duration, pipe.stop)
    timer.daemon = True
    timer.start()
    print(f"soak: {redact(source)} for {duration:.0f} s, sampling every {a.every:g} s "
          f"-> {csv_path}", flush=True)
    try:
        summary = pipe.run()
    except KeyboardInterrupt:
        pipe.stop()
        summary = pipe.summary()
    timer.cancel()
    f.close()
    v = verdict(rows, duration)
    result = {"duration_s": round(time.monotonic() - t0, 1), "samples": len(rows),
              "verdict": v, "pipeline": summary}
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    print("── soak verdict ─────────────────────────────────")
    if "reason" in v:
        print(f"INCONCLUSIVE  {v['reason']}")
        return 1
    slope_h = v["rss_slope_mb_per_h"]
    print(f"RSS      {'PASS' if v['ok'] else 'FAIL'}  {v['rss_mb_after_warmup']} MB after "
          f"{v['warmup_s']} s warm-up -> {v['rss_mb_end']} MB at the end "
          f"({v['rss_growth_pct']:+.2f} %, limit {RSS_LIMIT_PCT:g} %; slope "
          + (f"{slope_h:+.1f} MB/h)" if slope_h is not None else "n/a under 5 min)"))
    print(f"fps      {'stable' if v['fps_stable'] else 'WARN'}  mean {v['fps_mean']} "
          f"(min {v['fps_min']}, max {v['fps_max']}), trend {v['fps_trend_pct']:+.1f} % over "
          "the run (noisy on a shared machine)")
    print(f"latency  p95 {v['latency_ms_p95_median']} ms (median of the interval p95s)")
    print(f"fds      {v['fds_after_warmup']} -> {v['fds_end']};  threads "
          f"{v['threads_after_warmup']} -> {v['threads_end']}")
    print(f"frames   {summary['frames_processed']} processed, {summary['frames_dropped']} dropped "
          f"({summary['frames_stale']} of them stale); stage errors {summary['stage_errors']}, "
          f"thread restarts {summary['thread_restarts']}")
    print(f"csv      {csv_path}")
    return 0 if v["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
