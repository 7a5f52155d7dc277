"""The observed loop: runs and maps of one flat sequential level, with callbacks.

It applies when the only thing a run needs beyond the fast path is callbacks: one level
of synchronous function nodes, sequential in both dimensions, with no cache, timeout,
retry or ``on_error="continue"``, and no callback that carries trace context into node
calls. Events, their order and arguments, records and failures are those of the general
runner (``runner.run_pipeline``, ``map_pipeline``, ``run_item`` and
``nodes.run_function``), made by a plain loop instead of coroutines on an event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter
from typing import Any

from nestflow.callbacks.dispatch import implements
from nestflow.callbacks.events import CallbackContext
from nestflow.core.config import EffectiveConfig
from nestflow.core.node import Node
from nestflow.runtime.calls import CallSpec
from nestflow.runtime.context import Level
from nestflow.runtime.fast import node_is_fast
from nestflow.runtime.nodes import fail, spec_of
from nestflow.runtime.plan import LevelPlan, Step

_Compiled = list[tuple[Step, CallSpec, str, tuple[str, ...] | None]]
"""Per step: the step, its call spec, its record path, and its argument names when the
call is simple (positional inputs without defaults, one output)."""


def qualifies(plan: LevelPlan, config: EffectiveConfig) -> bool:
    """Whether a run of ``plan`` at ``config`` can take the observed loop."""
    backend = config.backend
    return (
        bool(config.callbacks)
        and getattr(backend, "node_execution", None) == "sequential"
        and getattr(backend, "map_execution", None) == "sequential"
        and config.cache is None
        and config.timeout is None
        and isinstance(config.retries, int)
        and config.retries == 0
        and not implements(config.callbacks, "carrier")
        and all(
            step.child is None and isinstance(step.node, Node) and node_is_fast(step.node, config)
            for step in plan.steps
        )
    )


def _compiled(plan: LevelPlan) -> _Compiled:
    found: _Compiled | None = plan.memo.get("observed")
    if found is None:
        found = plan.memo["observed"] = []
        for step in plan.steps:
            spec = spec_of(plan, step)
            simple = spec.arg_names if spec.simple else None
            found.append((step, spec, " > ".join((plan.name, step.id)), simple))
    return found


def run_level(level: Level, values: dict[str, Any]) -> None:
    """A plain run: the level's steps between pipeline start and end events."""
    name = level.plan.name
    level.emit("on_pipeline_start", name, dict(values))
    started = perf_counter()
    error: BaseException | None = None
    try:
        run_steps(level, values)
    except BaseException as exc:
        error = exc
        raise
    finally:
        outputs = {o: values[o] for o in level.plan.outputs if o in values}
        level.emit("on_pipeline_end", name, outputs, perf_counter() - started, error=error)


class _Hooks:
    """The node and item handlers of a level's callbacks, looked up once per run or map."""

    __slots__ = ("backend", "call", "item_end", "item_start", "node_end", "node_start")

    def __init__(self, level: Level) -> None:
        run, callbacks = level.run, level.config.callbacks
        handlers = run.dispatcher.handlers
        self.node_start = handlers(callbacks, "on_node_start")
        self.node_end = handlers(callbacks, "on_node_end")
        self.item_start = handlers(callbacks, "on_map_item_start")
        self.item_end = handlers(callbacks, "on_map_item_end")
        self.backend = run.labels(level.config)[0]
        # Every event of an observed run comes from the thread running it: no lock needed.
        self.call = run.dispatcher.call_alone


def map_level(
    level: Level, base: dict[str, Any], names: tuple[str, ...], items: Any, total: int
) -> list[dict[str, Any]]:
    """Every item in order, between map start and end events; fails at the first failure."""
    map_id = level.plan.name
    level.emit("on_map_start", map_id, total)
    hooks = _Hooks(level)
    call, starts, ends = hooks.call, hooks.item_start, hooks.item_end
    clock = perf_counter
    started = clock()
    outputs: list[dict[str, Any]] = []
    try:
        for index, row in enumerate(items):
            item_level = level.item(index, total)
            item = dict(zip(names, row, strict=True))
            values = {**base, **item}
            if starts:
                ctx = CallbackContext(item_level, None, None, 1)
                call(starts, "on_map_item_start", (map_id, index, item, ctx))
            begun = clock()
            error: BaseException | None = None
            try:
                run_steps(item_level, values, hooks)
            except BaseException as exc:
                error = exc
                raise
            finally:
                if ends:
                    ctx = CallbackContext(item_level, None, error, 1)
                    call(ends, "on_map_item_end", (map_id, index, clock() - begun, ctx))
            outputs.append(values)
    finally:
        level.emit("on_map_end", map_id, clock() - started)
    return outputs


def run_steps(level: Level, values: dict[str, Any], hooks: _Hooks | None = None) -> None:
    """Each step in order: node start event, call, record, node end event."""
    hooks = hooks or _Hooks(level)
    call, starts, ends, backend = hooks.call, hooks.node_start, hooks.node_end, hooks.backend
    run = level.run
    keep = run.report._rows.append  # made into records when read
    clock = perf_counter
    name, item_path = level.plan.name, level.item_path
    for step, spec, path, simple in _compiled(level.plan):
        node_id = step.id
        if simple is None:
            args, kwargs = spec.arguments(values)
        else:
            args, kwargs = [values[a] for a in simple], {}
        inputs = spec.inputs(values) if starts else None
        started = clock()
        if starts:
            ctx = CallbackContext(level, node_id, None, 1)
            call(starts, "on_node_start", (node_id, inputs, ctx))
        try:
            if simple is None:
                spec.publish(spec.fn(*args, **kwargs), values)
                outputs = {o: values[o] for o in spec.outs} if ends else None
            else:
                value = values[spec.outs[0]] = spec.fn(*args)
                outputs = {spec.outs[0]: value} if ends else None
        except Exception as exc:
            fail(level, step, exc, clock() - started, 1, {})
            raise
        duration = clock() - started
        run.nodes_executed += 1
        # What nodes.record makes for an executed node of a root level without cache.
        keep((path, node_id, name, 0, item_path, "executed", duration, 1, None, backend))
        if ends:
            ctx = CallbackContext(level, node_id, None, 1)
            call(ends, "on_node_end", (node_id, outputs, duration, ctx))


def columns_of(outputs: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """One list per output name, in item order."""
    return {name: [values[name] for values in outputs] for name in names}
