"""Section ``profile``: where one frame's time goes (scripts/profile_frame.py), then the
biggest item made smaller two ways and measured again on the same clip: a smaller detector
input (``detector.width`` 480) and one OpenCV thread (what a many-stream host would use)."""

from __future__ import annotations

from bench import registry
from bench.common import load_script, say
from bench.report import table


def render_profile(d) -> list:
    out = []
    for res, p in d.items():
        if not isinstance(p, dict) or "stages" not in p:
            continue
        rows = [[k, v["ms"], v.get("cpu_ms"), f"{v['share']:.0%}" if v.get("share") is not None else None,
                 v.get("note", "")] for k, v in p["stages"].items()]
        out += [f"### {res}: {p.get('frames')} frames, {p.get('faces_per_frame')} faces/frame", "",
                table(["stage", "wall ms / frame", "CPU ms / frame", "share of headless wall", "what"], rows), ""]
        if p.get("summary"):
            out += [p["summary"], ""]
        if p.get("top"):
            out += ["Top functions (cProfile, own time):", "",
                    table(["function", "ms / frame", "calls / frame"],
                          [[t["function"], t["ms_per_frame"], t["calls_per_frame"]] for t in p["top"]]), ""]
    v = d.get("variants")
    if v:
        rows = [[name, r["inference_ms"], r["inference_cpu_ms"], r["detect_ms"], r["detect_cpu_ms"],
                 r["faces_per_frame"]] for name, r in v["rows"].items()]
        out += [f"### The biggest item made smaller ({v['clip']}, same clip, rerun)", "",
                table(["variant", "inference wall ms / frame", "inference CPU ms / frame",
                       "detect wall ms", "detect CPU ms", "faces / frame"], rows), "",
                "CPU ms is what a host running many streams pays per frame; wall ms is what one "
                "stream's latency sees. Faces / frame is a recall proxy for the smaller input "
                "(see `yunet@0.75` in the accuracy section for the measured cost)."]
    return out


def profile_findings(data: dict) -> list[str]:
    prof = data["profile"]
    big = prof.get("1080p") or prof.get("360p")
    if not big or "stages" not in big:
        return []
    head = {k: v for k, v in big["stages"].items() if v.get("share") is not None}
    top = max(head, key=lambda k: head[k]["ms"])
    res = "1080p" if "1080p" in prof else "360p"
    return [f"Biggest item per frame ({res}): **{top}**, {head[top]['ms']} ms wall / "
            f"{head[top]['cpu_ms']} ms CPU, {head[top]['share']:.0%} of the headless frame; "
            f"decode runs beside it on the capture thread ({head['decode']['ms']} ms)."]


@registry.section("profile", "Where one frame's time goes (scripts/profile_frame.py)", render_profile,
                  order=90, findings=profile_findings)
def profile(ctx: registry.Context) -> dict:
    import cv2
    prof = load_script("profile_frame")
    frames = 30 if ctx.quick else 0
    out: dict = {}
    for res in (["360p"] if ctx.quick else ["360p", "1080p"]):
        say(f"profile {res}")
        out[res] = prof.profile(ctx.clips.get(res), max_frames=frames)
    res = "360p" if ctx.quick else "1080p"
    clip = ctx.clips.get(res)
    variants = {"default (width 640, %d OpenCV threads)" % cv2.getNumThreads(): out[res]}
    say(f"profile {res}: detector.width 480")
    variants["detector.width 480"] = prof.profile(clip, frames, 0, {"detector.width": 480})
    threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        say(f"profile {res}: 1 OpenCV thread")
        variants["1 OpenCV thread"] = prof.profile(clip, frames, 0)
    finally:
        cv2.setNumThreads(threads)
    rows = {}
    for name, v in variants.items():
        st = v["stages"]
        rows[name] = {"inference_ms": v["inference_ms_per_frame"],
                      "inference_cpu_ms": round(sum(st[k]["cpu_ms"] for k in st if k not in
                                                    ("decode", "draw", "encode_jpeg", "encode_mp4v")), 2),
                      "detect_ms": round(st["detect"]["ms"] + st["resize"]["ms"], 2),
                      "detect_cpu_ms": round(st["detect"]["cpu_ms"] + st["resize"]["cpu_ms"], 2),
                      "faces_per_frame": v["faces_per_frame"]}
    out["variants"] = {"clip": res, "rows": rows}
    return out
