"""Per-node records, built from the rows a run keeps while it runs (one place makes them).

While a run goes, the steps append compact rows to ``report.pending``:

* ``(level, node id, status, duration, attempts, signature, error)`` for one execution;
* ``(level, chain, steps, marks)`` for a stretch of plain calls run by the synchronous
  driver's loop: ``marks[0]`` is when it began and ``marks[i + 1]`` when step ``i`` ended;
  the calls belong to the level reached from ``level`` through the nested steps of
  ``chain`` (usually none), made here, when read;
* ``(level, total, steps, marks, "items")`` for the same stretch run for every item of a
  map at ``level``: the marks of item ``k`` follow those of item ``k - 1``.

They become ``NodeRecord`` objects only when the report is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nestflow.runtime.report import NodeRecord
from nestflow.runtime.step import level_below


def record(
    level: Any,
    node_id: str,
    status: Any,
    duration: float,
    attempts: int = 1,
    sig: str | None = None,
    error: str | None = None,
    item_path: tuple[int, ...] | None = None,
) -> NodeRecord:
    """The record of one execution of ``node_id`` at ``level``."""
    compiled = level.compiled
    return NodeRecord(
        path=" > ".join((*level.hierarchy, node_id)),
        node=node_id,
        pipeline=level.plan.name,
        depth=level.depth,
        item_path=level.item_path if item_path is None else item_path,
        status=status,
        duration_s=duration,
        attempts=attempts,
        signature=sig,
        backend=compiled.backend_label,
        cache=compiled.cache_label,
        error=error,
        levels=level.entered,
    )


def records_of(rows: list[Any]) -> Iterator[NodeRecord]:
    """The records of ``rows``, in order."""
    for row in rows:
        if len(row) == 7:
            level, node_id, status, duration, attempts, sig, error = row
            yield record(level, node_id, status, duration, attempts, sig, error)
            continue
        level, steps, marks = row[0], row[2], row[3]
        if len(row) == 4:
            if row[1]:
                level = level_below(level, row[1])
            yield from _stretch(level, steps, marks, level.item_path)
            continue
        width = len(steps) + 1
        for item, start in enumerate(range(0, len(marks), width)):
            chunk = marks[start : start + width]
            yield from _stretch(level, steps, chunk, (*level.item_path, item))


def _stretch(
    level: Any, steps: Any, marks: list[float], item_path: tuple[int, ...]
) -> Iterator[NodeRecord]:
    previous = marks[0]
    for step, end in zip(steps, marks[1:], strict=False):
        yield record(level, step.id, "executed", end - previous, item_path=item_path)
        previous = end
