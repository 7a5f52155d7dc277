"""The sequential fast path: a plain loop over a precompiled plan.

It applies when no cache, callback, timeout, retry, ``on_error="continue"`` or
async node is in effect anywhere in the run and every level is sequential. The loop
then does nothing per node but fetch arguments, call, store and take one timestamp.

Nothing is tracked while it runs: when a node fails, the failing location (levels,
node, map items) is read back from the traceback's frames of ``run_fast`` and
``map_fast``, and per-node records are rebuilt from the timestamps only when the
report is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from time import perf_counter
from types import TracebackType
from typing import Any

from nestflow.core.config import UNSET, EffectiveConfig
from nestflow.core.node import Node
from nestflow.runtime.calls import call_spec
from nestflow.runtime.items import collections, rows
from nestflow.runtime.plan import LevelPlan, Step
from nestflow.runtime.report import NodeRecord
from nestflow.runtime.settings import child_config

Mark = Callable[[float], None]
FastStep = tuple[Any, tuple[str, ...], str, Callable[[dict[str, Any], Mark], None] | None]


@dataclass(frozen=True, slots=True)
class FastLevel:
    """A level compiled for the fast loop."""

    plan: LevelPlan
    steps: tuple[FastStep, ...]


def config_is_fast(config: EffectiveConfig) -> bool:
    """Whether a level with this configuration can run on the fast path."""
    backend = config.backend
    return (
        getattr(backend, "node_execution", None) == "sequential"
        and getattr(backend, "map_execution", None) == "sequential"
        and config.cache is None
        and not config.callbacks
        and config.timeout is None
        and _no_retries(config.retries)
    )


def _no_retries(retries: Any) -> bool:
    return isinstance(retries, int) and retries == 0


def node_is_fast(node: Node, config: EffectiveConfig) -> bool:
    """Whether a function node needs nothing the fast loop does not do."""
    timeout = config.timeout if node.timeout is UNSET else node.timeout
    retries = config.retries if node.retries is UNSET else node.retries
    return (
        not node.is_async and node.on_error == "raise" and timeout is None and _no_retries(retries)
    )


def compile_fast(plan: LevelPlan, config: EffectiveConfig) -> FastLevel | None:
    """The fast form of ``plan``, or ``None`` when any level of it needs the general path."""
    if not config_is_fast(config):
        return None
    steps: list[FastStep] = []
    for step in plan.steps:
        compiled = _compile_step(step, config)
        if compiled is None:
            return None
        steps.append(compiled)
    return FastLevel(plan=plan, steps=tuple(steps))


def _compile_step(step: Step, config: EffectiveConfig) -> FastStep | None:
    if isinstance(step.node, Node):
        if not node_is_fast(step.node, config):
            return None
        spec = call_spec(step.id, step.node)
        if spec.simple:
            return (spec.fn, spec.arg_names, spec.outs[0], None)

        def call(values: dict[str, Any], mark: Mark) -> None:
            args, kwargs = spec.arguments(values)
            spec.publish(spec.fn(*args, **kwargs), values)
            mark(perf_counter())

        return (None, (), "", call)
    assert step.child is not None
    if step.node.on_error != "raise":
        return None
    child = compile_fast(step.child, child_config(step.child.pipeline, config))
    if child is None:
        return None
    return (None, (), "", _nested_call(step, child))


def _nested_call(step: Step, child: FastLevel) -> Callable[[dict[str, Any], Mark], None]:
    bound = child.plan.pipeline.bound_inputs
    pairs = step.child_inputs
    outs = step.child_outputs
    mapped = step.node.map_over  # type: ignore[union-attr]
    if not mapped:

        def nested(values: dict[str, Any], mark: Mark) -> None:
            sub = dict(bound)
            for outer, inner in pairs:
                if outer in values:
                    sub[inner] = values[outer]
            run_fast(child, sub, mark)
            for inner, outer in outs:
                values[outer] = sub[inner]

        return nested
    to_inner = dict(pairs)
    inner_mapped = tuple(to_inner[m] for m in mapped)
    broadcast = tuple((o, i) for o, i in pairs if o not in mapped)
    mode = step.node.map_mode  # type: ignore[union-attr]

    def nested_map(values: dict[str, Any], mark: Mark) -> None:
        total, items = rows(mapped, collections(values, mapped), mode)
        base = dict(bound)
        for outer, inner in broadcast:
            if outer in values:
                base[inner] = values[outer]
        columns = map_fast(child, base, inner_mapped, items, total, [i for i, _ in outs], mark)
        for inner, outer in outs:
            values[outer] = columns[inner]

    return nested_map


def run_fast(level: FastLevel, values: dict[str, Any], mark: Mark) -> None:
    """Run one level: the loop the per-node overhead benchmark measures."""
    clock = perf_counter
    for step in level.steps:
        fn, args, out, special = step
        if special is None:
            values[out] = fn(*[values[a] for a in args])
            mark(clock())
        else:
            special(values, mark)


def map_fast(
    level: FastLevel,
    base: dict[str, Any],
    names: tuple[str, ...],
    items: Iterator[tuple[Any, ...]],
    total: int,
    outputs: list[str],
    mark: Mark,
) -> dict[str, list[Any]]:
    """Run ``level`` once per item; returns one list per output, in item order."""
    mark(total)  # an int among the float timestamps: how many items the records must expect
    columns: dict[str, list[Any]] = {name: [] for name in outputs}
    appends = [(name, columns[name].append) for name in outputs]
    # `index` is read back from this frame by locate() when an item fails.
    for index, row in enumerate(items):  # noqa: B007
        values = base.copy()
        values.update(zip(names, row, strict=True))
        run_fast(level, values, mark)
        for name, append in appends:
            append(values[name])
    return columns


_RUN_CODE = run_fast.__code__
_MAP_CODE = map_fast.__code__


@dataclass(frozen=True, slots=True)
class FastLocation:
    """Where a fast-path failure happened, read from the traceback."""

    levels: tuple[tuple[str, str | None], ...]
    node: str
    item_path: tuple[int, ...]
    item_total: int | None


def locate(tb: TracebackType | None) -> FastLocation | None:
    """Read the failing levels, node and map items from the fast path's frames."""
    found: list[tuple[LevelPlan, str]] = []
    items: list[int] = []
    total: int | None = None
    while tb is not None:
        code, local = tb.tb_frame.f_code, tb.tb_frame.f_locals
        if code is _RUN_CODE and "step" in local:
            level: FastLevel = local["level"]
            found.append((level.plan, level.plan.steps[level.steps.index(local["step"])].id))
        elif code is _MAP_CODE and "index" in local:
            items.append(local["index"])
            total = local["total"]
        tb = tb.tb_next
    if not found:
        return None
    levels: list[tuple[str, str | None]] = [(plan.name, step_id) for plan, step_id in found]
    node = found[-1][1]
    levels[-1] = (levels[-1][0], None)
    return FastLocation(tuple(levels), node, tuple(items), total)


class _Exhausted(Exception):
    """The timestamps ran out: the run stopped here."""


def build_records(
    plan: LevelPlan, marks: list[float], error: Exception | None, backend: str, mapped: bool
) -> list[NodeRecord]:
    """Per-node records rebuilt from the plan and the timestamps of a fast run."""
    records: list[NodeRecord] = []
    reader = _MarkReader(marks, error)
    try:
        if mapped:
            for index in range(reader.count()):
                _level_records(plan, (plan.name,), 0, (index,), reader, records, backend)
        else:
            _level_records(plan, (plan.name,), 0, (), reader, records, backend)
    except _Exhausted:
        pass
    return records


class _MarkReader:
    def __init__(self, marks: list[float], error: Exception | None) -> None:
        self.marks, self.failed, self.position = marks, error is not None, 1
        self.error = None if error is None else f"{type(error).__name__}: {error}"
        self.previous = marks[0]

    def _next(self) -> float:
        if self.position >= len(self.marks):
            raise _Exhausted
        value = self.marks[self.position]
        self.position += 1
        return value

    def count(self) -> int:
        value = self._next()
        if not isinstance(value, int):  # the run failed before this map started
            raise _Exhausted
        return value

    def duration(self) -> tuple[float, bool]:
        end = self._next()
        duration, self.previous = end - self.previous, end
        return duration, self.failed and self.position == len(self.marks)


def _level_records(
    plan: LevelPlan,
    path: tuple[str, ...],
    depth: int,
    item_path: tuple[int, ...],
    reader: _MarkReader,
    records: list[NodeRecord],
    backend: str,
    levels: tuple[str, ...] = (),
) -> None:
    for step in plan.steps:
        if step.child is None:
            duration, failed = reader.duration()
            records.append(
                NodeRecord(
                    path=" > ".join((*path, step.id)),
                    node=step.id,
                    pipeline=plan.name,
                    depth=depth,
                    item_path=item_path,
                    status="failed" if failed else "executed",
                    duration_s=duration,
                    backend=backend,
                    error=reader.error if failed else None,
                    levels=levels,
                )
            )
            if failed:
                raise _Exhausted
            continue
        child_path = (*path, step.child.name)
        if step.node.map_over:  # type: ignore[union-attr]
            for index in range(reader.count()):
                _level_records(
                    step.child, child_path, depth + 1, (*item_path, index), reader, records,
                    backend, (*levels, step.id),
                )  # fmt: skip
        else:
            _level_records(
                step.child, child_path, depth + 1, item_path, reader, records, backend,
                (*levels, step.id),
            )  # fmt: skip
