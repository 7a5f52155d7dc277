"""One function node on the general path: attempts, timeouts, records, failures and skips."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import traceback
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from nestflow.core.config import UNSET
from nestflow.core.node import Node
from nestflow.core.retry import Retry
from nestflow.engines import processes
from nestflow.engines.protocol import NodeCall
from nestflow.engines.threads import call_in_thread
from nestflow.errors import NodeTimeoutError, UnhashableInputError
from nestflow.runtime import caching, shipping, tracing
from nestflow.runtime.calls import CallSpec, call_spec
from nestflow.runtime.context import Level
from nestflow.runtime.failure import annotate
from nestflow.runtime.plan import LevelPlan, Step
from nestflow.runtime.report import ErrorRecord, NodeRecord

Blocked = dict[str, str]
"""Output names that are ``None`` because of a continued failure -> the failing node's path."""


def spec_of(plan: LevelPlan, step: Step) -> CallSpec:
    """The memoised call spec of a function step."""
    key = ("call", step.id)
    found = plan.memo.get(key)
    if found is None:
        assert isinstance(step.node, Node)
        found = plan.memo[key] = call_spec(step.id, step.node)
    assert isinstance(found, CallSpec)
    return found


async def run_function(level: Level, step: Step, values: dict[str, Any], blocked: Blocked) -> None:
    """Call one function node: events, attempts with retries, record, failure notes."""
    node = step.node
    assert isinstance(node, Node)
    spec = spec_of(level.plan, step)
    sig: str | None = None
    if level.run.uses_cache:
        if caching.eligible(level, node):
            sig = await caching.signature(level, step, spec, values)
            if _cached(level, step, spec, values, sig):
                return
        await caching.ready(spec.names, values)
    args, kwargs = spec.arguments(values)
    callbacks = level.config.callbacks
    listens = callbacks and level.run.dispatcher.listening(callbacks, "on_node_start")
    inputs = spec.inputs(values) if listens else {}
    timeout = level.config.timeout if node.timeout is UNSET else node.timeout
    policy = Retry.of(level.config.retries if node.retries is UNSET else node.retries)
    started = perf_counter()
    attempt = 1
    while True:
        level.emit("on_node_start", step.id, inputs, node_id=step.id, attempt=attempt)
        call = spec
        if callbacks and level.run.dispatcher.listening(callbacks, "carrier"):
            carrier = tracing.carrier_for(level, step.id, attempt)
            call = tracing.traced(spec, carrier, node.is_async)
        try:
            spec.publish(await _attempt(level, step, call, args, kwargs, timeout), values)
            break
        except Exception as exc:
            if not policy.allows(attempt, exc):
                fail(level, step, exc, perf_counter() - started, attempt, blocked)
                if node.on_error == "continue":
                    values.update(dict.fromkeys(spec.outs))
                    return
                raise
        await asyncio.sleep(policy.delay(attempt))
        attempt += 1
    duration = perf_counter() - started
    level.run.nodes_executed += 1
    if sig is not None:
        caching.store(level, step, spec, values, sig)
    level.run.report.add(record(level, step, "executed", duration, attempts=attempt, sig=sig))
    outputs = {o: values[o] for o in spec.outs}
    level.emit("on_node_end", step.id, outputs, duration, node_id=step.id, attempt=attempt)


def _recompute(
    level: Level, step: Step, spec: CallSpec, values: dict[str, Any]
) -> Callable[[], Awaitable[Any]]:
    async def recompute() -> Any:
        # The stored copy cannot be read: run the producer again, on its own inputs (a
        # level's values are never rebound, so they still are the producer's inputs).
        fresh = dict(values)
        await run_function(level, step, fresh, {})
        await caching.ready(spec.outs, fresh)
        outs = spec.outs
        return fresh[outs[0]] if len(outs) == 1 else tuple(fresh[o] for o in outs)

    return recompute


def _cached(level: Level, step: Step, spec: CallSpec, values: dict[str, Any], sig: str) -> bool:
    """Resolve ``step`` from the cache if it holds ``sig``; a stale entry is recomputed later."""
    if not caching.hit(level, step, spec, values, sig, _recompute(level, step, spec, values)):
        return False
    level.run.report.cache_hits += 1
    level.run.report.add(record(level, step, "cached", 0.0, sig=sig))
    level.emit("on_node_cached", step.id, sig, node_id=step.id)
    return True


async def _attempt(
    level: Level,
    step: Step,
    spec: CallSpec,
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float | None,
) -> Any:
    if step.node.is_async:
        if timeout is None:
            return await spec.fn(*args, **kwargs)
        try:
            # wait_for cancels the task, so the node's `finally` blocks run.
            return await asyncio.wait_for(spec.fn(*args, **kwargs), timeout)
        except TimeoutError:
            raise _timeout_error(level, step, timeout, "the coroutine was cancelled") from None
    if level.session is not None:
        return await _call_in_session(level, step, spec, args, kwargs, timeout)
    if level.processes:
        return await _call_in_process(level, step, spec, args, kwargs, timeout)
    if timeout is not None:
        return await _call_with_deadline(level, step, spec.fn, args, kwargs, timeout)
    if level.offload:
        return await call_in_thread(level.run.pools.get(level.offload), spec.fn, args, kwargs)
    return spec.fn(*args, **kwargs)


async def _call_with_deadline(
    level: Level,
    step: Step,
    fn: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float,
) -> Any:
    # A thread cannot be interrupted. Each timed call gets its own daemon thread, so an
    # abandoned call never holds a pool slot that later nodes wait for.
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            (future.set_result if ok else future.set_exception)(value)

    def work() -> None:
        try:
            outcome = (True, fn(*args, **kwargs))
        except BaseException as exc:
            outcome = (False, exc)
        # An abandoned call may end after its run (and loop) is gone: its result is discarded.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=work, name=f"nestflow-{step.id}", daemon=True).start()
    try:
        return await asyncio.wait_for(future, timeout)
    except TimeoutError:
        where = " > ".join((*level.hierarchy, step.id))
        items = "".join(f" [item {i}]" for i in level.item_path)
        level.run.report.abandoned_threads.append(where + items)
        raise _timeout_error(level, step, timeout, "its thread was abandoned") from None


async def _call_in_session(
    level: Level,
    step: Step,
    spec: CallSpec,
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float | None,
) -> Any:
    session = level.session
    if session.remote:
        shipping.dumps_node_call(level, step, spec, args, kwargs)  # SerializationError, named
    path = " > ".join((*level.hierarchy, step.id))
    call = NodeCall(spec.fn, tuple(args), kwargs, timeout=timeout, node_path=path)
    future = session.submit(call)
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
    except TimeoutError:
        future.cancel()
        raise _timeout_error(level, step, timeout or 0.0, "its task was cancelled") from None


async def _call_in_process(
    level: Level,
    step: Step,
    spec: CallSpec,
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float | None,
) -> Any:
    payload = shipping.dumps_node_call(level, step, spec, args, kwargs)
    future = processes.shared_pool(level.processes).submit(payload, timeout)
    try:
        message = await asyncio.wrap_future(future)
    except processes.WorkerTimeout:
        stopped = "its worker process was terminated and replaced"
        raise _timeout_error(level, step, timeout or 0.0, stopped) from None
    return shipping.loads_result(level, step, message)


def _timeout_error(level: Level, step: Step, timeout: float, stopped: str) -> NodeTimeoutError:
    node = step.node
    assert isinstance(node, Node)
    if node.timeout is not UNSET:
        where = f"on node `{step.id}`"
    else:
        where = f"on pipeline `{level.config.origin('timeout')}`"
    path = " > ".join((*level.hierarchy, step.id))
    return NodeTimeoutError(
        f"Node `{path}` ran longer than its timeout of {timeout} s (set {where}); {stopped}. "
        "Raise the limit with timeout=..., or set timeout=None on the node to lift it."
    )


def record(
    level: Level,
    step: Step,
    status: Any,
    duration: float,
    error: str | None = None,
    attempts: int = 1,
    sig: str | None = None,
) -> NodeRecord:
    """The report record of one execution of ``step`` at ``level``."""
    backend, cache = level.run.labels(level.config)
    return NodeRecord(
        path=" > ".join((*level.hierarchy, step.id)),
        node=step.id,
        pipeline=level.plan.name,
        depth=level.depth,
        item_path=level.item_path,
        status=status,
        duration_s=duration,
        attempts=attempts,
        backend=backend,
        cache=cache,
        error=error,
        levels=level.entered,
        signature=sig,
    )


def fail(
    level: Level, step: Step, exc: Exception, duration: float, attempts: int, blocked: Blocked
) -> None:
    """Record a node's final failure: notes on the exception, records, ``on_error``."""
    context = level.error_context(step.id, attempts=attempts)
    annotate(exc, context)
    report = level.run.report
    text = f"{type(exc).__name__}: {exc}"
    report.add(record(level, step, "failed", duration, text, attempts))
    report.errors.append(
        ErrorRecord(
            node_path=context.path,
            exception_type=type(exc).__name__,
            message=str(exc),
            traceback="".join(traceback.format_exception(exc)),
            item_path=level.item_path,
            attempts=attempts,
        )
    )
    blocked.update(dict.fromkeys(step.outs, context.path))
    level.emit("on_error", step.id, exc, node_id=step.id, error=exc, attempt=attempts)


def skip_if_blocked(level: Level, step: Step, values: dict[str, Any], blocked: Blocked) -> bool:
    """Skip ``step`` when it consumes an output of a continued failure; its outputs become None."""
    causes = [blocked[name] for name in step.args if name in blocked]
    if not causes:
        return False
    values.update(dict.fromkeys(step.outs))
    blocked.update(dict.fromkeys(step.outs, causes[0]))
    if step.child is None:
        level.run.report.add(record(level, step, "skipped", 0.0, f"skipped: {causes[0]} failed"))
    return True


async def cached_item(level: Level, values: dict[str, Any]) -> str | None:
    """Resolve a map item from the cache by signatures alone (SPEC 8.6).

    Applies to items whose level has only cached function nodes. When every node hits,
    the item's outputs become pending values in ``values``, the hits are counted and
    reported, and the last node's signature is returned; otherwise nothing changes.
    """
    plan = level.plan
    if not is_flat(level):
        return None
    trial = dict(values)
    sigs: list[str] = []
    for step in plan.steps:
        spec = spec_of(plan, step)
        sig = await caching.signature(level, step, spec, trial)
        if not caching.hit(level, step, spec, trial, sig, _recompute(level, step, spec, trial)):
            return None
        sigs.append(sig)
    values.update(trial)
    level.run.report.cache_hits += len(sigs)
    for step, sig in zip(plan.steps, sigs, strict=True):
        level.run.report.add(record(level, step, "cached", 0.0, sig=sig))
        level.emit("on_node_cached", step.id, sig, node_id=step.id)
    return sigs[-1] if sigs else None


def is_flat(level: Level) -> bool:
    """A cache is in effect and every step of the level is a cached function node."""
    if level.config.cache is None:
        return False
    plan = level.plan
    flat = plan.memo.get("flat")
    if flat is None:
        flat = plan.memo["flat"] = _flat(plan)
    return bool(flat)


def prefetch_items(level: Level, items: list[dict[str, Any]]) -> None:
    """Batch the cache lookups of a flat map level (see ``caching.prefetch``)."""
    specs = [spec_of(level.plan, step) for step in level.plan.steps]
    with contextlib.suppress(UnhashableInputError):  # reported by the item that has it
        caching.prefetch(level, specs, items)


def _flat(plan: LevelPlan) -> bool:
    return bool(plan.steps) and all(
        step.child is None and isinstance(step.node, Node) and step.node.cache
        for step in plan.steps
    )


async def from_cache(level: Level, map_id: str, values: dict[str, Any]) -> bool:
    """Resolve an item by signatures alone; ``on_map_item_cached`` replaces its start/end."""
    sig = await cached_item(level, values)
    if sig is None:
        return False
    level.emit("on_map_item_cached", map_id, level.item_path[-1], sig)
    return True
