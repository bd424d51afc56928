"""Benchmarks: every performance and accuracy number of the project, measured on this
machine in one run (``run.py bench``, ``make bench``), written to ``bench/results.md``
(tables) and ``bench/results.json``. Measured figures live here, never in tests.

Modules (one job each):

================= ===========================================================================
cli.py            the subcommand: ``add_parser`` / ``run_cli`` (``--only``, ``--skip``,
                  ``--quick``, ``--render``); runs sections, writes results after each
registry.py       the section registry (``section`` decorator, ``load``, ``names``) and the
                  ``Context`` a section runs in (options, runs, cache, scaled clips)
report.py         results.json -> results.md (header, Goals, Findings, one part per section);
                  ``table`` / ``fmt`` / ``flatten`` for section renderers
common.py         paths, goals, ``median`` / ``pct``, machine info, ``say``, ``load_script``
clips.py          H.264 copies of the sample clip at 360p / 720p / 1080p (ffmpeg, cached)
ways.py           decode-only, the seed's way, ``run_pipeline`` (the product, in-process)
speed.py          sections ``fps``, ``latency``, ``attrcalls``
streams.py        ``run_streams`` (``run.py stream`` processes behind a start barrier);
                  section ``density``
startup.py        ``startup_probe``, ``import_costs``; section ``resources``
external.py       ``run_script`` (other scripts' ``--json OUT``); sections ``batch``, ``web``
accuracy.py       detection AP50 / recall, gender / age through ``Analyzer``; section ``accuracy``
frame_profile.py  section ``profile`` (scripts/profile_frame.py and the detector variants)
================= ===========================================================================

Adding a section: create ``bench/<name>.py`` and register a measure function and its
renderer at import time; ``registry.load`` imports every module of this package, so nothing
else needs editing (``--only <name>`` and the report pick it up)::

    from bench import registry
    from bench.report import table

    def render(d: dict) -> list[str]:            # markdown lines for results.md
        return [table(["measure", "value"], [["x", d.get("x")]])]

    @registry.section("mysection", "Title of its part of results.md", render, order=100,
                      findings=None,             # optional: (data of every ok section) -> [str]
                      goal_labels={"x_goal": ("what x is", ">=")})
    def measure(ctx: registry.Context) -> dict:  # JSON-serialisable numbers
        return {"x": 1.0, "goals": {"x_goal": {"value": 1.0, "goal": 0.5, "met": True}}}

``order`` places it among the built-in sections (10 fps ... 90 profile); a ``"status"`` key
(``"missing"``, ``"skipped"``) is recorded as the section's status; an exception makes the
section ``error`` without losing the others. A name registered twice is an error; a module
that cannot be imported is named on stderr, its sections are left out and the run exits 1.

Every timing is the median of ``--runs`` runs (1 with ``--quick``). Each section records the
load average before and after it: a loaded machine makes every number here pessimistic.

``streamer.cli`` imports ``bench.cli`` only for ``run.py bench`` (and ``--help``). Module
tops here import the standard library and ``bench`` only; numpy, cv2 and ``streamer`` are
imported inside the functions that need them, so listing the sections stays cheap.
"""
