"""Sections ``fps``, ``latency`` and ``attrcalls``: the real pipeline in-process on the scaled
sample clips, beside decode-only and the seed's way (``bench.ways``)."""

from __future__ import annotations

import json

from bench import registry
from bench.common import CLIP, GOALS, RESOLUTIONS, median, say
from bench.report import table
from bench.ways import SeedWay, decode_only, run_pipeline, run_pipeline_variant, seed_way

# Candidate optimisations of the biggest item (the detector), measured at the largest
# resolution only, interleaved with the baseline runs.
FPS_VARIANTS = {
    "detector.width 480": {"overrides": {"detector.width": 480}},
    "1 OpenCV thread": {"threads": 1},
}


# ---- fps ----------------------------------------------------------------------------------

def render_fps(d) -> list:
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
    return [table(["clip", "frames", "decode-only fps", "pipeline fps", "seed's way fps",
                   "pipeline / decode", "pipeline / seed", "pipeline faces/frame (YuNet)",
                   "pipeline attr calls/frame", "seed faces = attr calls/frame (res10)"], rows), "",
            "Pipeline: `wiring.build_pipeline`, file source (never drops), headless, no video output, "
            "YuNet on every frame, tracking, attributes for tracks due. Decode-only: a "
            "`cv2.VideoCapture.read` loop. Seed's way: one loop, res10 SSD (ssd_tf), both "
            "attribute nets on every face of every frame, one `blobFromImage` per face and net (res10 finds "
            "fewer faces than YuNet here, see the last columns, so its attribute work is "
            "smaller than the same faces would cost). "
            f"All runs: `{json.dumps(runs)}`."] + ([
            "", "Candidate optimisations of the detector (the biggest item, see the profile), same "
            "clip, runs interleaved with the default's:", "",
            table(["pipeline variant", "fps", "vs decode-only", "vs default", "runs"], var)] if var else [])


def fps_findings(data: dict) -> list[str]:
    out = []
    acc = data.get("accuracy", {}).get("detection", {})
    for res, r in data["fps"].get("rows", {}).items():
        for name, v in (r.get("variants") or {}).items():
            line = (f"{name} at {res}: pipeline {r['pipeline_fps']} → {v['pipeline_fps']} fps "
                    f"({v['vs_default']:.2f}x; {v['vs_decode']:.0%} of decode-only)")
            if "width" in name and "face_mask_dev/yunet@0.75" in acc and "face_mask_dev/yunet" in acc:
                a0, a1 = acc["face_mask_dev/yunet"], acc["face_mask_dev/yunet@0.75"]
                line += (f", but AP50 on face_mask_dev {a0['ap50']} → {a1['ap50']} and recall "
                         f"{a0['recall']} → {a1['recall']} (small faces are lost): a per-camera "
                         "setting for scenes with large faces, not a default")
            out.append(line + ".")
    return out


@registry.section("fps", "Processing speed (fps) vs decode-only and the seed's way", render_fps,
                  order=10, findings=fps_findings,
                  goal_labels={"pipeline_vs_decode_1080p": ("pipeline fps / decode-only fps at 1080p", ">="),
                               "pipeline_vs_seed_min": ("pipeline fps / seed's way fps (worst resolution)", ">=")})
def fps(ctx: registry.Context) -> dict:
    """Processing fps of the real pipeline (headless, detection every frame, tracked
    attributes) on 360p / 720p / 1080p, beside decode-only fps and the seed's way."""
    resolutions = ["360p"] if ctx.quick else list(RESOLUTIONS)
    rows = {}
    seed = SeedWay()
    for res in resolutions:
        clip = ctx.clips.get(res)
        dec, pipe, sd = [], [], []
        last_pipe, last_seed = {}, {}
        tuned = res == resolutions[-1]
        var: dict[str, list] = {k: [] for k in FPS_VARIANTS} if tuned else {}
        for i in range(ctx.runs):
            say(f"fps {res} run {i + 1}/{ctx.runs}")
            dec.append(decode_only(clip, ctx.max_frames)["fps"])
            last_pipe = run_pipeline(clip, ctx.max_frames)
            pipe.append(last_pipe["processing_fps"])
            last_seed = seed_way(clip, ctx.max_frames, seed)
            sd.append(last_seed["fps"])
            for name in var:
                var[name].append(run_pipeline_variant(clip, ctx.max_frames, FPS_VARIANTS[name])["processing_fps"])
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
    out = {"rows": rows}
    if "1080p" in rows:
        r = rows["1080p"]
        out["goals"] = {
            "pipeline_vs_decode_1080p": {"value": r["pipeline_vs_decode"],
                                         "goal": GOALS["pipeline_vs_decode_1080p"],
                                         "met": bool(r["pipeline_vs_decode"] and r["pipeline_vs_decode"] >= GOALS["pipeline_vs_decode_1080p"])},
        }
    worst = min((r["pipeline_vs_seed"] or 0) for r in rows.values())
    out.setdefault("goals", {})["pipeline_vs_seed_min"] = {
        "value": worst, "goal": GOALS["pipeline_vs_seed"], "met": worst >= GOALS["pipeline_vs_seed"]}
    return out


# ---- latency ------------------------------------------------------------------------------

def render_latency(d) -> list:
    rows = [[res, r.get("latency_ms_p50"), r.get("latency_ms_p95"), r.get("latency_ms_p99"),
             r.get("latency_ms_max"), r.get("frame_age_ms_p50"), r.get("frame_age_ms_p95"),
             r.get("frame_age_ms_p99"), r.get("frames_dropped"), r.get("frames_in"), r.get("runs")]
            for res, r in d.get("rows", {}).items()]
    return [table(["clip", "latency p50 ms", "p95", "p99", "max", "frame age p50 ms", "p95",
                   "p99", "frames dropped", "frames in", "runs"], rows), "",
            "Latency: capture timestamp → overlay stage done (what `Pipeline` measures). "
            "Frame age: capture → inference start (time spent queued)."]


@registry.section("latency", "End-to-end latency, real-time pacing at 30 fps", render_latency, order=20,
                  goal_labels={"latency_p95_ms_720p": ("latency p95 at 720p, 30 fps real time (ms)", "<=")})
def latency(ctx: registry.Context) -> dict:
    """End-to-end latency (capture -> overlay) p50/p95/p99 and frame age, with the file
    paced in real time at 30 fps."""
    resolutions = ["360p"] if ctx.quick else list(RESOLUTIONS)
    rows = {}
    for res in resolutions:
        clip = ctx.clips.get(res)
        runs = []
        for i in range(ctx.runs if res == "720p" or ctx.quick else 1):
            say(f"latency {res} (real time, 30 fps) run {i + 1}")
            runs.append(run_pipeline(clip, ctx.max_frames, realtime=True))
        keys = ("latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "latency_ms_max",
                "frame_age_ms_p50", "frame_age_ms_p95", "frame_age_ms_p99", "frame_age_ms_mean")
        row = {k: median([r[k] for r in runs]) for k in keys}
        row["runs"] = len(runs)
        row["frames_in"] = runs[-1]["frames_in"]
        row["frames_processed"] = runs[-1]["frames_processed"]
        row["frames_dropped"] = median([r["frames_dropped"] for r in runs])  # queue + stale
        row["processing_fps"] = median([r["processing_fps"] for r in runs])
        row["p95_runs"] = [r["latency_ms_p95"] for r in runs]
        rows[res] = row
    out = {"rows": rows, "pacing_fps": 29.97}
    if "720p" in rows:
        v = rows["720p"]["latency_ms_p95"]
        out["goals"] = {"latency_p95_ms_720p": {"value": v, "goal": GOALS["latency_p95_ms_720p"],
                                                "met": v is not None and v <= GOALS["latency_p95_ms_720p"]}}
    return out


# ---- attribute calls ----------------------------------------------------------------------

def render_attrcalls(d) -> list:
    return [table(["measure", "value"], [
        ["clip", d.get("clip")],
        ["confident faces per frame", d.get("faces_per_frame")],
        ["confirmed tracks per frame", d.get("confirmed_tracks_per_frame")],
        ["attribute-net calls per frame (pipeline)", d.get("attribute_calls_per_frame")],
        ["calls / faces", d.get("calls_vs_faces")],
        ["attribute-net calls per frame (seed's way: every SSD face)", d.get("seed_calls_per_frame")],
        ["people (tracks started)", d.get("people")],
        ["scene cuts", d.get("scene_cuts")],
    ])]


def attrcalls_findings(data: dict) -> list[str]:
    ac = data["attrcalls"]
    if not ac.get("faces_per_frame"):
        return []
    return [f"Attribute nets: {ac['attribute_calls_per_frame']} faces classified per frame for "
            f"{ac['faces_per_frame']} faces per frame ({ac['calls_vs_faces']:.1%}) thanks to tracking."]


@registry.section("attrcalls", "Attribute-net calls vs faces (sample clip)", render_attrcalls,
                  order=50, findings=attrcalls_findings)
def attrcalls(ctx: registry.Context) -> dict:
    """Attribute-net calls per frame beside faces per frame (tracking saves calls)."""
    clip = ctx.clips.get("360p")
    s = run_pipeline(clip, ctx.max_frames)
    seed = seed_way(clip, ctx.max_frames)
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
