"""Entry points behind ``Pipeline.run``, ``map``, ``arun``, ``amap`` and the config views.

Every call checks its inputs against the memoised plan before anything runs, then
takes the fast path when nothing in the run needs more, else the general runner.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from time import perf_counter
from typing import TYPE_CHECKING, Any

from nestflow.runtime import caching, fast, observed, quick, runner
from nestflow.runtime.context import Level, RunState, new_run_id, new_trace_id
from nestflow.runtime.drivers import forced
from nestflow.runtime.failure import ErrorContext, annotate, context_of
from nestflow.runtime.inputs import (
    MAP_OPTIONS,
    RUN_OPTIONS,
    check_inputs,
    requested_outputs,
    split_call,
)
from nestflow.runtime.items import collections, map_names, rows
from nestflow.runtime.loop import run_sync
from nestflow.runtime.plan import plan_for
from nestflow.runtime.report import ErrorRecord, Outputs, RunReport, deliver
from nestflow.runtime.settings import root_config
from nestflow.runtime.views import config_labels, describe_config, effective_config

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline

__all__ = [  # the configuration views are here for Pipeline, which imports only this module
    "amap", "arun", "close", "config_labels", "describe_config", "effective_config", "map", "run",
]  # fmt: skip


class _Call:
    """One validated call: the plan, the inputs and how to shape the result."""

    __slots__ = ("bare", "is_map", "map_mode", "mapped", "pipeline", "plan", "values")

    def __init__(
        self, pipeline: Pipeline, positional: Any, kwargs: dict[str, Any], is_map: bool
    ) -> None:
        values, opts = split_call(
            pipeline, positional, dict(kwargs), MAP_OPTIONS if is_map else RUN_OPTIONS
        )
        requested, self.bare = requested_outputs(opts)
        self.pipeline = pipeline
        self.plan = plan_for(pipeline, requested)
        self.is_map = is_map
        self.mapped: tuple[str, ...] = ()
        self.map_mode = opts.get("map_mode", "zip")
        if is_map:
            self.mapped = map_names(
                opts.get("map_over"), pipeline.inputs, f"pipeline `{pipeline.name}`"
            )
        check_inputs(pipeline, self.plan, values)
        bound = pipeline.bound_inputs
        self.values = {**bound, **values} if bound else values

    def shape(self, values: Mapping[str, Any], report: RunReport) -> Any:
        if self.bare:
            return values[self.plan.outputs[0]]
        return Outputs({o: values[o] for o in self.plan.outputs}, report)

    def is_quick(self) -> bool:
        found = self.plan.memo.get("quick")
        if found is None:
            found = self.plan.memo["quick"] = quick.qualifies(self.plan, root_config(self.pipeline))
        return bool(found)

    def quick_level(self, total: int | None = None) -> tuple[RunState, quick.QuickLevel]:
        state = RunState(self.pipeline.name)
        state.report.drivers = ("sync",)
        state.uses_cache = True
        level = Level(
            run=state,
            plan=self.plan,
            config=root_config(self.pipeline),
            hierarchy=(self.plan.name,),
            item_total=total,
        )
        return state, quick.QuickLevel(level)

    def is_observed(self) -> bool:
        found = self.plan.memo.get("observed-qualifies")
        if found is None:
            config = root_config(self.pipeline)
            found = self.plan.memo["observed-qualifies"] = observed.qualifies(self.plan, config)
        return bool(found)

    def fast_level(self) -> fast.FastLevel | None:
        found = self.plan.memo.get("fast")
        if found is None:
            compiled = fast.compile_fast(self.plan, root_config(self.pipeline))
            found = self.plan.memo["fast"] = compiled if compiled is not None else False
        return found if isinstance(found, fast.FastLevel) else None


# --- run -------------------------------------------------------------------------------------


def run(pipeline: Pipeline, positional: Any, kwargs: dict[str, Any]) -> Any:
    """Run ``pipeline`` once; see ``Pipeline.run``."""
    call = _Call(pipeline, positional, kwargs, is_map=False)
    done = _looped(call)
    return done if done is not _GENERAL else run_sync(lambda: _run_general(call))


async def arun(pipeline: Pipeline, positional: Any, kwargs: dict[str, Any]) -> Any:
    """Run ``pipeline`` once on the caller's event loop."""
    call = _Call(pipeline, positional, kwargs, is_map=False)
    done = _looped(call)
    return done if done is not _GENERAL else await _run_general(call)


_GENERAL: Any = object()
"""What ``_looped`` returns for a call that only the general runner can take."""


def _looped(call: _Call) -> Any:
    """The result of ``call`` on the first plain loop that can take it, else ``_GENERAL``."""
    mapped = call.is_map
    if forced.get() == "async":
        return _GENERAL
    level = call.fast_level()
    if level is not None:
        return _map_fast(call, level) if mapped else _run_fast(call, level)
    if call.is_quick():
        return _map_quick(call) if mapped else _run_quick(call)
    if call.is_observed():
        return _map_observed(call) if mapped else _run_observed(call)
    return _GENERAL


def _run_fast(call: _Call, level: fast.FastLevel) -> Any:
    values = dict(call.values)
    marks: list[float] = [perf_counter()]
    try:
        fast.run_fast(level, values, marks.append)
    except Exception as exc:
        marks.append(perf_counter())
        _finish_fast(call, marks, exc, mapped=False)
        raise
    return call.shape(values, _finish_fast(call, marks, None, mapped=False))


def close(state: RunState, error: BaseException | None) -> None:
    """Finish and deliver the report; then raise a strict cache's write failure, if any."""
    deliver(state.finish(error))
    if state.flush_failure is not None and error is None:
        raise state.flush_failure


@contextmanager
def closing(state: RunState) -> Iterator[None]:
    """Close ``state`` when the block ends, with the exception that ended it, if any."""
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        close(state, error)


def _run_quick(call: _Call) -> Any:
    values = dict(call.values)
    state = _quickly(call, None, lambda level: quick.run_level(level, values))
    return call.shape(values, state.report)


def _map_quick(call: _Call) -> Any:
    columns = collections(call.values, call.mapped)
    total, found = rows(call.mapped, columns, call.map_mode)
    base = {k: v for k, v in call.values.items() if k not in call.mapped}
    items = [{**base, **dict(zip(call.mapped, row, strict=True))} for row in found]
    state = _quickly(call, total, lambda level: quick.map_level(level, items))
    results = {name: [values[name] for values in items] for name in call.plan.outputs}
    return call.shape(results, state.report)


def _quickly(
    call: _Call, total: int | None, work: Callable[[quick.QuickLevel], object]
) -> RunState:
    """Run ``work`` on the cached loop; the report is settled and delivered whatever happens."""
    state, level = call.quick_level(total)
    error: BaseException | None = None
    try:
        work(level)
    except BaseException as exc:
        error = exc
        raise
    finally:
        level.settle(state)
        close(state, error)
    return state


def _run_observed(call: _Call) -> Any:
    state = RunState(call.pipeline.name)
    state.report.drivers = ("sync",)
    level = Level.root(state, call.plan, root_config(call.pipeline))
    values = dict(call.values)
    cached = None
    if level.config.cache is not None:
        cached = observed.prepare(level, [values], plain=True)
        if cached is None:
            return _GENERAL  # not signed: the general runner takes it
    with closing(state):
        observed.run_level(level, values, cached)
    return call.shape(values, state.report)


async def _run_general(call: _Call) -> Any:
    state = RunState(call.pipeline.name)
    state.report.drivers = ("async",)
    level = Level.root(state, call.plan, root_config(call.pipeline))
    values = dict(call.values)
    with closing(state):
        await runner.run_pipeline(level, values)  # reads a cached root's outputs
    return call.shape(values, state.report)


# --- map -------------------------------------------------------------------------------------


def map(pipeline: Pipeline, positional: Any, kwargs: dict[str, Any]) -> Any:
    """Run ``pipeline`` once per item; see ``Pipeline.map``."""
    call = _Call(pipeline, positional, kwargs, is_map=True)
    done = _looped(call)
    return done if done is not _GENERAL else run_sync(lambda: _map_general(call))


async def amap(pipeline: Pipeline, positional: Any, kwargs: dict[str, Any]) -> Any:
    """Map on the caller's event loop."""
    call = _Call(pipeline, positional, kwargs, is_map=True)
    done = _looped(call)
    return done if done is not _GENERAL else await _map_general(call)


def _map_fast(call: _Call, level: fast.FastLevel) -> Any:
    columns = collections(call.values, call.mapped)
    total, items = rows(call.mapped, columns, call.map_mode)
    base = {k: v for k, v in call.values.items() if k not in call.mapped}
    marks: list[float] = [perf_counter()]
    try:
        results = fast.map_fast(
            level, base, call.mapped, items, total, list(call.plan.outputs), marks.append
        )
    except Exception as exc:
        marks.append(perf_counter())
        _finish_fast(call, marks, exc, mapped=True)
        raise
    return call.shape(results, _finish_fast(call, marks, None, mapped=True))


def _map_root(call: _Call, driver: str) -> tuple[RunState, Level, list[Any], dict[str, Any]]:
    """The root level of a map, the mapped columns and the rest of the inputs."""
    state = RunState(call.pipeline.name)
    state.report.drivers = (driver,)
    level = Level.root(state, call.plan, root_config(call.pipeline))
    state.metadata[call.pipeline.name]["mapped"] = True
    columns = collections(call.values, call.mapped)
    base = {k: v for k, v in call.values.items() if k not in call.mapped}
    return state, level, columns, base


def _map_observed(call: _Call) -> Any:
    state, level, columns, base = _map_root(call, "sync")
    # Mapped generators are read once: a call handed to the general runner gets the lists.
    call.values = {**call.values, **dict(zip(call.mapped, columns, strict=True))}
    name = call.pipeline.name
    items: Any = None
    cached = None
    if level.config.cache is not None:
        try:  # signed up front: anything that goes wrong here, the general runner reports
            total, found = rows(call.mapped, columns, call.map_mode)
            items = list(found)
            inputs = [{**base, **dict(zip(call.mapped, row, strict=True))} for row in items]
        except Exception:
            return _GENERAL  # not signed: the general runner takes it
        prepared = observed.prepare(level, inputs, plain=False)
        if prepared is None:
            return _GENERAL  # not signed: the general runner takes it
        cached = (inputs, prepared)
    level.emit("on_pipeline_start", name, dict(call.values))
    error: BaseException | None = None
    results: dict[str, list[Any]] = {}
    try:
        if items is None:
            total, items = rows(call.mapped, columns, call.map_mode)
        outputs = observed.map_level(level, base, call.mapped, items, total, cached)
        results = observed.columns_of(outputs, call.plan.outputs)
    except BaseException as exc:
        error = exc
        raise
    finally:
        took = perf_counter() - state.started
        level.emit("on_pipeline_end", name, results, took, error=error)
        close(state, error)
    return call.shape(results, state.report)


async def _map_general(call: _Call) -> Any:
    state, level, columns, base = _map_root(call, "async")
    name = call.pipeline.name
    level.emit("on_pipeline_start", name, dict(call.values))
    error: BaseException | None = None
    results: dict[str, list[Any]] = {}
    try:
        results = await runner.map_pipeline(level, name, base, call.mapped, columns, call.map_mode)
        if state.uses_cache:
            await caching.ready(call.plan.outputs, results)
    except BaseException as exc:
        error = exc
        raise
    finally:
        shown = caching.visible(results) if state.uses_cache else results
        level.emit("on_pipeline_end", name, shown, perf_counter() - state.started, error=error)
        close(state, error)
    return call.shape(results, state.report)


# --- fast-path reports -----------------------------------------------------------------------


def _finish_fast(
    call: _Call, marks: list[float], error: Exception | None, mapped: bool
) -> RunReport:
    config = root_config(call.pipeline)
    report = RunReport(
        run_id=new_run_id(),
        trace_id=new_trace_id(),
        pipeline=call.pipeline.name,
        status="ok" if error is None else "failed",
        duration_s=marks[-1] - marks[0] if error is not None else perf_counter() - marks[0],
        drivers=("sync",),
        _build=lambda: fast.build_records(call.plan, marks, error, config.backend.label, mapped),
    )
    if error is not None:
        _annotate_fast(error, report, marks)
        report.errors.append(_error_record(error))
    deliver(report)
    return report


def _error_record(error: Exception) -> ErrorRecord:
    context = context_of(error)
    return ErrorRecord(
        node_path=context.path if context is not None else "",
        exception_type=type(error).__name__,
        message=str(error),
        traceback="".join(traceback.format_exception(error)),
        item_path=context.item_path if context is not None else (),
        attempts=1,
    )


def _annotate_fast(error: Exception, report: RunReport, marks: list[float]) -> None:
    where = fast.locate(error.__traceback__)
    if where is None:
        return
    annotate(
        error,
        ErrorContext(
            levels=where.levels,
            node=where.node,
            depth=len(where.levels) - 1,
            item_path=where.item_path,
            item_total=where.item_total,
            trace_id=report.trace_id,
            run_id=report.run_id,
            elapsed_s=marks[-1] - marks[0],
            nodes_executed=sum(1 for m in marks[1:-1] if isinstance(m, float)),
            node_config={"timeout": None, "retries": 0, "cache": "None"},
        ),
    )
