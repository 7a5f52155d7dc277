"""Observability figures: a chain and a big map with ProgressCallback, then TelemetryCallback."""

from __future__ import annotations

import io
import tempfile
from time import perf_counter
from typing import Any

from benchmarks.core import Row, nodes_of
from benchmarks.shapes import CHAIN, chain, trio
from benchmarks.timing import best
from nestflow import DiskCache, Pipeline, ProgressCallback, TelemetryCallback

MAP_ITEMS = 100_000
CACHED_ITEMS = 10_000


def _progress() -> Any:
    from rich.console import Console

    # An interactive console, as in a terminal: the live display redraws from its own thread.
    console = Console(file=io.StringIO(), width=120, force_terminal=True)
    return ProgressCallback(console=console)


def _telemetry() -> Any:
    from opentelemetry.sdk.trace import TracerProvider

    return TelemetryCallback(tracer_provider=TracerProvider())  # spans made, none exported


def rows_for(label: str, make: Any, targets: tuple[str, str]) -> list[Row]:
    """µs per node on a 100-node chain and items/s on a 3-node map, with one callback."""
    funcs, outs = chain()
    pipeline = Pipeline(nodes_of(funcs, outs), name="chain", callbacks=[make()])
    per_node = Row(f"chain of 100 with {label}: per node", "µs", 0.0, 0.0, targets[0])
    per_node.nestflow = best(lambda: pipeline.run(v0=0), 5, repeat=3) / CHAIN * 1e6
    funcs, outs = trio()
    mapped = Pipeline(nodes_of(funcs, outs), name="trio", callbacks=[make()])
    xs = list(range(MAP_ITEMS))
    started = perf_counter()
    mapped.map(x=xs, map_over="x")
    items = Row(f"3-node map over 100,000 with {label}: items/s", "items/s", 0.0, 0.0, targets[1])
    items.nestflow = MAP_ITEMS / (perf_counter() - started)
    return [per_node, items]


def cached_rows() -> list[Row]:
    """Progress on a cached pipeline (the usual setup): a 10,000-item map, cold then warm."""
    funcs, outs = trio()
    folder = tempfile.mkdtemp(prefix="nestflow-bench-")
    mapped = Pipeline(
        nodes_of(funcs, outs), name="trio", cache=DiskCache(folder), callbacks=[_progress()]
    )
    xs = list(range(CACHED_ITEMS))
    found = []
    for label in ("into an empty DiskCache", "again, warm"):
        started = perf_counter()
        mapped.map(x=xs, map_over="x")
        row = Row(f"  ProgressCallback and DiskCache, {label}: items/s", "items/s", 0.0, 0.0, "")
        row.nestflow = CACHED_ITEMS / (perf_counter() - started)
        found.append(row)
    return found


def rows() -> list[Row]:
    """Every observability figure, in one run."""
    progress = rows_for("ProgressCallback", _progress, ("<= 10", ">= 100,000"))
    telemetry = rows_for("TelemetryCallback", _telemetry, ("-", "-"))
    return [*progress, *cached_rows(), *telemetry]


if __name__ == "__main__":
    for row in rows():
        print(row)
