"""Sections measured by other engineers' scripts (``batch``: scripts/bench_batch.py, ``web``:
scripts/bench_web.py), and the runner they share with ``accuracy``'s reference comparison.

The contract asked of such a script: ``--json OUT`` (write the numbers) and ``--quick`` (a
smoke-sized run). Options a script does not list in its ``--help`` are not passed; without
``--json`` its markdown output is kept and its tables parsed, and without ``--quick`` the
section's ``quick_fallback`` options shrink the run instead.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import registry
from bench.common import ROOT, say
from bench.report import flatten, table


def parse_md_tables(text: str) -> list[list[dict]]:
    """Markdown tables in ``text`` as lists of {header: cell} rows."""
    tables, lines = [], (text or "").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("| ---"):
            head = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(head, cells)))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def last_json(text: str):
    """The last line of ``text`` that parses as a JSON object (None if none does)."""
    for line in reversed((text or "").strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def run_script(ctx: registry.Context, name: str, extra: list[str], quick_fallback: tuple = ()) -> dict:
    """Run ``scripts/<name>`` and keep its numbers (``{"status", "command", "result" |
    "markdown" + "tables"}``); a missing script is status ``missing`` with the hook to add."""
    path = ROOT / "scripts" / name
    if not path.is_file():
        return {"status": "missing",
                "hook": f"scripts/{name} not found: this section runs it as "
                        f"`python scripts/{name} --json OUT{' --quick' if ctx.quick else ''}` "
                        "and reads OUT"}
    h = subprocess.run([sys.executable, str(path), "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    has_json, has_quick = "--json" in h.stdout, "--quick" in h.stdout
    with tempfile.TemporaryDirectory(dir=ctx.cache) as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, str(path)] + (["--json", str(out)] if has_json else [])
        if ctx.quick:
            cmd += ["--quick"] if has_quick else list(quick_fallback)
        cmd += extra
        shown = "python " + " ".join(shlex.quote(c) for c in cmd[1:]).replace(
            str(out), "OUT").replace(str(ROOT) + "/", "")
        say("running " + shown)
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            return {"status": "error", "command": shown, "exit": r.returncode,
                    "stderr": (r.stderr or r.stdout)[-2000:]}
        data = None
        if has_json and out.is_file():
            try:
                data = json.loads(out.read_text())
            except ValueError:
                data = None
        data = data if data is not None else last_json(r.stdout)
        res = {"status": "ok", "command": shown}
        if data is not None:
            res["result"] = data
        else:
            res["markdown"] = r.stdout.strip()
            res["tables"] = parse_md_tables(r.stdout)
        if not has_json:
            res["hook"] = f"scripts/{name} has no --json OUT option: its markdown is kept as printed"
        return res


def render_script_result(d) -> list:
    """A script's numbers as a key/value table (or its markdown as printed)."""
    if "result" not in d:
        if d.get("markdown"):
            return [f"`{d.get('command', '')}`", ""] + [
                line for line in d["markdown"].splitlines() if not line.startswith("#")]
        return []
    return [f"`{d.get('command', '')}`", "",
            table(["key", "value"], [[k, v] for k, v in flatten(d["result"])])]


@registry.section("batch", "Batch images/s (scripts/bench_batch.py)", render_script_result,
                  order=60, render_on_error=True)
def batch(ctx: registry.Context) -> dict:
    # Full mode: 100 images x (1, 2 workers) x (annotated or not), once each, keeps this
    # section near a minute; the script's own default (150 images, best of 2) is for
    # stand-alone use.
    return run_script(ctx, "bench_batch.py", [] if ctx.quick else ["--images", "100", "--repeat", "1"],
                      quick_fallback=("--images", "12", "--repeat", "1", "--workers", "1",
                                      "--annotate", "no"))


def render_web(d) -> list:
    res = d.get("result")
    if not isinstance(res, dict) or "latency_annotated" not in res:
        return render_script_result(d)
    la, lj = res["latency_annotated"], res.get("latency_json_only", {})
    ta, tj = res.get("throughput_annotated", {}), res.get("throughput_json_only", {})
    b = la.get("server_ms_p50", {})
    return [f"`{d.get('command') or res.get('command', '')}` — image: {res.get('image')}", "",
            table(["measure", "annotated (default)", "`?annotate=0`"], [
                ["p50 latency, 1 client (ms)", la.get("p50_ms"), lj.get("p50_ms")],
                ["p95 latency, 1 client (ms)", la.get("p95_ms"), lj.get("p95_ms")],
                [f"requests/s, {ta.get('clients')} clients", ta.get("rps"), tj.get("rps")],
                ["p50 / p95 under load (ms)", f"{ta.get('p50_ms')} / {ta.get('p95_ms')}",
                 f"{tj.get('p50_ms')} / {tj.get('p95_ms')}"],
                ["errors", la.get("errors", 0) + ta.get("errors", 0), lj.get("errors", 0) + tj.get("errors", 0)],
            ]), "",
            "Server-side p50 (ms): " + ", ".join(f"{k} {v}" for k, v in b.items())]


@registry.section("web", "/analyze latency (scripts/bench_web.py)", render_web, order=70,
                  render_on_error=True)
def web(ctx: registry.Context) -> dict:
    return run_script(ctx, "bench_web.py", [], quick_fallback=("-n", "20", "--seconds", "2"))
