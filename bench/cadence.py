"""Section ``cadence``: what ``detector.interval`` and the motion gate cost on clips built from
real faces on known paths (``bench.scenes``), and what they save.

- crossing scene (4 faces, two crossing with occlusion; tracker + YuNet + the cadence, as the
  processor runs them): id switches (a path that changes id, or two paths sharing one), frames
  a path is tracked, detector calls.
- counting clip (6 people crossing two lines, through the real processor with attributes and
  counting): counting errors (sum of |counted - true| over both lines and directions),
  people started (true: 6; fewer = missed starts, more = split tracks), detector calls.

    python run.py bench --only cadence
"""

from __future__ import annotations

from bench import registry
from bench.common import data_root, say
from bench.report import table

VARIANTS = {
    "every frame (default)": {"interval": 1, "motion_gate": False},
    "interval 2": {"interval": 2, "motion_gate": False},
    "interval 3": {"interval": 3, "motion_gate": False},
    "interval 5": {"interval": 5, "motion_gate": False},
    "motion gate": {"interval": 1, "motion_gate": True},
    "interval 3 + motion gate": {"interval": 3, "motion_gate": True},
}


def _crossing(frames, gts, interval: int, gate: bool) -> dict:
    from bench import scenes
    from streamer.config import DetectorConfig, TrackerConfig
    from streamer.core import detect
    from streamer.core.cadence import build
    from streamer.core.track import Tracker

    det = detect.build(DetectorConfig())
    tracker, cad = Tracker(TrackerConfig()), build(interval, gate)
    per_frame, calls = [], 0
    for f, img in enumerate(frames):
        if cad is None or cad.due(img, tracker.live):
            calls += 1
            per_frame.append(tracker.update(det.detect(img), f))
        else:
            per_frame.append(tracker.predict(f))
    ids = scenes.path_ids(per_frame, gts)
    switches = sum(len(set(v)) - 1 for v in ids.values() if v)
    owners = [v[0] for v in ids.values() if v]
    switches += len(owners) - len(set(owners))
    return {"id_switches": switches, "frames_tracked_min": min(len(v) for v in ids.values()),
            "frames": len(frames), "detector_calls": calls}


def _counting(clip, expected: dict, interval: int, gate: bool) -> dict:
    import cv2

    from bench import scenes
    from streamer import config
    from streamer.runtime import wiring
    from streamer.types import Frame

    cfg = config.from_dict({"camera": "cadence", "source": {"uri": str(clip)},
                            "detector": {"interval": interval, "motion_gate": gate},
                            "counting": {"lines": scenes.COUNT_LINES, "state_dir": str(clip.parent / f"state-{interval}-{int(gate)}"),
                                         "reset": "never", "summary_interval_s": 0}})
    proc = wiring.build_processor(cfg)
    calls = {"n": 0}
    inner = proc.detector.detect

    def counted(image, *a, **k):
        calls["n"] += 1
        return inner(image, *a, **k)
    proc.detector.detect = counted
    cap = cv2.VideoCapture(str(clip))
    events, i = [], 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        events += proc.process(Frame(i, i / scenes.COUNT_FPS, i / scenes.COUNT_FPS, img)).events
        i += 1
    cap.release()
    events += proc.finish(i / scenes.COUNT_FPS, i)
    final = [e for e in events if e.type == "summary"][-1].payload
    err = sum(abs(final["lines"][n][d] - expected[n][d]) for n in ("door", "upper") for d in ("in", "out"))
    starts = sum(1 for e in events if e.type == "start")
    return {"count_errors": err, "people_started": starts, "people_true": expected["people"],
            "missed_starts": max(0, expected["people"] - starts), "frames": i, "detector_calls": calls["n"]}


def render(d: dict) -> list:
    rows = []
    for name, v in d.get("variants", {}).items():
        c, k = v.get("crossing", {}), v.get("counting", {})
        rows.append([name, c.get("id_switches"), c.get("frames_tracked_min"),
                     f"{c.get('detector_calls')}/{c.get('frames')}", k.get("count_errors"),
                     f"{k.get('people_started')}/{k.get('people_true')}",
                     f"{k.get('detector_calls')}/{k.get('frames')}"])
    return [table(["cadence", "crossing: id switches", "crossing: frames tracked (worst path)",
                   "crossing: detector calls", "counting: count errors", "counting: people started / true",
                   "counting: detector calls"], rows)]


@registry.section("cadence", "Detection cadence: interval and motion gate on real faces on known paths",
                  render, order=77)
def measure(ctx: registry.Context) -> dict:
    import tempfile
    from pathlib import Path

    import cv2

    from bench import scenes
    from streamer.config import DetectorConfig
    from streamer.core import detect

    root = data_root()
    if root is None:
        return {"status": "missing", "reason": "no shared data folder"}
    pets = root / "video" / "opencv__vtest_PETS09-S2L1_x264.mp4"
    utk = root / "agegender" / "utkface_dev"
    frames, gts, _ = scenes.crossing_scene(detect.build(DetectorConfig()), pets, utk)
    tmp = Path(tempfile.mkdtemp(prefix="cadence-", dir=ctx.cache))
    cap = cv2.VideoCapture(str(pets))
    ok, bg = cap.read()
    cap.release()
    clip = tmp / "counting.mp4"
    expected = scenes.build_counting_clip(clip, utk, cv2.resize(bg, (scenes.COUNT_W, scenes.COUNT_H),
                                                                interpolation=cv2.INTER_AREA))
    out = {"variants": {}}
    names = list(VARIANTS)[:3] if ctx.quick else list(VARIANTS)
    for name in names:
        v = VARIANTS[name]
        say(f"cadence: {name}")
        out["variants"][name] = {**v, "crossing": _crossing(frames, gts, v["interval"], v["motion_gate"]),
                                 "counting": _counting(clip, expected, v["interval"], v["motion_gate"])}
    return out
