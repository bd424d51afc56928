"""The bench's section registry: a module registers a section and the CLI, the report and
``--only`` pick it up; a clash of names or a module that cannot be imported is reported."""

from __future__ import annotations

import sys

import pytest

import bench
from bench import registry, report


@pytest.fixture
def scratch_section():
    """Register sections for one test and forget them after."""
    registry.load()  # the built-in sections first: a module registers only when first imported
    before = dict(registry._SECTIONS)
    yield
    registry._SECTIONS.clear()
    registry._SECTIONS.update(before)


def test_a_registered_section_is_listed_rendered_and_summarised(scratch_section):
    def render(d):
        return [report.table(["measure", "value"], [["widgets", d.get("widgets")]])]

    @registry.section("widgets", "Widgets per second", render, order=5,
                      findings=lambda data: [f"{data['widgets']['widgets']} widgets"],
                      goal_labels={"widgets_min": ("widgets per second", ">=")})
    def measure(ctx):
        return {"widgets": 7}

    names = registry.names()
    assert names[0] == "widgets" and "fps" in names  # order 5 sorts before the built-in 10
    results = {"meta": {"command": "c", "machine": {}}, "sections": {"widgets": {
        "status": "ok", "quick": False, "data": {"widgets": 7, "goals": {
            "widgets_min": {"value": 7, "goal": 5, "met": True}}}}}}
    md = report.render_md(results)
    assert "## Widgets per second" in md and "| widgets | 7 |" in md
    assert "| widgets per second | 7 | >= 5 | yes |" in md
    assert "- 7 widgets" in md


def test_two_modules_claiming_one_name_is_an_error(scratch_section):
    registry.section("dup", "A", lambda d: [])(lambda ctx: {})

    def other(ctx):
        return {}
    with pytest.raises(RuntimeError, match="registered twice"):
        registry.section("dup", "B", lambda d: [])(other)


def test_a_module_that_cannot_be_imported_is_named_and_the_others_still_load(tmp_path, monkeypatch):
    (tmp_path / "broken_section.py").write_text("raise RuntimeError('half-written module')\n")
    monkeypatch.setattr(bench, "__path__", list(bench.__path__) + [str(tmp_path)])
    try:
        names = registry.names()
        assert "fps" in names and "accuracy" in names
        assert registry.LOAD_ERRORS["bench.broken_section"] == "RuntimeError: half-written module"
    finally:
        registry.LOAD_ERRORS.pop("bench.broken_section", None)
        sys.modules.pop("bench.broken_section", None)
