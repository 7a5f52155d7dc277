"""``make bench``: every benchmark in one run, as a table of figures and ratios."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from benchmarks.core import Row


def _fmt(value: float, unit: str) -> str:
    if unit == "items/s":
        return f"{value:,.0f}"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def render(rows: list[Row]) -> str:
    """The figures as a plain-text table."""
    peers = sorted({p for row in rows for p in row.peers})
    header = ["benchmark", "unit", "nestflow", "plain", "ratio", "target", *peers]
    table = [header]
    for row in rows:
        ratio = ""
        if row.baseline:
            ratio = f"{row.nestflow / row.baseline:.2f}x"
        cells = [row.name, row.unit, _fmt(row.nestflow, row.unit)]
        cells += [_fmt(row.baseline, row.unit) if row.baseline else "-", ratio, row.target]
        cells += [_fmt(row.peers[p], row.unit) if p in row.peers else "-" for p in peers]
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


GROUPS = ("core", "backends", "caching", "cold", "observability", "spec", "chain", "service")
"""Each group runs in a fresh interpreter: no heap, threads or clusters left by another."""


def group_rows(group: str) -> list[Row]:
    """The rows of one benchmark group, measured in a new process."""
    code = (
        "import json, dataclasses, importlib\n"
        f"rows = importlib.import_module('benchmarks.{group}').rows()\n"
        "print(json.dumps([dataclasses.asdict(r) for r in rows]))\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark group {group!r} failed:\n{done.stderr}")
    return [Row(**row) for row in json.loads(done.stdout.strip().splitlines()[-1])]


def main() -> None:
    """Run every benchmark once and print the tables."""
    print(f"nestflow benchmarks · Python {platform.python_version()} · {os.cpu_count()} cores")
    print("ratio = nestflow / plain Python (per-node, per-run: lower is better; items/s: higher)")
    for group in GROUPS:
        print()
        print(render(group_rows(group)))


if __name__ == "__main__":
    main()
