"""The section registry: what ``run.py bench`` can measure, and the context a section runs in.

A section is one measurement with its own results table. A module of ``bench/`` adds one by
calling :func:`section` at import time (see the package docstring for an example);
:func:`load` imports every module of the package, so a new module needs no edit anywhere
else. Sections run and render in ``order`` (ties by name); the built-in ones use 10..90.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Optional

# Modules of the package that are not sections and must not be imported by ``load`` (the
# CLI imports the registry, so loading it again would be circular and pointless).
_NOT_SECTIONS = {"cli", "registry"}


@dataclass(frozen=True)
class Section:
    """One registered measurement.

    ``measure(ctx) -> dict``: the numbers (JSON-serialisable). A ``"status"`` key other than
    ``"ok"`` (``missing``, ``skipped``) is taken out and recorded as the section's status;
    a ``"goals"`` key ``{name: {"value", "goal", "met"}}`` lands in the report's Goals table.
    ``render(data) -> list[str]``: markdown lines for the report (tables via
    ``bench.report.table``). ``findings(data_by_section) -> list[str]``: optional
    conclusions computed from the numbers of every section that succeeded.
    ``goal_labels``: ``{goal name: (label, comparator)}`` for the Goals table.
    ``render_on_error``: render ``data`` even when the status is not ok (a section that
    records another tool's failure, e.g. its stderr).
    """

    name: str
    title: str
    measure: Callable[["Context"], dict]
    render: Callable[[dict], list]
    order: int = 100
    findings: Optional[Callable[[dict], list]] = None
    goal_labels: dict = field(default_factory=dict)
    render_on_error: bool = False


_SECTIONS: dict[str, Section] = {}
# Modules that failed to import (module -> "ExcType: message"): their sections are missing, the
# others still run; ``run.py bench`` names them and exits 1.
LOAD_ERRORS: dict[str, str] = {}


def section(name: str, title: str, render: Callable[[dict], list], order: int = 100,
            findings: Optional[Callable[[dict], list]] = None, goal_labels: Optional[dict] = None,
            render_on_error: bool = False):
    """Decorator registering ``measure`` as section ``name``. A name registered twice by two
    different functions is a programming error (two modules claiming one section)."""
    def register(measure: Callable[["Context"], dict]):
        s = Section(name, title, measure, render, order, findings, dict(goal_labels or {}),
                    render_on_error)
        old = _SECTIONS.get(name)
        if old is not None and old.measure.__qualname__ != measure.__qualname__:
            raise RuntimeError(f"bench section {name!r} registered twice "
                               f"({old.measure.__module__} and {measure.__module__})")
        _SECTIONS[name] = s
        return measure
    return register


def load() -> None:
    """Import every module of ``bench/`` so that each registers its sections. A module that
    cannot be imported is recorded in ``LOAD_ERRORS`` instead of stopping every section."""
    pkg = importlib.import_module("bench")
    for m in pkgutil.iter_modules(pkg.__path__):
        name = f"bench.{m.name}"
        if m.name in _NOT_SECTIONS or m.name.startswith("_") or name in LOAD_ERRORS:
            continue
        try:
            importlib.import_module(name)
        except Exception as e:  # a broken module must not hide the others' numbers
            LOAD_ERRORS[name] = f"{type(e).__name__}: {e}"


def sections() -> list[Section]:
    load()
    return sorted(_SECTIONS.values(), key=lambda s: (s.order, s.name))


def names() -> tuple[str, ...]:
    return tuple(s.name for s in sections())


def titles() -> dict[str, str]:
    return {s.name: s.title for s in sections()}


def get(name: str) -> Section:
    load()
    return _SECTIONS[name]


class Context:
    """What every section's ``measure`` gets: the parsed options and shared scratch.

    ``runs``: runs per timing (report the median); ``max_frames``: frames per clip run (0 =
    the whole clip; 40 in ``--quick``); ``cache``: a folder for scaled clips and scratch that
    outlives the run; ``clips``: the scaled copies of the sample clip (made on first use).
    """

    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.quick = bool(a.quick)
        self.runs = a.runs or (1 if a.quick else 3)
        self.out = Path(a.out)
        self.cache = Path(a.cache)
        self.max_frames = 40 if self.quick else 0

    @cached_property
    def clips(self):
        from bench.clips import Clips
        return Clips(self.cache / "clips", self.quick)

    def stream_config_args(self) -> list[str]:
        """``--config`` for child ``run.py stream`` processes: the default config, less
        attributes while streamer/core/attributes.py does not exist (noted in the results)."""
        from bench.common import has_attributes
        if has_attributes():
            return []
        p = self.cache / "bench-no-attributes.yaml"
        p.write_text("attributes:\n  enabled: false\n")
        return ["--config", str(p)]
