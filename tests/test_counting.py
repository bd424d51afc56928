"""Counting lines and zones with scripted box sequences (no video): exact expected counts."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import numpy as np
import pytest

from streamer.config import CountingConfig, LineConfig, ZoneConfig
from streamer.core.counting import Counter, age_labels
from streamer.errors import ConfigError
from streamer.core.events import EventBuilder
from streamer.media import count_state
from streamer.types import Attributes, Frame, Person, Track

IMAGES: dict[tuple[int, int], np.ndarray] = {}
VLINE = [[0.5, 0], [0.5, 1]]  # drawn downwards: left-to-right is "in"


def image(size=(1000, 1000)) -> np.ndarray:
    if size not in IMAGES:
        IMAGES[size] = np.zeros((size[1], size[0], 3), np.uint8)
    return IMAGES[size]


def box(x: float, y: float, half: float = 20.0):
    return (x - half, y - half, x + half, y + half)


def trk(tid: int, x: float, y: float = 500.0, confirmed: bool = True, misses: int = 0,
        half: float = 20.0) -> Track:
    return Track(tid, box(x, y, half), 0.9, confirmed, 5, misses, 0, 0)


class Clock:
    def __init__(self, t: float = 1_780_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def counter(tmp_path, lines=None, zones=None, clock=None, make_event=None, **kw) -> Counter:
    kw.setdefault("reset", "never")
    kw.setdefault("summary_interval_s", 0.0)
    cfg = CountingConfig(lines=[LineConfig(n, p) for n, p in (lines or {}).items()],
                         zones=[ZoneConfig(n, p) for n, p in (zones or {}).items()],
                         state_dir=str(tmp_path / "state"), **kw)
    return Counter(cfg, "cam", make_event=make_event, clock=clock or Clock(),
                   state=count_state.for_camera(cfg.state_dir, "cam"))


def play(c: Counter, frames: list[list[Track]], attrs=None, size=(1000, 1000), t0: float = 0.0,
         dt: float = 1.0) -> list:
    """Feed one list of tracks per frame (``dt`` apart on the frame clock and on the counter's
    fake clock); returns every event (update + tick)."""
    out = []
    for i, tracks in enumerate(frames):
        if i:
            c.clock.t += dt
        f = Frame(i, t0 + i * dt, 0.0, image(size))
        out += c.update([Person(t, (attrs or {}).get(t.id)) for t in tracks], f)
        out += c.tick(f.ts, f.id)
    return out


def cross_events(events):
    return [e for e in events if e.type == "cross"]


# ---- lines: one track on a path ------------------------------------------------------------
# Frame 1000x1000, hysteresis 0.02 -> band of +-28.3 px around the line.

@pytest.mark.parametrize("line, path, expect", [
    (VLINE, [400, 450, 490, 510, 550, 600], (1, 0)),                  # left to right: in
    (VLINE, [600, 550, 510, 490, 450, 400], (0, 1)),                  # right to left: out
    ([[0.5, 1], [0.5, 0]], [400, 600], (0, 1)),                       # swapped points swap in/out
    (VLINE, [400, 490, 510, 485, 515, 490, 510, 520], (0, 0)),        # jitter on the line
    (VLINE, [400, 600, 490, 510, 480, 520, 600], (1, 0)),             # jitter after a crossing
    (VLINE, [400, 600, 400, 600], (2, 1)),                            # each real crossing
    (VLINE, [400, 520, 400], (0, 0)),                                 # into the band and back
    (VLINE, [505, 600, 400], (0, 1)),                                 # starts in the band
    (VLINE, [100, 900], (1, 0)),                                      # one-frame jump
], ids=["in", "out", "swapped", "jitter", "jitter-after", "back-and-forth", "turn-back",
        "start-in-band", "jump"])
def test_line_crossings(tmp_path, line, path, expect):
    c = counter(tmp_path, {"door": line})
    play(c, [[trk(1, x)] for x in path])
    assert c.counts() == {"door": {"in": expect[0], "out": expect[1]}}


@pytest.mark.parametrize("path, expect", [
    ([(500, 600), (500, 400)], (1, 0)),  # bottom to top across a line drawn rightwards: in
    ([(500, 400), (500, 600)], (0, 1)),
])
def test_horizontal_line_direction(tmp_path, path, expect):
    c = counter(tmp_path, {"h": [[0, 0.5], [1, 0.5]]})
    play(c, [[trk(1, x, y)] for x, y in path])
    assert c.counts()["h"] == {"in": expect[0], "out": expect[1]}


@pytest.mark.parametrize("path, expect", [
    ([(400, 200), (600, 200)], (1, 0)),                           # through the segment
    ([(400, 700), (600, 700)], (0, 0)),                           # through the infinite line only
    ([(400, 200), (400, 700), (600, 700), (600, 200)], (0, 0)),   # around the end
    ([(400, 380), (600, 420)], (1, 0)),                           # cuts just inside the end
    ([(400, 390), (600, 450)], (0, 0)),                           # cuts just beyond the end
], ids=["inside", "beyond", "around", "edge-in", "edge-out"])
def test_crossing_must_cut_the_segment(tmp_path, path, expect):
    c = counter(tmp_path, {"short": [[500, 0], [500, 400]]})  # pixels
    play(c, [[trk(1, x, y)] for x, y in path])
    assert c.counts()["short"] == {"in": expect[0], "out": expect[1]}


@pytest.mark.parametrize("confirmed, expect", [
    ([False, False, False, False], (0, 0)),  # never confirmed: ignored
    ([False, False, False, True], (0, 0)),   # crossed while tentative: not counted later
    ([False, True, True, True], (1, 0)),     # confirmed before the line
], ids=["never", "during", "before"])
def test_only_confirmed_tracks_count(tmp_path, confirmed, expect):
    c = counter(tmp_path, {"door": VLINE})
    path = [400, 420, 600, 620]
    play(c, [[trk(1, x, confirmed=k)] for x, k in zip(path, confirmed)])
    assert c.counts()["door"] == {"in": expect[0], "out": expect[1]}


@pytest.mark.parametrize("path, expect", [
    ([(400, 0), (600, 1), (650, 2), (700, 0)], (1, 0)),  # predicted across, seen again: counts once
    ([(400, 0), (600, 1), (400, 0)], (0, 0)),            # only the prediction crossed
], ids=["reacquired", "prediction-only"])
def test_predicted_boxes_never_cross(tmp_path, path, expect):
    c = counter(tmp_path, {"door": VLINE})
    play(c, [[trk(1, x, misses=m)] for x, m in path])
    assert c.counts()["door"] == {"in": expect[0], "out": expect[1]}


@pytest.mark.parametrize("anchor, expect", [("center", (1, 0)), ("bottom", (0, 0))])
def test_anchor_point(tmp_path, anchor, expect):
    # Boxes 200 px tall moving up across y=500: the centre crosses, the bottom edge does not.
    c = counter(tmp_path, {"h": [[0, 0.5], [1, 0.5]]}, anchor=anchor)
    play(c, [[trk(1, 500, y, half=100)] for y in (650, 560, 450)])
    assert c.counts()["h"] == {"in": expect[0], "out": expect[1]}


@pytest.mark.parametrize("hysteresis, path, expect", [
    (0.0, [499, 501, 499], (1, 1)),      # no band: every sign change counts
    (0.0, [499, 500, 501], (1, 0)),      # exactly on the line is no side
    (0.1, [400, 600, 400], (0, 0)),      # band of +-141 px: 100 px away is not firm
    (0.1, [300, 700], (1, 0)),
])
def test_hysteresis_band(tmp_path, hysteresis, path, expect):
    c = counter(tmp_path, {"door": VLINE}, hysteresis=hysteresis)
    play(c, [[trk(1, x)] for x in path])
    assert c.counts()["door"] == {"in": expect[0], "out": expect[1]}


@pytest.mark.parametrize("points, size, expect", [
    (VLINE, (1000, 1000), (1, 0)),
    ([[500, 0], [500, 1000]], (1000, 1000), (1, 0)),  # the same line in pixels
    (VLINE, (2000, 500), (0, 0)),                      # fractions scale: the line is at x=1000
    ([[1000, 0], [1000, 500]], (2000, 500), (0, 0)),
])
def test_fractions_and_pixels(tmp_path, points, size, expect):
    c = counter(tmp_path, {"door": points})
    play(c, [[trk(1, x, 250)] for x in (400, 600)], size=size)
    assert c.counts()["door"] == {"in": expect[0], "out": expect[1]}


def test_fraction_line_in_a_wider_frame(tmp_path):
    c = counter(tmp_path, {"door": VLINE})
    play(c, [[trk(1, x, 250)] for x in (900, 1100)], size=(2000, 500))
    assert c.counts()["door"] == {"in": 1, "out": 0}


def test_many_tracks_and_lines_at_once(tmp_path):
    c = counter(tmp_path, {"a": VLINE, "b": [[0, 0.5], [1, 0.5]]})
    frames = [[trk(1, 400, 100), trk(2, 600, 300), trk(3, 100, 600)],
              [trk(1, 600, 100), trk(2, 400, 300), trk(3, 100, 400)]]
    play(c, frames)
    assert c.counts() == {"a": {"in": 1, "out": 1}, "b": {"in": 1, "out": 0}}


def test_reset_tracks_forgets_sides_but_keeps_counts(tmp_path):
    c = counter(tmp_path, {"door": VLINE})
    play(c, [[trk(1, x)] for x in (400, 600)])
    play(c, [[trk(2, 400)]])
    c.reset_tracks()  # scene cut: track 2's side is gone; a new track 2 on the right is new
    play(c, [[trk(2, 600)], [trk(2, 650)]])
    assert c.counts()["door"] == {"in": 1, "out": 0}


# ---- events --------------------------------------------------------------------------------

def test_cross_event_payload(tmp_path):
    bld = EventBuilder("cam")
    c = counter(tmp_path, {"door": VLINE}, make_event=bld.make)
    a = Attributes("female", 0.97, 31.4, 27.0, 36.0, 0.7, samples=3)
    ev = cross_events(play(c, [[trk(7, x)] for x in (400, 600)], attrs={7: a}))
    assert len(ev) == 1
    d = ev[0].to_dict()
    assert d["type"] == "cross" and d["camera"] == "cam" and d["id"].startswith(bld.run_id)
    assert d["track_id"] == 7 and d["line"] == "door" and d["direction"] == "in"
    assert d["box"] == [580, 480, 620, 520] and d["frame_id"] == 1
    assert d["gender"] == {"label": "female", "confidence": 0.97}
    assert d["age"]["years"] == 31.4 and d["attributes_reason"] is None
    assert d["counts"]["lines"] == {"door": {"in": 1, "out": 0}} and d["counts"]["people"] == 1


def test_event_ids_are_unique_without_an_injected_builder(tmp_path):
    c = counter(tmp_path, {"door": VLINE})
    ev = play(c, [[trk(1, x)] for x in (400, 600, 400, 600)])
    ids = [e.id for e in ev]
    assert len(ids) == len(set(ids)) and all(ids)


def test_summary_splits_by_gender_and_age(tmp_path):
    c = counter(tmp_path, {"door": VLINE}, summary_interval_s=10.0)
    attrs = {1: Attributes("male", 0.9, 30.0, 25, 35, 0.6), 2: Attributes("female", 0.9, 70.0, 60, 80, 0.6),
             4: Attributes("female", 0.8, 12.9, 10, 15, 0.5)}
    ev = play(c, [[trk(1, 400, 100), trk(2, 400, 300), trk(3, 400, 500), trk(4, 600, 700)],
                  [trk(1, 600, 100), trk(2, 600, 300), trk(3, 600, 500), trk(4, 400, 700)]],
              attrs=attrs)
    assert [e.payload["reason"] for e in ev if e.type == "summary"] == ["start"]
    assert c.tick(5.0, 1) == []
    s = c.tick(10.0, 1)
    assert [e.payload["reason"] for e in s] == ["interval"]
    door = s[0].payload["lines"]["door"]
    assert (door["in"], door["out"]) == (3, 1)
    assert door["by_gender"] == {"in": {"male": 1, "female": 1, "unknown": 1},
                                 "out": {"male": 0, "female": 1, "unknown": 0}}
    zero = dict.fromkeys(["0-12", "13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+", "unknown"], 0)
    assert door["by_age"] == {"in": {**zero, "25-34": 1, "65+": 1, "unknown": 1},
                              "out": {**zero, "0-12": 1}}
    assert s[0].payload["people"] == 4 and s[0].payload["counts"]["lines"]["door"] == {"in": 3, "out": 1}
    fin = c.finish(11.0, 1)
    assert [e.payload["reason"] for e in fin] == ["final"]


@pytest.mark.parametrize("bins, labels", [
    ([13, 18, 25, 35, 45, 55, 65], ["0-12", "13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]),
    ([18], ["0-17", "18+"]),
    ([], ["0+"]),
])
def test_age_labels(bins, labels):
    assert age_labels(bins) == labels


def test_unique_people_are_confirmed_tracks(tmp_path):
    c = counter(tmp_path, {"door": VLINE})
    play(c, [[trk(1, 100), trk(2, 200), trk(3, 300, confirmed=False)]] * 5)
    assert c.snapshot()["people"] == 2


# ---- zones ---------------------------------------------------------------------------------
SQUARE = [[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]]  # 200..600 px


def test_zone_occupancy_and_dwell(tmp_path):
    c = counter(tmp_path, zones={"desk": SQUARE})
    # t=0 outside, t=1 inside, t=2..4 jitter at the edge (10 px outside < 28 px band), t=6 out
    xs = [100, 300, 610, 590, 615, 400, 700]
    ev = [e for e in play(c, [[trk(1, x, 400)] for x in xs]) if e.type.startswith("zone")]
    assert [e.type for e in ev] == ["zone_enter", "zone_exit"]
    assert ev[0].ts == 1.0 and ev[0].payload["counts"]["zones"] == {"desk": 1}
    assert ev[1].payload["dwell_s"] == 5.0 and ev[1].payload["reason"] == "left"
    assert ev[1].payload["counts"]["zones"] == {"desk": 0}
    z = c.finish(7.0, 7)[-1].payload["zones"]["desk"]
    assert z == {"occupancy": 0, "inside": [], "visits": 1, "dwell_total_s": 5.0,
                 "dwell_mean_s": 5.0, "dwell_max_s": 5.0}


def test_zone_occupancy_counts_confirmed_tracks_inside_now(tmp_path):
    c = counter(tmp_path, zones={"desk": SQUARE})
    play(c, [[trk(1, 300, 300), trk(2, 400, 400), trk(3, 500, 500, confirmed=False), trk(4, 900, 900)]] * 3)
    assert c.snapshot()["zones"] == {"desk": 2}
    inside = c.finish(2.0, 2)[-1].payload["zones"]["desk"]["inside"]
    assert inside == [{"track_id": 1, "dwell_s": 2.0}, {"track_id": 2, "dwell_s": 2.0}]


def test_zone_exit_when_the_track_is_lost_or_reset(tmp_path):
    c = counter(tmp_path, zones={"desk": SQUARE})
    ev = play(c, [[trk(1, 100, 400), trk(2, 400, 400)], [trk(1, 300, 400), trk(2, 400, 400)],
                  [trk(1, 300, 400), trk(2, 400, 400)], [trk(2, 400, 400)]])
    lost = [e for e in ev if e.type == "zone_exit"]
    got = [(e.payload["track_id"], e.payload["reason"], e.payload["dwell_s"]) for e in lost]
    assert got == [(1, "lost", 1.0)]
    c.reset_tracks()
    ev = c.tick(10.0, 4)
    exits = [e for e in ev if e.type == "zone_exit"]
    assert [(e.payload["track_id"], e.payload["reason"], e.payload["dwell_s"]) for e in exits] == \
        [(2, "tracks_reset", 3.0)]
    assert c.snapshot()["zones"] == {"desk": 0}


# ---- persistence and reset -----------------------------------------------------------------

def local(y, mo, d, h, mi) -> float:
    return datetime(y, mo, d, h, mi).timestamp()


def test_counts_survive_a_new_counter_instance(tmp_path):
    a = counter(tmp_path, {"door": VLINE}, zones={"desk": SQUARE})
    attrs = {1: Attributes("male", 0.9, 40.0, 35, 45, 0.6)}
    play(a, [[trk(1, x, 400)] for x in (100, 300, 700, 300)], attrs=attrs)  # in, out via desk
    assert a.counts()["door"] == {"in": 1, "out": 1}
    # No finish(): the state written on change (tick) must be enough after a crash.
    b = counter(tmp_path, {"door": VLINE}, zones={"desk": SQUARE})
    assert b.counts() == a.counts()
    s = b.finish(0.0, 0)[-1].payload
    assert s["lines"]["door"]["by_gender"]["in"]["male"] == 1
    assert s["lines"]["door"]["by_age"]["out"]["35-44"] == 1
    assert s["people"] == 1 and s["zones"]["desk"]["visits"] == 1
    files = sorted(p.name for p in (tmp_path / "state").iterdir())
    assert files == ["counts-cam.json"]  # atomic write leaves no temp file


def test_new_lines_start_at_zero_and_removed_lines_are_dropped(tmp_path):
    a = counter(tmp_path, {"door": VLINE})
    play(a, [[trk(1, x)] for x in (400, 600)])
    a.finish(2.0, 2)
    b = counter(tmp_path, {"door": VLINE, "gate": [[0, 0.5], [1, 0.5]]})
    assert b.counts() == {"door": {"in": 1, "out": 0}, "gate": {"in": 0, "out": 0}}


def test_unreadable_state_starts_from_zero_and_is_kept_aside(tmp_path, caplog):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "counts-cam.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        c = counter(tmp_path, {"door": VLINE})
    assert c.counts()["door"] == {"in": 0, "out": 0}
    assert "unreadable" in caplog.text
    assert any(p.name.startswith("counts-cam.json.bad-") for p in (tmp_path / "state").iterdir())


def test_scheduled_reset_while_running(tmp_path):
    clock = Clock(local(2026, 6, 10, 2, 59))
    c = counter(tmp_path, {"door": VLINE}, clock=clock, reset="daily@03:00")
    play(c, [[trk(1, x)] for x in (400, 600)], t0=clock.t)
    assert c.counts()["door"]["in"] == 1
    clock.t = local(2026, 6, 10, 3, 0) + 30
    ev = c.tick(clock.t, 2)
    assert [e.payload["reason"] for e in ev] == ["reset", "start"]
    assert ev[0].payload["lines"]["door"]["in"] == 1
    assert ev[0].payload["period_end"] == ev[1].payload["period_start"]
    assert datetime.fromisoformat(ev[1].payload["period_start"]).timestamp() == local(2026, 6, 10, 3, 0)
    assert ev[1].payload["lines"]["door"]["in"] == 0 and c.counts()["door"] == {"in": 0, "out": 0}
    state = json.loads((tmp_path / "state" / "counts-cam.json").read_text())
    assert state["period_start"] == local(2026, 6, 10, 3, 0) and state["lines"]["door"]["in"] == 0
    assert c.tick(clock.t + 1, 3) == []  # once per day


@pytest.mark.parametrize("reset, restart_at, expect_in", [
    ("daily@03:00", (2026, 6, 11, 2, 0), 2),   # before the next reset: restored
    ("daily@03:00", (2026, 6, 11, 8, 0), 0),   # down over 03:00: reset on start
    ("daily@03:00", (2026, 6, 14, 1, 0), 0),   # down for days
    ("daily@23:30", (2026, 6, 10, 23, 45), 0),  # the same evening, after the reset time
    ("never", (2026, 9, 1, 12, 0), 2),
])
def test_reset_when_the_program_was_down(tmp_path, reset, restart_at, expect_in):
    clock = Clock(local(2026, 6, 10, 22, 0))
    a = counter(tmp_path, {"door": VLINE}, clock=clock, reset=reset)
    play(a, [[trk(1, x)] for x in (400, 600, 400)] + [[trk(2, x)] for x in (400, 600)], t0=clock.t)
    a.finish(clock.t, 5)
    assert a.counts()["door"]["in"] == 2
    clock.t = local(*restart_at)
    b = counter(tmp_path, {"door": VLINE}, clock=clock, reset=reset)
    assert b.counts()["door"]["in"] == expect_in
    assert b.counts()["door"]["out"] == (1 if expect_in else 0)


# ---- config and overlay --------------------------------------------------------------------

@pytest.mark.parametrize("lines, zones, kw, error", [
    ({"door": [[0.5, 0.5], [0.5, 0.5]]}, None, {}, r"counting.lines\[0\].points: the two points are"),
    # refused by the config model itself (streamer/config), naming the coordinate
    ({"door": [[0, "a"], [1, 1]]}, None, {}, r"points\[0\]\[1\]: expected a number"),
    (None, {"z": [[0, 0], [1, 1], [0.5, 0.5]]}, {}, r"counting.zones\[0\].points: the polygon has no area"),
    (None, None, {"reset": "daily@25:00"}, "counting.reset: expected never or daily@HH:MM"),
    (None, None, {"reset": "daily@ab:cd"}, "counting.reset"),
])
def test_bad_geometry_and_schedule_are_refused(tmp_path, lines, zones, kw, error):
    with pytest.raises(ConfigError, match=error):
        counter(tmp_path, lines, zones, **kw)


def test_duplicate_line_names_are_refused(tmp_path):
    cfg = CountingConfig(lines=[LineConfig("door", VLINE), LineConfig("door", [[0, 0], [1, 1]])],
                         state_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"counting.lines\[1\].name: duplicate"):
        Counter(cfg, "cam")


def test_draw_lines_in_pixels(tmp_path):
    c = counter(tmp_path, {"door": VLINE, "px": [[10, 20], [30, 40]]}, zones={"desk": SQUARE})
    got = c.draw_lines((1280, 720))
    assert got[0] == ((640.0, 0.0), (640.0, 720.0), "door")
    assert got[1] == ((10.0, 20.0), (30.0, 40.0), "px")
    assert [g[2] for g in got[2:]] == ["desk", "", "", ""] and got[2][0] == (256.0, 144.0)
    assert c.draw_lines((0, 0)) == [((10.0, 20.0), (30.0, 40.0), "px")]  # size unknown yet


def test_counting_events_match_the_event_schema(tmp_path):
    import jsonschema  # requirements-dev.txt
    from pathlib import Path
    schema = json.loads((Path(__file__).resolve().parent.parent / "schema" / "event.schema.json").read_text())
    declared = set(schema["properties"]["type"]["enum"])
    clock = Clock(local(2026, 6, 10, 2, 59))
    c = counter(tmp_path, {"door": VLINE}, zones={"desk": SQUARE}, clock=clock, reset="daily@03:00",
                summary_interval_s=1.0)
    a = {1: Attributes("male", 0.9, 30.0, 25, 35, 0.6)}
    ev = play(c, [[trk(1, x, 400), trk(2, 900, 900)] for x in (100, 300, 700, 800)], attrs=a, t0=clock.t)
    clock.t = local(2026, 6, 10, 3, 1)
    ev += c.tick(clock.t, 5) + c.finish(clock.t + 1, 6)
    types = {e.type for e in ev}
    assert {"cross", "summary", "zone_enter", "zone_exit"} <= types
    reasons = {e.payload["reason"] for e in ev if e.type == "summary"}
    assert reasons == {"start", "interval", "reset", "final"}
    assert types <= declared, types - declared  # every type emitted is declared in the schema
    for e in ev:
        jsonschema.validate(e.to_dict(), schema)


# ---- exact schedule, labels and totals (found by mutation testing: `make mutate`) ----------

from streamer.core.counting import last_reset, parse_reset  # noqa: E402


@pytest.mark.parametrize("spec, at", [
    ("never", None), ("daily@00:00", (0, 0)), ("daily@23:59", (23, 59)), ("daily@03:07", (3, 7)),
])
def test_parse_reset_accepts_the_whole_day(spec, at):
    assert parse_reset(spec) == at


@pytest.mark.parametrize("spec", ["daily@24:00", "daily@12:60", "daily@-1:00", "daily@00:-1",
                                  "weekly@03:00", "03:00", "daily@3", "daily@aa:bb", ""])
def test_parse_reset_refuses_anything_else_naming_it(spec):
    with pytest.raises(ConfigError) as e:
        parse_reset(spec)
    assert repr(spec) in str(e.value) and "daily@HH:MM (00:00-23:59)" in str(e.value)


def test_last_reset_is_the_latest_boundary_at_or_before_now():
    at = (3, 30)
    assert last_reset(local(2026, 6, 10, 3, 30), at) == local(2026, 6, 10, 3, 30)  # at: this one
    assert last_reset(local(2026, 6, 10, 3, 30) + 59.5, at) == local(2026, 6, 10, 3, 30)
    assert last_reset(local(2026, 6, 10, 3, 29) + 59.9, at) == local(2026, 6, 9, 3, 30)  # just before
    assert last_reset(local(2026, 6, 10, 23, 0), at) == local(2026, 6, 10, 3, 30)


def test_age_labels_for_whole_and_fractional_bins():
    assert age_labels([13, 18.0, 65]) == ["0-12", "13-17", "18-64", "65+"]
    assert age_labels([2.5, 10]) == ["0-<2.5", "2.5-9", "10+"]
    assert age_labels([]) == ["0+"]


def test_totals_add_up_per_gender_and_age(tmp_path):
    c = counter(tmp_path, {"door": VLINE})
    men = {i: Attributes("male", 0.9, 30.0, 25, 35, 0.6) for i in (1, 2, 3)}
    men[3] = Attributes("female", 0.9, 70.0, 60, 80, 0.6)
    # three in (two men of 25-34, one woman of 65+), then one of the men back out
    play(c, [[trk(1, x), trk(2, x, 100), trk(3, x, 900)] for x in (400, 600)] + [[trk(1, 400)]],
         attrs=men)
    door = c.finish(3.0, 3)[-1].payload["lines"]["door"]
    assert (door["in"], door["out"]) == (3, 1)
    assert door["by_gender"]["in"] == {"male": 2, "female": 1, "unknown": 0}
    assert door["by_gender"]["out"] == {"male": 1, "female": 0, "unknown": 0}
    assert door["by_age"]["in"]["25-34"] == 2 and door["by_age"]["in"]["65+"] == 1
    assert door["by_age"]["out"]["25-34"] == 1


def test_zone_dwell_totals_over_two_visits(tmp_path):
    c = counter(tmp_path, zones={"desk": SQUARE})
    # track 1 inside t=1..3 (2 s), track 2 inside t=4..8 (4 s); track 3 inside from t=9
    xs1 = [100, 300, 400, 700]
    frames = [[trk(1, x, 400)] for x in xs1]
    frames += [[trk(2, x, 400)] for x in (300, 400, 400, 400, 700)]
    frames += [[trk(3, 300, 400)], [trk(3, 310, 400)]]
    play(c, frames)
    z = c.finish(10.5, 11)[-1].payload["zones"]["desk"]
    # two visits done (2 s, 4 s); the third person is still inside at the summary
    assert (z["visits"], z["dwell_total_s"], z["dwell_mean_s"], z["dwell_max_s"]) == (2, 6.0, 3.0, 4.0)
    assert z["occupancy"] == 1 and z["inside"] == [{"track_id": 3, "dwell_s": 1.5}]


def test_inside_dwell_is_measured_to_the_summary_time(tmp_path):
    c = counter(tmp_path, zones={"desk": SQUARE}, summary_interval_s=2.0)
    ev = play(c, [[trk(1, 100, 400)]] + [[trk(1, 300 + i, 400)] for i in range(4)])
    summaries = [e for e in ev if e.type == "summary" and e.payload["reason"] == "interval"]
    assert summaries, [e.type for e in ev]
    last = summaries[-1]
    (inside,) = last.payload["zones"]["desk"]["inside"]
    assert inside == {"track_id": 1, "dwell_s": round(last.ts - 1.0, 3)}  # entered at t=1


def test_restore_brings_back_every_zone_total(tmp_path):
    a = counter(tmp_path, zones={"desk": SQUARE})
    play(a, [[trk(1, x, 400)] for x in (100, 300, 400, 700)])  # one 2 s visit
    a.finish(4.0, 4)
    z = counter(tmp_path, zones={"desk": SQUARE}).finish(5.0, 5)[-1].payload["zones"]["desk"]
    assert (z["visits"], z["dwell_total_s"], z["dwell_max_s"], z["dwell_mean_s"]) == (1, 2.0, 2.0, 2.0)


def test_restore_fills_labels_missing_from_an_older_state_with_zero(tmp_path):
    a = counter(tmp_path, {"door": VLINE})
    play(a, [[trk(1, x)] for x in (400, 600)], attrs={1: Attributes("male", 0.9, 30.0, 25, 35, 0.6)})
    a.finish(2.0, 2)
    f = tmp_path / "state" / "counts-cam.json"
    st = json.loads(f.read_text())
    del st["lines"]["door"]["by_gender"]["in"]["female"]  # a label an older version did not write
    f.write_text(json.dumps(st))
    door = counter(tmp_path, {"door": VLINE}).finish(3.0, 3)[-1].payload["lines"]["door"]
    assert door["by_gender"]["in"] == {"male": 1, "female": 0, "unknown": 0}


@pytest.mark.parametrize("restart_at, kept", [
    ((2026, 6, 10, 2, 59), True),   # same period: continued
    ((2026, 6, 10, 3, 0), False),   # the reset boundary passed while down: from zero
])
def test_a_state_from_before_the_last_reset_starts_from_zero(tmp_path, restart_at, kept):
    clock = Clock(local(2026, 6, 10, 2, 0))
    a = counter(tmp_path, {"door": VLINE}, clock=clock, reset="daily@03:00")
    play(a, [[trk(1, x)] for x in (400, 600)], t0=clock.t)  # the period starts at the first frame
    a.finish(clock.t, 2)
    clock.t = local(*restart_at)
    b = counter(tmp_path, {"door": VLINE}, clock=clock, reset="daily@03:00")
    assert b.counts()["door"]["in"] == (1 if kept else 0)
    s = b.finish(clock.t, 3)[-1].payload
    if kept:  # the restored period goes on from where it started, not from the restart
        assert s["period_start"] == EventBuilder("x").make("summary", local(2026, 6, 10, 2, 0), 0, {}).to_dict()["ts"]
    if not kept:  # the new period starts at the boundary, and the zeroed state is written
        assert s["period_start"] == EventBuilder("x").make("summary", local(2026, 6, 10, 3, 0), 0, {}).to_dict()["ts"]
        assert json.loads((tmp_path / "state" / "counts-cam.json").read_text())["lines"]["door"]["in"] == 0


def test_a_state_exactly_at_the_last_reset_is_continued(tmp_path):
    clock = Clock(local(2026, 6, 10, 3, 0))  # the period starts exactly at the boundary
    a = counter(tmp_path, {"door": VLINE}, clock=clock, reset="daily@03:00")
    play(a, [[trk(1, x)] for x in (400, 600)], t0=clock.t)  # the period starts at the first frame
    a.finish(clock.t, 2)
    clock.t = local(2026, 6, 10, 4, 0)
    assert counter(tmp_path, {"door": VLINE}, clock=clock, reset="daily@03:00").counts()["door"]["in"] == 1


def test_a_zone_added_since_the_state_was_written_starts_at_zero(tmp_path):
    a = counter(tmp_path, zones={"desk": SQUARE})
    play(a, [[trk(1, x, 400)] for x in (100, 300, 400, 700)])
    a.finish(4.0, 4)
    hall = [[0.7, 0.7], [0.9, 0.7], [0.9, 0.9], [0.7, 0.9]]
    z = counter(tmp_path, zones={"desk": SQUARE, "hall": hall}).finish(5.0, 5)[-1].payload["zones"]
    assert z["desk"]["visits"] == 1
    assert (z["hall"]["visits"], z["hall"]["dwell_total_s"], z["hall"]["dwell_max_s"]) == (0, 0.0, 0.0)
