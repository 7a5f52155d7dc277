"""The general path: plan -> engine -> events -> report, for every level of a run.

It runs on an event loop owned by the run (or the caller's, for ``arun``), so a
nested pipeline is a coroutine of its parent and never holds a worker while it
waits, async nodes are awaited where they are, and every callback fires from this
one coordinating thread.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

from nestflow.engines.scheduler import Schedule
from nestflow.runtime import caching
from nestflow.runtime.context import Level, map_workers
from nestflow.runtime.items import collections, rows
from nestflow.runtime.nodes import (
    Blocked,
    from_cache,
    is_flat,
    prefetch_items,
    run_function,
    skip_if_blocked,
)
from nestflow.runtime.plan import LevelPlan, Step
from nestflow.runtime.remote import (
    item_shared,
    map_submitted,
    run_shipped,
    ships_items,
    submits_many,
)
from nestflow.runtime.settings import child_config


async def run_pipeline(level: Level, values: dict[str, Any]) -> Blocked:
    """One level with its pipeline start/end events around it."""
    name = level.plan.name
    level.emit("on_pipeline_start", name, shown(level, values))
    started = perf_counter()
    error: BaseException | None = None
    try:
        blocked = await run_steps(level, values)
        if level.depth == 0 and level.run.uses_cache:
            # The run returns these: read them before the end event shows them. A nested
            # level's outputs stay unread until something needs them (lazy loading).
            await caching.ready(level.plan.outputs, values)
        return blocked
    except BaseException as exc:
        error = exc
        raise
    finally:
        outputs = {o: values[o] for o in level.plan.outputs if o in values}
        if level.run.uses_cache:
            outputs = caching.visible(outputs)
        level.emit("on_pipeline_end", name, outputs, perf_counter() - started, error=error)


def shown(level: Level, values: dict[str, Any]) -> dict[str, Any]:
    """The values a callback sees: pending cache values and signature keys left out."""
    return caching.visible(values) if level.run.uses_cache else dict(values)


async def map_pipeline(
    level: Level,
    map_id: str,
    base: dict[str, Any],
    names: tuple[str, ...],
    columns: list[Any],
    mode: str,
) -> dict[str, list[Any]]:
    """Run ``level`` once per item, with the map events; one list per output in item order."""
    total, items = rows(names, columns, mode)
    if level.run.uses_cache and is_flat(level):
        items = list(items)  # type: ignore[assignment]
        prefetch_items(level, [{**base, **dict(zip(names, row, strict=True))} for row in items])
    size, offload = map_workers(level, total)
    level.emit("on_map_start", map_id, total)
    started = perf_counter()
    try:
        if size == 1:
            outputs = [
                await _item(level.item(index, total), map_id, base, names, row)
                for index, row in enumerate(items)
            ]
        else:
            outputs = await _map_concurrently(
                level, map_id, base, names, items, total, size, offload
            )
    finally:
        level.emit("on_map_end", map_id, perf_counter() - started)
    if level.run.uses_cache:
        return _cached_columns(level, outputs)
    return {name: [values[name] for values in outputs] for name in level.plan.outputs}


def _cached_columns(level: Level, outputs: list[dict[str, Any]]) -> dict[Any, Any]:
    # Each output list, with its representation for signatures downstream (SPEC 8.6).
    columns: dict[Any, Any] = {}
    for name in level.plan.outputs:
        items = [values[name] for values in outputs]
        rep = caching.list_rep([values.get(caching.REP + name) for values in outputs], items)
        columns[name] = caching.column(items)
        if rep is not None:
            columns[caching.REP + name] = rep
    return columns


async def _item(
    level: Level, map_id: str, base: dict[str, Any], names: tuple[str, ...], row: tuple[Any, ...]
) -> dict[str, Any]:
    item = dict(zip(names, row, strict=True))
    return await run_item(level, map_id, {**base, **item}, item)


async def _map_concurrently(
    level: Level,
    map_id: str,
    base: dict[str, Any],
    names: tuple[str, ...],
    items: Any,
    total: int,
    size: int,
    offload: int,
) -> list[dict[str, Any]]:
    """Items as concurrent tasks, at most ``size`` at once; fail fast, lowest failed item wins."""
    shipped = ships_items(level)
    if shipped and level.run.uses_cache:  # values sent to workers are read here first
        await caching.ready([k for k in base if k[:1] != caching.REP], base)
    if shipped and submits_many(level):
        outputs, failures = await map_submitted(level, map_id, base, names, items, total)
    else:
        outputs, failures = await _gated(
            level, map_id, base, names, items, total, size, offload, shipped
        )
    if failures:
        first = min(failures)
        error = failures[first]
        others = sorted(i for i in failures if i != first)
        if others:
            error.add_note(
                "nestflow: other items failed meanwhile: " + ", ".join(f"item {i}" for i in others)
            )
        raise error
    return outputs


async def _gated(
    level: Level,
    map_id: str,
    base: dict[str, Any],
    names: tuple[str, ...],
    items: Any,
    total: int,
    size: int,
    offload: int,
    shipped: bool,
) -> tuple[list[dict[str, Any]], dict[int, BaseException]]:
    gate = asyncio.Semaphore(size)
    shared = item_shared(level) if shipped else None
    failures: dict[int, BaseException] = {}
    outputs: list[dict[str, Any]] = [{} for _ in range(total)]

    async def one(index: int, row: tuple[Any, ...]) -> None:
        async with gate:
            if failures:  # fail fast: started items finish, no new item starts
                return
            try:
                item_level = level.item(index, total, offload=offload)
                if shared is not None:
                    item = dict(zip(names, row, strict=True))
                    values = {**base, **item}
                    if level.run.uses_cache and await from_cache(item_level, map_id, values):
                        outputs[index] = values
                    else:
                        outputs[index] = await run_shipped(
                            item_level, map_id, values, item, size, shared
                        )
                else:
                    outputs[index] = await _item(item_level, map_id, base, names, row)
            except Exception as exc:
                failures[index] = exc

    await asyncio.gather(*(one(index, row) for index, row in enumerate(items)))
    return outputs, failures


async def run_item(
    level: Level, map_id: str, values: dict[str, Any], item: dict[str, Any]
) -> dict[str, Any]:
    """One map item: the level's steps between item start and end events."""
    index = level.item_path[-1]
    if level.run.uses_cache and await from_cache(level, map_id, values):
        return values
    level.emit("on_map_item_start", map_id, index, item)
    started = perf_counter()
    error: BaseException | None = None
    try:
        await run_steps(level, values)
    except BaseException as exc:
        error = exc
        raise
    finally:
        level.emit("on_map_item_end", map_id, index, perf_counter() - started, error=error)
    return values


async def run_steps(level: Level, values: dict[str, Any]) -> Blocked:
    """The selected steps of one level: in execution order, or eagerly as inputs become ready.

    Returns the outputs left ``None`` by failures that ``on_error="continue"`` let pass.
    """
    blocked: Blocked = {}
    if level.config.backend.node_execution == "sequential":
        for step in level.plan.steps:
            await run_step(level, step, values, blocked)
    else:
        await _run_concurrently(level, values, blocked)
    return blocked


async def run_step(level: Level, step: Step, values: dict[str, Any], blocked: Blocked) -> None:
    """One step: a function node or a nested pipeline, unless a continued failure skips it."""
    if skip_if_blocked(level, step, values, blocked):
        return
    if step.child is None:
        await run_function(level, step, values, blocked)
    else:
        await run_nested(level, step, values, blocked)


def _upstream(plan: LevelPlan) -> list[tuple[int, ...]]:
    found = plan.memo.get("upstream")
    if found is None:
        producer = {name: i for i, step in enumerate(plan.steps) for name in step.outs}
        found = plan.memo["upstream"] = [
            tuple({producer[a] for a in step.args if a in producer}) for step in plan.steps
        ]
    assert isinstance(found, list)
    return found


async def _run_concurrently(level: Level, values: dict[str, Any], blocked: Blocked) -> None:
    # Every ready step starts at once: sync calls queue for the level's pool, and a nested
    # pipeline is a coroutine here, so it never holds a worker while its sub-run waits.
    steps = level.plan.steps
    schedule = Schedule(_upstream(level.plan))
    tasks: dict[asyncio.Task[None], int] = {}
    failure: BaseException | None = None
    try:
        while True:
            if failure is None:
                for index in schedule.take():
                    task = asyncio.create_task(run_step(level, steps[index], values, blocked))
                    tasks[task] = index
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


async def run_nested(level: Level, step: Step, values: dict[str, Any], blocked: Blocked) -> None:
    """Run a nested pipeline node under its own effective configuration."""
    assert step.child is not None
    child_plan = step.child
    pipeline = child_plan.pipeline
    mapped = step.node.map_over  # type: ignore[union-attr]
    child = level.child(
        child_plan, child_config(pipeline, level.config), entered=step.id, mapped=bool(mapped)
    )
    level.emit("on_nested_pipeline_start", level.plan.name, pipeline.name)
    started = perf_counter()
    sub = dict(pipeline.bound_inputs)
    sub.update((inner, values[outer]) for outer, inner in step.child_inputs if outer in values)
    if level.run.uses_cache:
        caching.carry(values, sub, step.child_inputs)
    inner_blocked: Blocked = {}
    try:
        if mapped:
            results = await _run_mapped_child(child, step, sub, values)
        else:
            inner_blocked = await run_pipeline(child, sub)
            results = sub
    except Exception as exc:
        if step.node.on_error != "continue":
            raise
        # The failing node already recorded the error and fired on_error at its own level.
        values.update(dict.fromkeys(step.outs))
        blocked.update(dict.fromkeys(step.outs, _failed_path(exc, level, step)))
        return
    finally:
        level.emit(
            "on_nested_pipeline_end", level.plan.name, pipeline.name, perf_counter() - started
        )
    for inner, outer in step.child_outputs:
        values[outer] = results[inner]
        if inner in inner_blocked:
            blocked[outer] = inner_blocked[inner]
    if level.run.uses_cache:
        caching.carry(results, values, step.child_outputs)


def _failed_path(exc: BaseException, level: Level, step: Step) -> str:
    context = getattr(exc, "__nestflow__", None)
    return str(getattr(context, "path", " > ".join((*level.hierarchy, step.id))))


async def _run_mapped_child(
    child: Level, step: Step, sub: dict[str, Any], outer_values: dict[str, Any]
) -> dict[str, list[Any]]:
    node = step.node
    mapped = node.map_over  # type: ignore[union-attr]
    to_inner = dict(step.child_inputs)
    names = tuple(to_inner[m] for m in mapped)
    if child.run.uses_cache:
        await caching.ready(mapped, outer_values)
    columns = collections(outer_values, mapped)
    base = {k: v for k, v in sub.items() if k not in names and not caching.rep_of(k, names)}
    name = child.plan.name
    child.emit("on_pipeline_start", name, shown(child, sub))
    started = perf_counter()
    error: BaseException | None = None
    results: dict[str, list[Any]] = {}
    try:
        results = await map_pipeline(child, step.id, base, names, columns, node.map_mode)  # type: ignore[union-attr]
    except BaseException as exc:
        error = exc
        raise
    finally:
        child.emit("on_pipeline_end", name, results, perf_counter() - started, error=error)
    return results
