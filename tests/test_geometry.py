"""Counting geometry (core/geometry.py): zones through cv2.pointPolygonTest, lines, config checks."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from streamer.config import CountingConfig, LineConfig, ZoneConfig
from streamer.core.geometry import Polygon, Segment, check_geometry, resolve
from streamer.errors import ConfigError

# A concave "L": the notch (15, 15) is outside although it lies inside the bounding box.
L_SHAPE = Polygon("l", ((0, 0), (20, 0), (20, 10), (10, 10), (10, 20), (0, 20)))


@pytest.mark.parametrize("p, inside", [
    ((5, 5), True), ((15, 5), True), ((5, 15), True),
    ((15, 15), False), ((25, 5), False), ((-1, 10), False),
    ((20, 5), True), ((10, 15), True),  # on the outline counts as inside
])
def test_zone_contains_a_concave_polygon(p, inside):
    assert L_SHAPE.contains(p) is inside


def test_zone_distance_is_to_the_nearest_edge_inside_and_out():
    assert L_SHAPE.distance((15, 15)) == pytest.approx(5.0)  # from the notch to both inner edges
    assert L_SHAPE.distance((5, 5)) == pytest.approx(5.0)
    assert L_SHAPE.distance((23, 14)) == pytest.approx(5.0)  # to the corner (20, 10)
    assert L_SHAPE.distance((0, 7)) == 0.0


def test_line_side_and_cut_within_the_segment_only():
    door = Segment("door", (50, 0), (50, 100))  # drawn downwards: left-to-right is "in"
    assert door.signed((40, 50)) > 0 > door.signed((60, 50))
    assert door.signed((40, 50)) == pytest.approx(10.0)
    assert door.cuts((40, 50), (60, 50))
    assert not door.cuts((40, 150), (60, 150))  # around the end of the line


def test_fractions_resolve_against_the_frame_and_pixels_pass_through():
    assert resolve([[0.5, 0], [0.5, 1]], (1280, 720)) == ((640.0, 0.0), (640.0, 720.0))
    assert resolve([[10, 20], [30, 40]], (1280, 720)) == ((10.0, 20.0), (30.0, 40.0))


@pytest.mark.parametrize("lines, zones, error", [
    ([LineConfig("a", [[0, 0], [0, 0]])], [], r"lines\[0\].points: the two points are the same"),
    ([LineConfig("a", [[0, 0], [1, 1]]), LineConfig("a", [[0, 1], [1, 0]])], [], r"lines\[1\].name: duplicate"),
    ([], [ZoneConfig("z", [[0, 0], [1, 1], [0.5, 0.5]])], r"zones\[0\].points: the polygon has no area"),
])
def test_bad_geometry_is_refused_naming_the_key(lines, zones, error):
    with pytest.raises(ConfigError, match=error):
        check_geometry(CountingConfig(lines=lines, zones=zones))


def test_non_finite_coordinates_are_refused_even_past_the_config_model():
    # The config model refuses inf itself; geometry built another way (the site editor's
    # save) still meets this check.
    line = SimpleNamespace(name="a", points=[[0, 0], [math.inf, 1]])
    with pytest.raises(ConfigError, match=r"lines\[0\].points: expected numbers"):
        check_geometry(SimpleNamespace(lines=[line], zones=[]))


def test_box_iou_by_hand():
    from streamer.core.geometry import iou
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)  # half overlap
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0  # empty boxes: no division by zero
