"""Summarise `mutmut results --all true` output: killed/total per module (scripts/mutate.sh).

    mutate_report.py MODULE RESULTS.txt     one line: module, killed/total, %, survivors
    mutate_report.py --md RESULTS.txt...    a markdown table plus the survivors by function

"Total" counts every mutant mutmut made; "no tests" (code no selected test runs) counts as not
killed, so the figure is not flattered by untested code.
"""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path

LINE = re.compile(r"^\s*(\S+?)__mutmut_\d+: (.+)$")


def parse(path: Path) -> tuple[collections.Counter, dict[str, collections.Counter]]:
    status: collections.Counter = collections.Counter()
    survivors: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in path.read_text().splitlines():
        m = LINE.match(line)
        if not m:
            continue
        name, st = m.group(1), m.group(2).strip()
        status[st] += 1
        if st != "killed":
            func = name.split(".")[-1].replace("xǁ", "").replace("ǁ", ".")
            survivors[func][st] += 1
    return status, survivors


def line(module: str, status: collections.Counter) -> str:
    total = sum(status.values())
    killed = status.get("killed", 0)
    pct = 100.0 * killed / total if total else 0.0
    rest = ", ".join(f"{v} {k}" for k, v in sorted(status.items()) if k != "killed")
    return f"{module}: {killed}/{total} killed ({pct:.1f} %){'; ' + rest if rest else ''}"


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--md":
        print("| module | killed / total | killed % | not killed |\n| --- | --- | --- | --- |")
        detail = []
        for p in map(Path, argv[1:]):
            module = p.parent.name
            status, surv = parse(p)
            total = sum(status.values())
            killed = status.get("killed", 0)
            rest = ", ".join(f"{v} {k}" for k, v in sorted(status.items()) if k != "killed")
            print(f"| {module} | {killed} / {total} | {100.0 * killed / max(total, 1):.1f} | {rest} |")
            detail.append(f"\n**{module}** survivors by function: " + ", ".join(
                f"`{f}` {sum(c.values())}" for f, c in sorted(surv.items(), key=lambda x: -sum(x[1].values()))))
        print("\n".join(detail))
        return 0
    module, path = argv
    print(line(module, parse(Path(path))[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
