"""The asynchronous driver: the same compiled steps, scheduled on one event loop.

It takes the levels that run things at once (threaded, async and parallel modes, dask
and custom backends with concurrent nodes or maps) and everything nested below them: a
nested pipeline is a coroutine of its parent, so it never holds a worker while its
sub-run waits; async nodes are awaited where they are; sync calls go to the level's
executor and are awaited; every callback fires from this one coordinating thread.
What each node execution means is the step's (``runtime/step.py``), as on the
synchronous driver.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

from nestflow.core.gates import produced
from nestflow.engines import executors
from nestflow.engines.backends import LocalBackend
from nestflow.engines.scheduler import Schedule
from nestflow.runtime import caching, remote, step
from nestflow.runtime.caching import Batch
from nestflow.runtime.context import Level, map_width
from nestflow.runtime.drive_sync import columns_of
from nestflow.runtime.items import MapCall, rows
from nestflow.runtime.step import HIT, Blocked, NestedStep, NodeStep


async def run_level(level: Level, values: dict[str, Any]) -> Blocked:
    """One level between its pipeline start and end events; a root's outputs are read."""
    started = step.level_started(level, values)
    error: BaseException | None = None
    try:
        batch = step.sign_batch(level, [values], plain_run=True) if level.compiled.flat else None
        blocked = await run_steps(level, values, batch, 0)
        if level.depth == 0:
            caching.read(values, level.plan.outputs)  # returned: read before the end event
        return blocked
    except BaseException as exc:
        error = exc
        raise
    finally:
        step.level_ended(level, values, started, error)


async def run_steps(
    level: Level, values: dict[str, Any], batch: Batch | None = None, item: int = 0
) -> Blocked:
    """The level's steps: in plan order, or each as soon as its inputs are ready."""
    blocked: Blocked = {}
    if level.config.backend.node_execution == "sequential":
        for found in level.compiled.steps:
            await run_step(level, found, values, blocked, batch, item)
    else:
        await _concurrently(level, values, blocked, batch, item)
    return blocked


async def run_step(
    level: Level,
    found: NodeStep | NestedStep,
    values: dict[str, Any],
    blocked: Blocked,
    batch: Batch | None,
    item: int,
) -> None:
    """One step: a function node or a nested pipeline."""
    if isinstance(found, NodeStep):
        await run_node(level, found, values, blocked, batch, item)
    else:
        await run_nested(level, found, values, blocked)


async def _concurrently(
    level: Level, values: dict[str, Any], blocked: Blocked, batch: Batch | None, item: int
) -> None:
    # Every ready step starts at once: sync calls queue for the level's executor, and a
    # nested pipeline is a coroutine here, so it never holds a worker while its sub-run waits.
    steps = level.compiled.steps
    schedule = Schedule(_upstream(level))
    tasks: dict[asyncio.Task[None], int] = {}
    failure: BaseException | None = None
    try:
        while True:
            if failure is None:
                for index in schedule.take():
                    work = run_step(level, steps[index], values, blocked, batch, item)
                    tasks[asyncio.create_task(work)] = index
            if not tasks:
                break
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                index = tasks.pop(task)
                if task.exception() is None:
                    schedule.finish(index)
                elif failure is None:
                    failure = task.exception()
    finally:
        for task in tasks:
            task.cancel()
    if failure is not None:
        raise failure


def _upstream(level: Level) -> list[tuple[int, ...]]:
    memo = level.plan.memo
    found = memo.get("upstream")
    if found is None:
        steps = level.plan.steps
        producer = {name: i for i, s in enumerate(steps) for name in produced(s.node)}
        found = memo["upstream"] = [
            tuple({producer[a] for a in s.args if a in producer}) for s in steps
        ]
    assert isinstance(found, list)
    return found


async def run_node(
    level: Level,
    node: NodeStep,
    values: dict[str, Any],
    blocked: Blocked,
    batch: Batch | None = None,
    item: int = 0,
) -> None:
    """One function node: skipped, a hit, or called (with retries) and stored."""
    if (blocked or node.gated) and node.skip(level, values, blocked):
        return
    sig = None
    if node.cached:
        sig = node.lookup(level, values, batch, item)
        if sig is HIT:
            return
    attempt = node.begin(level, values, sig)
    while True:
        try:
            node.publish(values, node.in_time(attempt, await _call(node, attempt)))
            break
        except Exception as exc:
            delay = node.failed(attempt, exc, blocked)
            if delay is None:
                return
        await asyncio.sleep(delay)
        node.again(attempt)
    node.finish(level, values, sig, attempt.started, attempt.number, batch)


async def _call(node: NodeStep, attempt: Any) -> Any:
    executor = attempt.executor
    if node.is_async and executor.kind != "session":
        coroutine = attempt.fn(*attempt.args, **attempt.kwargs)
        if node.timeout is None:
            return await coroutine
        try:  # wait_for cancels the task, so the node's `finally` blocks run
            return await asyncio.wait_for(coroutine, node.timeout)
        except TimeoutError:
            raise executors.CallTimeout("the coroutine was cancelled") from None
    if executor is executors.INLINE:
        return attempt.fn(*attempt.args, **attempt.kwargs)
    return await executors.settle(executor, node.submit(attempt), node.limit(attempt))


async def run_nested(
    level: Level, nested: NestedStep, values: dict[str, Any], blocked: Blocked
) -> None:
    """A nested pipeline under its own configuration, as a coroutine of this level."""
    if (blocked or nested.gated) and nested.skip(level, values, blocked):
        return
    child, sub = nested.enter(level, values)
    opened = nested.opened(level)
    started = perf_counter()
    inner: Blocked = {}
    try:
        if nested.mapped:
            results = await map_pipeline(child, nested.map_call(values, sub))
        else:
            inner = await run_level(child, sub)
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


async def map_pipeline(level: Level, call: MapCall) -> dict[str, Any]:
    """A mapped level between its pipeline start and end events; one list per output."""
    started = step.level_started(level, call.shown)
    error: BaseException | None = None
    results: dict[str, Any] = {}
    try:
        results = await map_level(level, call)
    except BaseException as exc:
        error = exc
        raise
    finally:
        step.level_ended(level, results, started, error)
    return results


async def map_level(level: Level, call: MapCall) -> dict[str, Any]:
    """Every item, up to the backend's width at once, between map start and end events."""
    base, names = call.base, call.names
    total, found = rows(names, call.columns, call.mode)
    shipped = remote.ships_items(level)
    if shipped:  # values sent to workers are read here first
        caching.read(base, [k for k in base if k[:1] != caching.REP])
    inputs = [{**base, **dict(zip(names, row, strict=True))} for row in found]
    batch = step.sign_batch(level, inputs, plain_run=False)
    width = map_width(level, total)
    started = step.map_started(level, call.map_id, total)
    try:
        if width == 1 and not shipped:
            outputs, failures = await _in_order(level, call, inputs, batch)
        elif shipped and width >= total and remote.submits_many(level):  # none held back
            outputs, failures = await remote.map_submitted(level, call, inputs, batch)
        else:
            outputs, failures = await _gated(level, call, inputs, width, batch, shipped)
    finally:
        step.map_ended(level, call.map_id, started)
    if failures:
        _settle(level, call, outputs, failures)
    return columns_of(level, outputs)


def _settle(
    level: Level,
    call: MapCall,
    outputs: list[dict[str, Any]],
    failures: dict[int, Exception],
) -> None:
    """Failed items: ``None`` outputs when the map keeps going; else the lowest failed
    item's exception is raised, noting the others that failed meanwhile."""
    total = len(outputs)
    stopping = [i for i, exc in failures.items() if call.stops(exc)]
    if not stopping:
        for index, exc in failures.items():
            outputs[index] = step.item_failed(level.item(index, total), exc)
        return
    first = min(stopping)
    error = failures[first]
    others = sorted(i for i in failures if i != first)
    if others:
        error.add_note(
            "nestflow: other items failed meanwhile: " + ", ".join(f"item {i}" for i in others)
        )
    raise error


async def _gated(
    level: Level,
    call: MapCall,
    inputs: list[dict[str, Any]],
    width: int,
    batch: Batch | None,
    shipped: bool,
) -> tuple[list[dict[str, Any]], dict[int, Exception]]:
    """Items as concurrent tasks, at most ``width`` at once; unless the map keeps going,
    no new item starts after a failure (those started finish)."""
    map_id, names, total = call.map_id, call.names, len(inputs)
    gate = asyncio.Semaphore(width)
    shared = remote.item_shared(level) if shipped else None
    backend = level.config.backend
    offload = 0
    if isinstance(backend, LocalBackend) and not shipped:
        offload = backend.workers(backend.map_execution)
    failures: dict[int, Exception] = {}
    outputs: list[dict[str, Any]] = [{} for _ in range(total)]
    stopped: list[Exception] = []
    """A failure that ends the map (``MapCall.stops``): no item starts after it."""

    async def one(index: int, values: dict[str, Any]) -> None:
        async with gate:
            if stopped:
                return
            try:
                item_level = level.item(index, total).offloaded(offload)
                if shared is not None and not (batch is not None and batch.complete(index)):
                    outputs[index] = await remote.run_shipped(
                        item_level, map_id, values, names, width, shared
                    )
                else:
                    outputs[index] = await run_item(item_level, map_id, values, names, batch)
            except Exception as exc:
                failures[index] = exc
                if call.stops(exc):
                    stopped.append(exc)

    await asyncio.gather(*(one(index, values) for index, values in enumerate(inputs)))
    return outputs, failures


async def _in_order(
    level: Level, call: MapCall, inputs: list[dict[str, Any]], batch: Batch | None
) -> tuple[list[dict[str, Any]], dict[int, Exception]]:
    """Items one at a time on this task; unless the map keeps going, none after a failure."""
    total = len(inputs)
    outputs: list[dict[str, Any]] = [{} for _ in range(total)]
    failures: dict[int, Exception] = {}
    for index, values in enumerate(inputs):
        try:
            item = level.item(index, total)
            outputs[index] = await run_item(item, call.map_id, values, call.names, batch)
        except Exception as exc:
            failures[index] = exc
            if call.stops(exc):
                break
    return outputs, failures


async def run_item(
    level: Level,
    map_id: str,
    values: dict[str, Any],
    names: tuple[str, ...],
    batch: Batch | None,
) -> dict[str, Any]:
    index = level.item_path[-1]
    if batch is not None and batch.complete(index):  # resolved by signatures alone
        await run_steps(level, values, batch, index)
        step.item_cached(level, map_id, batch.sigs[index][-1])
        return values
    started = step.item_started(level, map_id, values, names)
    error: BaseException | None = None
    try:
        await run_steps(level, values, batch, index)
    except BaseException as exc:
        error = exc
        raise
    finally:
        step.item_ended(level, map_id, started, error)
    return values
