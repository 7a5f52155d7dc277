"""``make bench``: every benchmark in one run, as a table of figures and ratios."""

from __future__ import annotations

import os
import platform

from benchmarks import backends, caching, core
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


def main() -> None:
    """Run every benchmark once and print the table."""
    print(f"nestflow benchmarks · Python {platform.python_version()} · {os.cpu_count()} cores")
    print("ratio = nestflow / plain Python (per-node, per-run: lower is better; items/s: higher)")
    print()
    print(render(core.rows()))
    print()
    print(render(backends.rows()))
    print()
    print(render(caching.rows()))


if __name__ == "__main__":
    main()
