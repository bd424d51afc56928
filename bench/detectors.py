"""Section ``detectors``: YuNet and CenterFace (and input scales, and res10 SSD for reference)
on the labelled dev photos, per inference backend: AP50, recall at the operating threshold on
faces >= 20 px, recall of faces under 20 px, ms per image. Also CenterFace's channel order
(RGB vs BGR), checked on the data rather than taken from its documentation.

Reuses ``bench.accuracy.eval_detection`` (the product's detector, low threshold opened to 0.1
for the PR curve's tail). ``scale`` 1.5 upsamples each photo first (the dev photos are 300-500
px wide, under ``detector.width``, so this is what "1.5x input" means for them).

    python run.py bench --only detectors
"""

from __future__ import annotations

from bench import registry
from bench.common import data_root, say
from bench.report import table

SETS = ("face_mask_dev", "dlib_faces")
# (kind, scale, backend): accuracy does not depend on the backend (tests/test_detectors.py
# holds them to the same faces), so the slower backend is timed on the 1x rows only.
VARIANTS = [
    ("yunet", 1.0, "openvino"), ("yunet", 1.0, "opencv"), ("yunet", 1.5, "openvino"),
    ("centerface", 1.0, "openvino"), ("centerface", 1.0, "opencv"), ("centerface", 1.5, "openvino"),
    ("ssd_tf", 1.0, "opencv"),
]


def _eval(folder, kind: str, scale: float, backend: str, limit: int, rgb=None) -> dict:
    from bench.accuracy import eval_detection
    from streamer import inference
    from streamer.core.detectors import centerface

    before, spec = inference.settings().backend, centerface.SPEC
    try:
        inference.configure(backend=backend)
        if rgb is not None:
            centerface.SPEC = inference.InputSpec(rgb=rgb)
        r = eval_detection(folder, kind, limit=limit, scale=scale)
    finally:
        centerface.SPEC = spec
        inference.configure(backend=before)
    return {k: r.get(k) for k in ("images", "faces", "small_faces", "ap50", "recall", "precision",
                                  "small_recall", "ms_per_image_p50", "threshold")}


def render(d: dict) -> list:
    out = []
    for s, rows in d.get("sets", {}).items():
        out.append(f"**{s}** ({rows[0]['images']} images, {rows[0]['faces']} faces >= 20 px, "
                   f"{rows[0]['small_faces']} smaller)" if rows else f"**{s}**")
        out.append(table(["detector", "input", "backend", "AP50", "recall >= 20 px", "precision",
                          "recall < 20 px", "ms / image"],
                         [[r["kind"], f"{r['scale']:g}x", r["backend"], r["ap50"], r["recall"],
                           r["precision"], r["small_recall"], r["ms_per_image_p50"]] for r in rows]))
    co = d.get("centerface_channels")
    if co:
        out.append("CenterFace channel order (OpenVINO, 1x):")
        out.append(table(["set", "RGB AP50", "BGR AP50"],
                         [[s, v["rgb"], v["bgr"]] for s, v in co.items()]))
    return out


def findings(data: dict) -> list:
    d = data.get("detectors") or {}
    out = []
    for s, rows in d.get("sets", {}).items():
        best = max(rows, key=lambda r: r["ap50"] or 0, default=None)
        if best:
            out.append(f"{s}: best AP50 {best['ap50']} ({best['kind']} {best['scale']:g}x, "
                       f"{best['ms_per_image_p50']} ms/image on {best['backend']})")
    return out


@registry.section("detectors", "Detectors: accuracy and speed per backend on the dev photos", render,
                  order=75, findings=findings)
def measure(ctx: registry.Context) -> dict:
    root = data_root()
    if root is None:
        return {"status": "missing", "reason": "no shared data folder"}
    limit = 15 if ctx.quick else 0
    # --quick: one set, the two detectors at 1x on OpenVINO (the section's shape, not its numbers)
    variants = [v for v in VARIANTS if v[1] == 1.0 and v[2] == "openvino"] if ctx.quick else VARIANTS
    out: dict = {"sets": {}, "centerface_channels": {}}
    for s in SETS[:1] if ctx.quick else SETS:
        folder = root / "facebox" / s
        rows = []
        for kind, scale, backend in variants:
            say(f"detectors {s}: {kind} {scale:g}x on {backend}")
            rows.append({"kind": kind, "scale": scale, "backend": backend,
                         **_eval(folder, kind, scale, backend, limit)})
        out["sets"][s] = rows
        say(f"detectors {s}: CenterFace RGB vs BGR")
        out["centerface_channels"][s] = {
            "rgb": _eval(folder, "centerface", 1.0, "openvino", limit, rgb=True)["ap50"],
            "bgr": _eval(folder, "centerface", 1.0, "openvino", limit, rgb=False)["ap50"]}
    return out
