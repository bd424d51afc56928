"""``run.py bench``: the subcommand (``add_parser``, ``run_cli``, imported by streamer/cli.py).

Runs the chosen registered sections in order and writes ``results.json`` and ``results.md``
after every section, so a long run that is stopped keeps what it measured. ``--only``
merges into an existing results.json, so sections can be re-run one at a time.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from bench import registry
from bench.common import ROOT, has_attributes, loadavg, machine_info, now, quiet_logs, say
from bench.report import render_md


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="measure speed, latency, density, memory and accuracy "
                                            "on this machine (writes bench/results.md and .json)")
    p.add_argument("--quick", action="store_true",
                   help="tiny runs (under a minute): checks the tool, not the machine")
    p.add_argument("--only", help=f"comma-separated sections: {', '.join(registry.names())}")
    p.add_argument("--skip", help="comma-separated sections to leave out")
    p.add_argument("--runs", type=int, help="runs per timing, median reported (default 3; 1 with --quick)")
    p.add_argument("--out", default=str(ROOT / "bench"), help="folder for results.md / results.json")
    p.add_argument("--cache", default=str(ROOT / "out" / "bench"), help="folder for scaled clips and scratch")
    p.add_argument("--fresh", action="store_true", help="start a new results.json instead of merging")
    p.add_argument("--render", action="store_true",
                   help="only rewrite results.md from results.json (no measurement)")
    p.add_argument("--density-seconds", type=float, help="length of each density trial")
    p.add_argument("--density-max", type=int, help="most streams tried")


def chosen_sections(a: argparse.Namespace) -> list[str]:
    known = registry.names()
    chosen = [s.strip() for s in a.only.split(",") if s.strip()] if a.only else list(known)
    skip = [s.strip() for s in a.skip.split(",") if s.strip()] if a.skip else []
    bad = [s for s in chosen + skip if s not in known]
    if bad:
        from streamer.errors import StreamerError
        raise StreamerError(f"unknown bench section(s) {', '.join(bad)} (known: {', '.join(known)})")
    return [s for s in chosen if s not in skip]


def run_cli(a: argparse.Namespace) -> int:
    sections = chosen_sections(a)
    for mod, err in registry.LOAD_ERRORS.items():
        say(f"cannot import {mod} (its sections are left out): {err}")
    quiet_logs()
    if a.runs is not None and a.runs < 1:
        from streamer.errors import StreamerError
        raise StreamerError("--runs must be >= 1")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    Path(a.cache).mkdir(parents=True, exist_ok=True)
    jpath, mpath = out / "results.json", out / "results.md"
    results: dict = {}
    if jpath.is_file() and not a.fresh:
        try:
            results = json.loads(jpath.read_text())
        except ValueError:
            results = {}
    results.setdefault("sections", {})
    if a.render:
        if not results.get("meta"):
            from streamer.errors import StreamerError
            raise StreamerError(f"--render needs an existing {jpath}")
        mpath.write_text(render_md(results))
        print(f"bench: wrote {mpath} from {jpath}")
        return 0
    argv = " ".join(shlex.quote(x) for x in sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "bench"
    results["meta"] = {"machine": machine_info(), "command": f"python run.py {argv}",
                       "when": now(), "quick": bool(a.quick), "runs": a.runs or (1 if a.quick else 3),
                       "attributes_module": has_attributes()}
    ctx = registry.Context(a)
    t_all = time.monotonic()
    failed = []
    for name in sections:
        say(f"── {name}")
        la0, t0 = loadavg(), time.monotonic()
        try:
            data = registry.get(name).measure(ctx)
            status = data.pop("status", "ok") if isinstance(data, dict) else "ok"
        except Exception as e:  # one broken section must not lose the others' numbers
            import traceback
            traceback.print_exc()
            data, status = {"error": f"{type(e).__name__}: {e}"}, "error"
            failed.append(name)
        results["sections"][name] = {
            "status": status, "data": data, "seconds": round(time.monotonic() - t0, 1),
            "loadavg_before": la0, "loadavg_after": loadavg(), "when": now(),
            "quick": bool(a.quick), "command": results["meta"]["command"]}
        # Write after every section: a long run that is stopped keeps what it measured.
        jpath.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
        mpath.write_text(render_md(results))
    results["meta"]["total_s"] = round(time.monotonic() - t_all, 1)
    jpath.write_text(json.dumps(results, indent=2) + "\n")
    mpath.write_text(render_md(results))
    failed += [f"{m} (import)" for m in registry.LOAD_ERRORS]
    print(f"bench: wrote {mpath} and {jpath} in {results['meta']['total_s']} s"
          + (f"; failed sections: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
