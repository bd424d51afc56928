"""The counting-state adapter (media/count_state.py) on a real filesystem: round trip, files
that are not ours, writes that fail; and the counter with no adapter (memory only, no file)."""

from __future__ import annotations

import json
import logging

import numpy as np

from streamer.config import CountingConfig, LineConfig
from streamer.core.counting import Counter
from streamer.media import count_state
from streamer.types import Frame, Person, Track

VLINE = [[0.5, 0], [0.5, 1]]


def walk(c: Counter, xs) -> None:
    img = np.zeros((1000, 1000, 3), np.uint8)
    for i, x in enumerate(xs):
        t = Track(1, (x - 20, 480, x + 20, 520), 0.9, True, 5, 0, 0, 0)
        c.update([Person(t, None)], Frame(i, float(i), float(i), img))
        c.tick(float(i), i)


def cfg(tmp_path) -> CountingConfig:
    return CountingConfig(lines=[LineConfig("door", VLINE)], state_dir=str(tmp_path / "st"),
                          reset="never", summary_interval_s=0.0)


def test_round_trip_and_schema(tmp_path):
    st = count_state.for_camera(tmp_path / "st", "cam")
    assert st.load() is None  # nothing saved yet
    assert st.save({"camera": "cam", "period_start": 12.5, "people": 3, "lines": {"door": {"in": 1}},
                    "zones": {}})
    raw = json.loads((tmp_path / "st" / "counts-cam.json").read_text())
    assert raw["schema"] == count_state.STATE_SCHEMA
    got = st.load()
    assert got["period_start"] == 12.5 and got["people"] == 3 and got["lines"] == {"door": {"in": 1}}


def test_a_file_of_another_kind_is_set_aside(tmp_path, caplog):
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "counts-cam.json").write_text(json.dumps({"schema": "other/1", "lines": []}))
    with caplog.at_level(logging.WARNING):
        assert count_state.for_camera(tmp_path / "st", "cam").load() is None
    assert "unreadable" in caplog.text
    assert [p.name.startswith("counts-cam.json.bad-") for p in (tmp_path / "st").iterdir()] == [True]


def test_failed_writes_keep_counting_in_memory_and_retry(tmp_path, caplog):
    (tmp_path / "st").write_text("a file where the folder should be")  # mkdir fails: OSError
    st = count_state.for_camera(tmp_path / "st", "cam")
    c = Counter(cfg(tmp_path), "cam", clock=iter(range(10**6)).__next__, state=st)
    with caplog.at_level(logging.ERROR):
        walk(c, (400, 600, 400))
    assert c.counts()["door"] == {"in": 1, "out": 1}
    assert st.write_errors >= 2  # still dirty, so every throttled tick tried again
    assert caplog.text.count("cannot be written") == 1  # logged once, not per attempt


def test_without_an_adapter_nothing_is_written(tmp_path):
    c = Counter(cfg(tmp_path), "cam")
    walk(c, (400, 600))
    c.finish(2.0, 2)
    assert c.counts()["door"]["in"] == 1 and not (tmp_path / "st").exists()
