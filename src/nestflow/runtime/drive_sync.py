"""The synchronous driver: a level's compiled steps in a plain loop, no event loop.

It takes every level whose nodes run one at a time (``Compiled.sync``): the calls go
to the level's executor and the driver waits for each (inline for ``LocalBackend``, the
session's future for a custom or dask backend with sequential nodes). Stretches of plain
calls (no cache, no callback, no limit) run in the tightest loop this driver has: fetch
arguments, call, store, take one timestamp; what a failure there means is still decided
by the step. A nested level that needs concurrency runs on the asynchronous driver.
"""

from __future__ import annotations

import time
from time import perf_counter
from typing import Any

from nestflow.engines import executors
from nestflow.runtime import caching, guard, step
from nestflow.runtime.caching import Batch
from nestflow.runtime.context import Level
from nestflow.runtime.items import MapCall, rows
from nestflow.runtime.loop import run_sync
from nestflow.runtime.step import HIT, Blocked, NestedStep, NodeStep, Segment


def run_level(level: Level, values: dict[str, Any]) -> Blocked:
    """One level between its pipeline start and end events; a root's outputs are read."""
    if not level.hooks and not level.run.cached:  # nothing to announce, nothing unread
        return run_steps(level, values)
    started = step.level_started(level, values)
    error: BaseException | None = None
    try:
        batch = step.sign_batch(level, [values], plain_run=True) if level.compiled.flat else None
        blocked = run_steps(level, values, batch, 0)
        if level.depth == 0:
            caching.read(values, level.plan.outputs)  # returned: read before the end event
        return blocked
    except BaseException as exc:
        error = exc
        raise
    finally:
        step.level_ended(level, values, started, error)


def run_steps(
    level: Level, values: dict[str, Any], batch: Batch | None = None, item: int = 0
) -> Blocked:
    """The level's steps in plan order; returns the outputs left None by continued failures."""
    blocked: Blocked = {}
    for segment in level.compiled.segments:
        found = segment.step
        if found is None and (blocked or level.run.cached):
            # An input may be unread, or the output of a failure continued past: each step
            # reads its inputs and is skipped when it consumes such an output.
            for plain in segment.steps:
                run_node(level, plain, values, blocked, batch, item)
        elif found is None:
            marks: list[float] = []
            level.run.report.pending.append((level, (), segment.steps, marks))
            run_plain(level, values, segment, marks)
        elif isinstance(found, NodeStep):
            run_node(level, found, values, blocked, batch, item)
        else:
            run_nested(level, found, values, blocked)
    return blocked


def run_plain(
    level: Level,
    values: dict[str, Any],
    segment: Segment,
    marks: list[float],
    item: int = -1,
    total: int = 0,
    chain: tuple[NestedStep, ...] = (),
) -> None:
    """Plain calls in a tight loop, one timestamp in ``marks`` before them and one after
    each; the step decides what a failure means. ``item`` is the map item (of ``total``)
    that ``level`` runs, -1 when ``level`` is the item's own level; the calls are those of
    the level reached from there through the nested steps of ``chain``."""
    calls = segment.calls
    if segment.limit is not None:  # the stretch is counted at once, up to the run's limit
        room = guard.room(level.run, len(calls), segment.limit)
        calls = calls if room == len(calls) else calls[:room]
    clock = perf_counter
    mark = marks.append
    mark(clock())
    begun = len(marks)
    try:
        for fn, args, out in calls:
            values[out] = fn(*[values[a] for a in args])
            mark(clock())
    except Exception as exc:
        failing = segment.steps[len(marks) - begun]
        where = level if item < 0 else level.item(item, total)
        failing.fail(step.level_below(where, chain), exc, clock() - marks[-1], 1)
        raise
    if len(calls) < len(segment.calls):
        where = step.level_below(level if item < 0 else level.item(item, total), chain)
        number = level.run.steps_taken
        raise guard.over_limit(where, segment.steps[len(calls)].id, segment.limit or 0, number)


def run_plain_tree(level: Level, chain: tuple[NestedStep, ...], values: dict[str, Any]) -> None:
    """A plain level (``Compiled.plain``) reached from ``level`` through ``chain``: its calls
    and its plain nested levels, making no level object (``records.py`` makes them when the
    records are read; a failure makes the failing one)."""
    pending = level.run.report.pending
    entered = chain[-1].child
    depth_limit = entered.depth_limit
    if depth_limit is not None:
        hierarchy = (*level.hierarchy, *(n.child.plan.name for n in chain[:-1]))
        guard.entering(level.depth + len(chain), hierarchy, entered.plan.name, depth_limit)
    for segment in entered.segments:
        found = segment.step
        if found is None:
            marks: list[float] = []
            pending.append((level, chain, segment.steps, marks))
            run_plain(level, values, segment, marks, chain=chain)
        else:
            assert isinstance(found, NestedStep)
            sub = found.inputs(values)
            run_plain_tree(level, (*chain, found), sub)
            for name, outer in found.step.child_outputs:  # publish: nothing unread, no failure
                values[outer] = sub[name]


def run_node(
    level: Level,
    node: NodeStep,
    values: dict[str, Any],
    blocked: Blocked,
    batch: Batch | None = None,
    item: int = 0,
    sig: str | None = None,
) -> None:
    """One function node: skipped, a hit, or called (with retries) and stored."""
    if (blocked or node.gated) and node.skip(level, values, blocked):
        return
    if node.cached and sig is None:
        sig = node.lookup(level, values, batch, item)
        if sig is HIT:
            return
    if node.direct and level.executor is executors.INLINE and not node.is_async:
        args, kwargs, started = node.prepare(level, values)
        try:
            result = node.spec.fn(*args, **kwargs)
            if node.simple is not None:
                values[node.out] = result
            else:
                node.publish(values, result)
        except Exception as exc:
            node.failed_directly(level, values, sig, started, exc, blocked)
            return
        node.finish(level, values, sig, started, 1, batch)
        return
    attempt = node.begin(level, values, sig)
    while True:
        try:
            node.publish(values, node.in_time(attempt, _call(node, attempt)))
            break
        except Exception as exc:
            delay = node.failed(attempt, exc, blocked)
            if delay is None:
                return
        time.sleep(delay)
        node.again(attempt)
    node.finish(level, values, sig, attempt.started, attempt.number, batch)


def _call(node: NodeStep, attempt: Any) -> Any:
    executor = attempt.executor
    if node.is_async and executor.kind != "session":  # a coroutine runs on an event loop here
        return _awaited(attempt.fn(*attempt.args, **attempt.kwargs), node.timeout)
    if executor is executors.INLINE:
        return attempt.fn(*attempt.args, **attempt.kwargs)
    return executors.wait(executor, node.submit(attempt), node.limit(attempt))


def _awaited(coroutine: Any, timeout: float | None) -> Any:
    import asyncio  # an async node: an event loop runs it

    async def wrapped() -> Any:
        try:  # wait_for cancels the coroutine, so the node's `finally` blocks run
            return await asyncio.wait_for(coroutine, timeout)
        except TimeoutError:
            raise executors.CallTimeout("the coroutine was cancelled") from None

    return run_sync(wrapped)


def run_nested(level: Level, nested: NestedStep, values: dict[str, Any], blocked: Blocked) -> None:
    """A nested pipeline under its own configuration, on this driver when it can take it."""
    if (blocked or nested.gated) and nested.skip(level, values, blocked):
        return
    if nested.plain and not level.hooks and not level.run.cached:
        sub = nested.inputs(values)
        run_plain_tree(level, (nested,), sub)
        nested.publish(values, sub)
        return
    child, sub = nested.enter(level, values)
    opened = nested.opened(level)
    started = perf_counter()
    inner: Blocked = {}
    try:
        if nested.mapped:
            results = map_pipeline(child, nested.map_call(values, sub))
        elif child.compiled.sync:
            inner = run_level(child, sub)
            results = sub
        else:
            from nestflow.runtime import drive_async

            level.run.uses("async")
            inner = run_sync(lambda: drive_async.run_level(child, sub))
            results = sub
    except Exception as exc:
        if opened is not None:
            opened.close(failed=True)
        nested.failed(level, values, exc, blocked)
        return
    finally:
        nested.leave(level, started)
    if opened is not None:
        opened.close(failed=False)
    nested.publish(values, results, inner, blocked)


def map_pipeline(level: Level, call: MapCall) -> dict[str, Any]:
    """A mapped level between its pipeline start and end events; one list per output."""
    if not level.compiled.maps_sync:
        from nestflow.runtime import drive_async

        level.run.uses("async")
        return run_sync(lambda: drive_async.map_pipeline(level, call))
    started = step.level_started(level, call.shown)
    error: BaseException | None = None
    results: dict[str, Any] = {}
    try:
        results = map_level(level, call)
        if level.depth == 0:
            caching.read(results, level.plan.outputs)
    except BaseException as exc:
        error = exc
        raise
    finally:
        step.level_ended(level, results, started, error)
    return results


def map_level(level: Level, call: MapCall) -> dict[str, Any]:
    """Every item in order between map start and end events; fails at the first failure
    unless the map keeps going."""
    base, names = call.base, call.names
    total, found = rows(names, call.columns, call.mode)
    compiled = level.compiled
    batch = None
    inputs: list[dict[str, Any]] | None = None
    if compiled.flat and level.config.cache is not None:
        inputs = [{**base, **dict(zip(names, row, strict=True))} for row in found]
        batch = step.sign_batch(level, inputs, plain_run=False)
    started = step.map_started(level, call.map_id, total)
    outputs: list[dict[str, Any]] = []
    try:
        if compiled.tight and not level.hooks and not level.run.cached and not call.keep_going:
            _plain_items(level, compiled.segments[0], base, names, found, total, outputs)
        else:
            source = inputs if inputs is not None else _items(base, names, found)
            for index, values in enumerate(source):
                item = level.item(index, total)
                try:
                    outputs.append(_item(item, call.map_id, values, names, batch))
                except Exception as exc:
                    if call.stops(exc):
                        raise
                    outputs.append(step.item_failed(item, exc))
    finally:
        step.map_ended(level, call.map_id, started)
    return columns_of(level, outputs)


def columns_of(level: Level, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """One list per output, in item order: read at the root; unread lists, with their
    representations for signatures downstream, below it (SPEC 8.6)."""
    names = level.plan.outputs
    if level.run.cached:
        if level.depth > 0:
            return caching.mapped_columns(outputs, names)
        caching.read_all(outputs, names)
    return {name: [values[name] for values in outputs] for name in names}


def _items(base: dict[str, Any], names: tuple[str, ...], found: Any) -> Any:
    for row in found:
        values = base.copy()
        values.update(zip(names, row, strict=True))
        yield values


def _plain_items(
    level: Level,
    segment: Segment,
    base: dict[str, Any],
    names: tuple[str, ...],
    found: Any,
    total: int,
    outputs: list[dict[str, Any]],
) -> None:
    # Plain calls only, nothing listening: no item level is made unless an item fails, and
    # one list of timestamps serves every item (``records.py`` reads it item by item).
    marks: list[float] = []
    level.run.report.pending.append((level, total, segment.steps, marks, "items"))
    append = outputs.append
    for index, row in enumerate(found):
        values = base.copy()
        values.update(zip(names, row, strict=True))
        run_plain(level, values, segment, marks, index, total)
        append(values)


def _item(
    level: Level,
    map_id: str,
    values: dict[str, Any],
    names: tuple[str, ...],
    batch: Batch | None,
) -> dict[str, Any]:
    index = level.item_path[-1]
    if batch is not None and batch.complete(index):  # resolved by signatures alone
        for node in level.compiled.signed:  # a flat level: every step is a cached node
            node.lookup(level, values, batch, index)
        step.item_cached(level, map_id, batch.sigs[index][-1])
        return values
    started = step.item_started(level, map_id, values, names)
    error: BaseException | None = None
    try:
        run_steps(level, values, batch, index)
    except BaseException as exc:
        error = exc
        raise
    finally:
        step.item_ended(level, map_id, started, error)
    return values
