"""The observed loop: runs and maps of one flat sequential level, with callbacks.

It applies when what a run needs beyond the fast path is callbacks, and maybe a cache:
one level of synchronous function nodes (all cacheable when a cache is in effect),
sequential in both dimensions, with no timeout, retry or ``on_error="continue"``, and no
callback that carries trace context into node calls. Events, their order and arguments,
records and failures are those of the general runner (``runner.run_pipeline``,
``map_pipeline``, ``run_item``, ``nodes.run_function``, ``nodes.from_cache``), made by a
plain loop instead of coroutines on an event loop. With a cache, every signature is made
and the cache asked once before the first event, as the cached loop (``quick``) does.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from time import perf_counter
from typing import Any

from nestflow.callbacks.dispatch import implements
from nestflow.callbacks.events import CallbackContext
from nestflow.core.config import EffectiveConfig
from nestflow.core.node import Node
from nestflow.runtime import caching
from nestflow.runtime.calls import CallSpec
from nestflow.runtime.context import Level
from nestflow.runtime.fast import node_is_fast
from nestflow.runtime.nodes import fail, spec_of
from nestflow.runtime.plan import LevelPlan, Step
from nestflow.runtime.quick import QuickLevel, Unread, read, read_all, stored

_Node = tuple[Step, CallSpec, str, tuple[str, ...] | None]
"""A step, its call spec, its record path, and its argument names when the call is simple
(positional inputs without defaults, one output)."""
_Compiled = list[_Node]


def qualifies(plan: LevelPlan, config: EffectiveConfig) -> bool:
    """Whether a run of ``plan`` at ``config`` can take the observed loop."""
    backend = config.backend
    cached = config.cache is not None
    return (
        bool(config.callbacks)
        and bool(plan.steps)
        and getattr(backend, "node_execution", None) == "sequential"
        and getattr(backend, "map_execution", None) == "sequential"
        and config.timeout is None
        and isinstance(config.retries, int)
        and config.retries == 0
        and not implements(config.callbacks, "carrier")
        and all(
            step.child is None
            and isinstance(step.node, Node)
            and node_is_fast(step.node, config)
            and (step.node.cache or not cached)
            for step in plan.steps
        )
    )


class Cached:
    """A cached level's signatures per item, and what the cache holds for them."""

    __slots__ = ("entries", "held", "quick", "sigs")

    def __init__(self, quick: QuickLevel, sigs: list[list[str]]) -> None:
        self.quick, self.sigs = quick, sigs
        self.held, self.entries = quick.ask(sigs)  # values read, entries not read yet

    def hits(self, item: int) -> bool:
        """Whether every node of ``item`` is in the cache."""
        held, entries, made = self.held, self.entries, self.quick.made
        return all(sig in held or sig in entries or sig in made for sig in self.sigs[item])


def prepare(level: Level, items: list[dict[str, Any]], plain: bool) -> Cached | None:
    """Sign every node of every item and ask the cache once, before any event.

    None when anything goes wrong here (an input that cannot be fingerprinted, a
    ``__cache_key__`` that raises, a strict cache that cannot be read): the general runner
    then runs the call, so the error comes with the events and report it has there.
    """
    quick = QuickLevel(level)
    try:
        sigs = [quick.sign_run(items[0])] if plain else [quick.sign(v) for v in items]
        cached = Cached(quick, sigs)
    except Exception:  # the general runner raises it, with its events
        return None
    level.run.caches[id(quick.cache)] = quick.cache
    return cached


def _compiled(plan: LevelPlan) -> _Compiled:
    found: _Compiled | None = plan.memo.get("observed")
    if found is None:  # built whole, then shared: another thread may be reading the memo
        made: _Compiled = []
        for step in plan.steps:
            spec = spec_of(plan, step)
            simple = spec.arg_names if spec.simple else None
            made.append((step, spec, " > ".join((plan.name, step.id)), simple))
        found = plan.memo["observed"] = made
    return found


def run_level(level: Level, values: dict[str, Any], cached: Cached | None = None) -> None:
    """A plain run: the level's steps between pipeline start and end events."""
    name = level.plan.name
    level.emit("on_pipeline_start", name, dict(values) if cached is None else _shown(values))
    started = perf_counter()
    error: BaseException | None = None
    try:
        if cached is None:
            run_steps(level, values)
        else:
            cached_steps(level, values, cached, 0)
            read(values, level.plan.outputs)  # returned by the run: read before the end event
    except BaseException as exc:
        error = exc
        raise
    finally:
        outputs = {o: values[o] for o in level.plan.outputs if o in values}
        if cached is not None:
            outputs = _shown(outputs)
        level.emit("on_pipeline_end", name, outputs, perf_counter() - started, error=error)


def _shown(values: dict[str, Any]) -> dict[str, Any]:
    """What callbacks see of a cached level's values: names only, read values only."""
    return {k: v for k, v in caching.visible(values).items() if not isinstance(v, Unread)}


class _Hooks:
    """The node and item handlers of a level's callbacks, looked up once per run or map."""

    __slots__ = (
        "backend", "cache", "call", "item_cached", "item_end", "item_start", "node_cached",
        "node_end", "node_start",
    )  # fmt: skip

    def __init__(self, level: Level) -> None:
        run, callbacks = level.run, level.config.callbacks
        handlers = run.dispatcher.handlers
        self.node_start = handlers(callbacks, "on_node_start")
        self.node_end = handlers(callbacks, "on_node_end")
        self.node_cached = handlers(callbacks, "on_node_cached")
        self.item_start = handlers(callbacks, "on_map_item_start")
        self.item_end = handlers(callbacks, "on_map_item_end")
        self.item_cached = handlers(callbacks, "on_map_item_cached")
        self.backend, self.cache = run.labels(level.config)
        # Every event of an observed run comes from the thread running it: no lock needed.
        self.call = run.dispatcher.call_alone


def map_level(
    level: Level,
    base: dict[str, Any],
    names: tuple[str, ...],
    items: Any,
    total: int,
    cached: tuple[list[dict[str, Any]], Cached] | None = None,
) -> list[dict[str, Any]]:
    """Every item in order, between map start and end events; fails at the first failure.

    ``cached`` is each item's values (inputs) and what ``prepare`` made of them.
    """
    map_id = level.plan.name
    level.emit("on_map_start", map_id, total)
    hooks = _Hooks(level)
    call, starts, ends = hooks.call, hooks.item_start, hooks.item_end
    clock = perf_counter
    started = clock()
    outputs: list[dict[str, Any]] = []
    # What level.item(index, total) makes, with the parts every item shares taken once.
    shared = (level.run, level.plan, level.config, level.depth, level.hierarchy, level.entered)
    rest, prefix = (level.offload, level.processes, level.session, level.parent), level.item_path
    try:
        for index, row in enumerate(items):
            item_level = Level(*shared, (*prefix, index), total, *rest)
            if cached is not None:
                values = cached[0][index]
                if cached[1].hits(index):  # resolved by signatures alone
                    _item_from_cache(item_level, map_id, values, cached[1], index, hooks)
                    outputs.append(values)
                    continue
            item = dict(zip(names, row, strict=True))
            if cached is None:
                values = {**base, **item}
            if starts:
                ctx = CallbackContext(item_level, None, None, 1)
                call(starts, "on_map_item_start", (map_id, index, item, ctx))
            begun = clock()
            error: BaseException | None = None
            try:
                if cached is None:
                    run_steps(item_level, values, hooks)
                else:
                    cached_steps(item_level, values, cached[1], index, hooks)
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
    if cached is not None:
        read_all(cached[1].quick.cache, outputs, level.plan.outputs)
    return outputs


def _item_from_cache(
    level: Level, map_id: str, values: dict[str, Any], cached: Cached, item: int, hooks: _Hooks
) -> None:
    # As nodes.from_cache: every node a hit, then on_map_item_cached instead of start/end.
    sigs = cached_steps(level, values, cached, item, hooks)
    if hooks.item_cached:
        ctx = CallbackContext(level, None, None, 1)
        hooks.call(hooks.item_cached, "on_map_item_cached", (map_id, item, sigs[-1], ctx))


def cached_steps(
    level: Level, values: dict[str, Any], cached: Cached, item: int, hooks: _Hooks | None = None
) -> list[str]:
    """Each step in order: a hit (published, unread unless read with its entry) or a run."""
    hooks = hooks or _Hooks(level)
    call, hit_handlers = hooks.call, hooks.node_cached
    quick, sigs, found = cached.quick, cached.sigs[item], (cached.held, cached.entries)
    quick.redo = partial(_remade, level, quick, hooks)  # for this item's unread hits
    report = level.run.report
    keep = report._rows.append
    name, item_path, labels = level.plan.name, level.item_path, (hooks.backend, hooks.cache)
    for index, (step, spec, path, _) in enumerate(_compiled(level.plan)):
        sig, node_id = sigs[index], step.id
        if not quick.hit(values, index, spec, sig, found):
            _miss(level, values, quick, index, sig, hooks)
            continue
        report.cache_hits += 1
        keep((path, node_id, name, 0, item_path, "cached", 0.0, 1, sig, *labels))
        if hit_handlers:
            ctx = CallbackContext(level, node_id, None, 1)
            call(hit_handlers, "on_node_cached", (node_id, sig, ctx))
    return sigs


def _remade(
    level: Level, quick: QuickLevel, hooks: _Hooks, index: int, values: dict[str, Any], sig: str
) -> Any:
    # A hit whose stored value cannot be read: its node runs again, as a miss does (events,
    # record, store), on the inputs it had (a level's values are never rebound).
    fresh = dict(values)
    _miss(level, fresh, quick, index, sig, hooks)
    return stored(_compiled(level.plan)[index][1], fresh)


def _miss(
    level: Level, values: dict[str, Any], quick: QuickLevel, index: int, sig: str, hooks: _Hooks
) -> None:
    # A node that missed: its unread inputs are read, then it runs and is stored.
    compiled = _compiled(level.plan)[index]
    read(values, compiled[1].names)
    _run(level, values, compiled, hooks, (quick, index, sig))


def run_steps(level: Level, values: dict[str, Any], hooks: _Hooks | None = None) -> None:
    """Each step in order: node start event, call, record, node end event."""
    hooks = hooks or _Hooks(level)
    for compiled in _compiled(level.plan):
        _run(level, values, compiled, hooks)


def _run(
    level: Level,
    values: dict[str, Any],
    compiled: _Node,
    hooks: _Hooks,
    miss: tuple[QuickLevel, int, str] | None = None,
) -> None:
    # As nodes.run_function: start event, call, (store, for a cache ``miss``), record, end.
    step, spec, path, simple = compiled
    node_id, run, starts, ends = step.id, level.run, hooks.node_start, hooks.node_end
    if simple is None:
        args, kwargs = spec.arguments(values)
    else:
        args, kwargs = [values[a] for a in simple], {}
    inputs = spec.inputs(values) if starts else None
    started = perf_counter()
    if starts:
        ctx = CallbackContext(level, node_id, None, 1)
        hooks.call(starts, "on_node_start", (node_id, inputs, ctx))
    try:
        if simple is None:
            spec.publish(spec.fn(*args, **kwargs), values)
        else:
            values[spec.outs[0]] = spec.fn(*args)
    except Exception as exc:
        fail(level, step, exc, perf_counter() - started, 1, {})
        raise
    duration = perf_counter() - started
    run.nodes_executed += 1
    sig = None
    if miss is not None:
        quick, index, sig = miss
        quick.keep(sig, index, spec, values)
        run.report.cache_misses += 1
    run.report._rows.append(  # what nodes.record makes, made into a record when read
        (path, node_id, level.plan.name, 0, level.item_path, "executed", duration, 1, sig,
         hooks.backend, hooks.cache)
    )  # fmt: skip
    if ends:
        ctx = CallbackContext(level, node_id, None, 1)
        outputs = {o: values[o] for o in spec.outs}
        hooks.call(ends, "on_node_end", (node_id, outputs, duration, ctx))


def columns_of(outputs: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """One list per output name, in item order."""
    return {name: [values[name] for values in outputs] for name in names}
