"""Labels you can read: geometry from ``overlay.render`` / ``layout_faces`` and the pixels drawn.

Faces at the top edge, at the right edge, side by side, stacked and tiny, with a counting line
and a zone, at three frame sizes: every label lies inside the frame, below the stats bar and
on no other label, and the pixels agree (black label backgrounds only inside label rectangles
or the bar; every label rectangle really holds its text).
"""

from __future__ import annotations

import numpy as np
import pytest

from streamer.media import overlay
from streamer.types import Attributes, FaceResult, Person, Stats, Track

GREY = 150
ATTR = Attributes("female", 0.993, 34.0, 25.0, 44.0, 0.4, 3)


def person(tid, box, confirmed=True, misses=0, attrs=ATTR):
    return Person(Track(tid, tuple(float(v) for v in box), 0.9, confirmed, 5, misses, 0, 10), attrs)


def scene(w, h):
    """Boxes in fractions of the frame: top edge, right edge, a side-by-side pair, a stacked
    pair, a tiny face, a tentative one and one the tracker is coasting (not drawn)."""
    f = lambda x1, y1, x2, y2: (x1 * w, y1 * h, x2 * w, y2 * h)  # noqa: E731
    return [
        person(1, f(0.05, 0.0, 0.17, 0.2)),           # touches the top edge (under the bar)
        person(2, f(0.88, 0.30, 1.0, 0.50)),          # touches the right edge
        person(3, f(0.30, 0.40, 0.40, 0.58)),         # side by side ...
        person(4, f(0.40, 0.40, 0.50, 0.58)),         # ... with 3
        person(5, f(0.60, 0.62, 0.70, 0.80)),         # stacked ...
        person(6, f(0.60, 0.81, 0.70, 0.99)),         # ... under 5, at the bottom edge
        person(7, f(0.20, 0.75, 0.225, 0.79)),        # tiny
        person(8, f(0.75, 0.05, 0.85, 0.25), confirmed=False),
        person(9, f(0.10, 0.50, 0.20, 0.70), misses=3),
    ]


def geometry(w, h):
    return overlay.Geometry(lines=(("door", (0.5 * w, 0.0), (0.5 * w, float(h))),),
                            zones=(("desk", ((0.7 * w, 0.3 * h), (0.95 * w, 0.3 * h),
                                             (0.95 * w, 0.6 * h), (0.7 * w, 0.6 * h))),))


def check(img, layout):
    w, h = layout.size
    rects = [lab.rect for lab in layout.labels]
    for r in rects:
        assert 0 <= r[0] < r[2] <= w and 0 <= r[1] < r[3] <= h, r  # inside the frame
        if layout.bar:
            assert r[1] >= layout.bar[3], (r, layout.bar)  # not under the stats bar
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert not overlay._overlaps(a, b), (a, b)
    # Pixels: black backgrounds only where a label or the bar is, and each label holds text.
    allowed = np.zeros((h, w), bool)
    for r in rects + ([layout.bar] if layout.bar else []):
        allowed[r[1]:r[3], r[0]:r[2]] = True
    black = (img == 0).all(axis=2)
    assert not (black & ~allowed).any(), np.argwhere(black & ~allowed)[:5]
    for r in rects:
        patch = img[r[1]:r[3], r[0]:r[2]]
        assert (patch == 0).all(axis=2).mean() > 0.4  # its own background, not covered
        assert (patch.max(axis=2) > 100).any()  # and its text


@pytest.mark.parametrize("w,h", [(640, 360), (1280, 720), (1920, 1080)])
def test_stream_labels_inside_below_the_bar_and_apart(w, h):
    img = np.full((h, w, 3), GREY, np.uint8)
    stats = Stats(fps=25.0, latency_ms=40, faces=99, counts={"door": {"in": 3, "out": 1}})
    lay = overlay.render(img, scene(w, h), stats, geometry(w, h), occupancy={"desk": 2})
    check(img, lay)
    faces = [lab for lab in lay.labels if lab.kind == "face"]
    assert len(faces) == 7  # confirmed and drawn; tentative gets a box only, coasting nothing
    assert lay.boxes == 8 and "faces 8 " in lay.bar_text and "99" not in lay.bar_text
    texts = {lab.text for lab in lay.labels}
    assert {"door", "in", "out", "desk: 2 inside"} <= texts
    tiny = next(lab.text for lab in faces if lab.text.startswith("#7"))
    assert "%" not in tiny  # a small face gets a short label
    full = next(lab.text for lab in faces if lab.text.startswith("#3"))
    assert "99%" in full and "100%" not in full


def test_text_and_lines_scale_with_the_frame():
    small, mid, big = overlay.sizes((360, 640)), overlay.sizes((720, 1280)), overlay.sizes((1080, 1920))
    assert small[0] < mid[0] < big[0] and big[0] >= 2 * small[0]
    assert small[1] < mid[1] < big[1]  # line width too
    # A label is about as tall, relative to the frame, at every size (within 40%).
    rel = [overlay._label_wh("#3 F 90% 34y", s[0], s[2])[1] / h for s, h in ((small, 360), (mid, 720), (big, 1080))]
    assert max(rel) / min(rel) < 1.4, rel


def test_in_arrow_points_to_the_in_side():
    # Vertical line top -> bottom: "in" is left -> right (counting.Segment), so the arrow's
    # head and the "in" label are right of the line, "out" left of it.
    tail, head, in_at, out_at = overlay._arrow_and_sides("door", (100.0, 0.0), (100.0, 200.0), 20)
    assert tail[0] < 100 < head[0] and in_at[0] > 100 > out_at[0]


def test_single_image_faces_never_collide():
    w, h = 800, 500
    img = np.full((h, w, 3), GREY, np.uint8)
    boxes = [(0, 0, 120, 140), (120, 0, 240, 140), (680, 200, 800, 340), (300, 200, 420, 340),
             (300, 345, 420, 500), (500, 10, 510, 20)]
    faces = [FaceResult(b, 0.9, ATTR) for b in boxes]
    lay = overlay.layout_faces(img, faces)
    check(img, lay)
    assert [lab.text.split()[0] for lab in lay.labels] == [str(i) for i in range(len(faces))]
    assert lay.labels[5].text == "5"  # a 10 px face: its number only


def test_crowded_row_at_the_top_still_fits():
    w, h = 640, 360
    img = np.full((h, w, 3), GREY, np.uint8)
    people = [person(i + 1, (i * 64, 0, i * 64 + 60, 70)) for i in range(10)]
    lay = overlay.render(img, people, Stats(), overlay.Geometry())
    check(img, lay)
