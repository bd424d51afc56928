"""results.json -> results.md: the header (command, machine), the Goals table, the findings
and one part per registered section, in the registry's order.

A report bug must never lose the measured numbers: every section's renderer and findings
run under ``try`` and a failure becomes one line in the markdown.
"""

from __future__ import annotations

from typing import Any

from bench import registry


def fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table; every cell through :func:`fmt` (None -> "–", False -> **no**)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def flatten(d, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as ``[("a.b.c", value)]``; a list longer than 8 becomes "[n items]"."""
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(d, list) and len(d) > 8:
        out.append((prefix, f"[{len(d)} items]"))
    else:
        out.append((prefix, d))
    return out


def render_md(results: dict) -> str:
    return Report(results).render()


class Report:
    """One results.json rendered; sections absent from it are left out."""

    def __init__(self, results: dict):
        self.r = results

    def render(self) -> str:
        m = self.r.get("meta", {})
        mi = m.get("machine", {})
        out = ["# streamer benchmark results", "",
               "Written by `python run.py bench` (`make bench`); do not edit by hand. "
               "Each timing is the median of the runs stated; the load average before/after each "
               "section shows how busy the machine was (on 2 cores, a load above ~2 means other "
               "work competed for the CPU and every number below is pessimistic).", "",
               f"- command: `{m.get('command', '')}`" + (" (**quick mode: tool check, not a measurement**)" if m.get("quick") else ""),
               f"- when: {m.get('when', '')}, total {m.get('total_s', '–')} s",
               f"- machine: {mi.get('cpu', '?')}, {mi.get('cores', '?')} cores"
               f" ({mi.get('affinity_cores', '?')} usable), {mi.get('mem_gb', '?')} GB RAM, "
               f"Python {mi.get('python', '?')}, OpenCV {mi.get('opencv', '?')} "
               f"({mi.get('opencv_threads', '?')} threads), numpy {mi.get('numpy', '?')}",
               f"- platform: {mi.get('platform', '?')}", ""]
        goals = self.goals()
        if goals:
            out += ["## Goals", "", table(["goal", "measured", "target", "met"], goals), ""]
        found = self.findings()
        if found:
            out += ["## Findings (computed from the numbers below)", ""] + [f"- {f}" for f in found] + [""]
        for s in registry.sections():
            sec = self.r.get("sections", {}).get(s.name)
            if not sec:
                continue
            out += [f"## {s.title}", "",
                    f"_section `{s.name}`: {sec.get('when', '')}, {sec.get('seconds', '?')} s, load "
                    f"{sec.get('loadavg_before', '?')} → {sec.get('loadavg_after', '?')}"
                    + (", quick" if sec.get("quick") else "") + "_", ""]
            if sec.get("status") not in ("ok", None):
                d = sec.get("data", {})
                out += [f"**{sec['status']}**: " + str(d.get("error") or d.get("hook") or d.get("reason")
                                                       or d.get("stderr") or d), ""]
                if not s.render_on_error:
                    continue
            elif isinstance(sec.get("data"), dict) and sec["data"].get("hook"):
                out += [f"_note: {sec['data']['hook']}_", ""]
            try:
                out += s.render(sec.get("data", {})) + [""]
            except Exception as e:  # a report bug must never lose the JSON
                out += [f"(cannot render: {type(e).__name__}: {e})", ""]
        return "\n".join(out).rstrip() + "\n"

    def findings(self) -> list[str]:
        """Each section's conclusions, computed from the numbers (not hand-written), so a
        re-run on another machine keeps the text true. A section sees every successful
        section's data (a finding may weigh speed against accuracy)."""
        data = {k: (v.get("data") or {}) for k, v in self.r.get("sections", {}).items()
                if v.get("status") == "ok"}
        out = []
        for s in registry.sections():
            if s.findings is None or s.name not in data:
                continue
            try:
                out += s.findings(data)
            except Exception as e:  # never lose the report over a summary line
                out.append(f"(cannot summarise {s.name}: {type(e).__name__}: {e})")
        return out

    def goals(self) -> list:
        labels = {}
        for s in registry.sections():
            labels.update(s.goal_labels)
        rows = []
        for sec in self.r.get("sections", {}).values():
            if sec.get("quick"):  # a quick run checks the tool; its numbers meet no goal
                continue
            for k, g in (sec.get("data") or {}).get("goals", {}).items():
                label, cmp = labels.get(k, (k, ">="))
                rows.append([label, g.get("value"), f"{cmp} {g.get('goal')}", g.get("met")])
        return rows
