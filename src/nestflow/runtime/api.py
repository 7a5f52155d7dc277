"""Entry points behind ``Pipeline.run``, ``map``, ``arun``, ``amap`` and the config views.

Every call checks its inputs against the memoised plan before anything runs, then hands
the root level to a driver: the synchronous one when the plan compiled for it (every node
one at a time), else the asynchronous one. Both run the same steps (``runtime/step.py``).
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from nestflow.core.usage import METER
from nestflow.runtime import drive_sync
from nestflow.runtime.context import Level, RunState
from nestflow.runtime.drivers import forced
from nestflow.runtime.failure import cleaned
from nestflow.runtime.inputs import (
    check_inputs,
    on_error_option,
    requested_outputs,
    split_call,
)
from nestflow.runtime.items import MapCall, collections, map_names
from nestflow.runtime.loop import run_sync
from nestflow.runtime.plan import plan_for
from nestflow.runtime.report import Outputs, RunReport, announce, deliver
from nestflow.runtime.settings import root_config
from nestflow.runtime.step import compiled
from nestflow.runtime.views import config_labels, describe_config, effective_config

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline

__all__ = [  # the configuration views are here for Pipeline, which imports only this module
    "amap", "arun", "close", "config_labels", "describe_config", "effective_config", "map", "run",
]  # fmt: skip


class _Call:
    """One validated call: the plan, the inputs and how to shape the result."""

    __slots__ = ("bare", "is_map", "map_mode", "mapped", "on_error", "pipeline", "plan", "values")

    def __init__(
        self, pipeline: Pipeline, positional: Any, kwargs: dict[str, Any], method: str
    ) -> None:
        is_map = method in ("map", "amap")
        values, opts = split_call(pipeline, method, positional, dict(kwargs))
        requested, self.bare = requested_outputs(opts)
        self.pipeline = pipeline
        self.plan = plan_for(pipeline, requested)
        self.is_map = is_map
        self.mapped: tuple[str, ...] = ()
        self.map_mode = opts.get("map_mode", "zip")
        self.on_error = on_error_option(opts.get("on_error", "raise"))
        if is_map:
            self.mapped = map_names(
                opts.get("map_over"), pipeline.inputs, f"pipeline `{pipeline.name}`"
            )
        check_inputs(pipeline, method, self.plan, values)
        bound = pipeline.bound_inputs
        self.values = {**bound, **values} if bound else values

    def map_call(self) -> MapCall:
        """The root map: the mapped inputs' collections are its items."""
        columns = collections(self.values, self.mapped)
        shown = {**self.values, **dict(zip(self.mapped, columns, strict=True))}
        base = {k: v for k, v in self.values.items() if k not in self.mapped}
        keep_going = self.on_error == "continue"
        return MapCall(
            self.pipeline.name, shown, base, self.mapped, columns, self.map_mode, keep_going
        )

    def shape(self, values: Mapping[str, Any], report: RunReport) -> Any:
        if self.bare:
            return values[self.plan.outputs[0]]
        return Outputs({o: values[o] for o in self.plan.outputs}, report)

    def root(self) -> tuple[RunState, Level]:
        """The run's state and its root level."""
        state = RunState(self.pipeline.name)
        announce(state.report)
        level = Level.root(state, compiled(self.pipeline, self.plan, root_config(self.pipeline)))
        if self.is_map and level.hooks:
            level.register(mapped=True)
        return state, level

    def synchronous(self, level: Level) -> bool:
        """Whether the synchronous driver takes the root level."""
        ready = level.compiled.maps_sync if self.is_map else level.compiled.sync
        return ready and forced.get() != "async"


# --- run ---------------------------------------------------------------------------------


def run(pipeline: Pipeline, positional: Any, kwargs: dict[str, Any]) -> Any:
    """Run ``pipeline`` once; see ``Pipeline.run``."""
    call = _Call(pipeline, positional, kwargs, "run")
    state = RunState(pipeline.name)
    announce(state.report)
    level = Level.root(state, compiled(pipeline, call.plan, root_config(pipeline)))
    values = dict(call.values)
    synchronous = level.compiled.sync and forced.get() != "async"
    current = METER.set(state)  # record_usage adds to this run
    try:
        if synchronous:
            state.drivers.append("sync")
            if level.hooks or state.cached:
                drive_sync.run_level(level, values)
            else:  # nothing to announce, nothing unread: the level's steps alone
                drive_sync.run_steps(level, values)
        else:
            from nestflow.runtime import drive_async  # an async or concurrent run only

            state.drivers.append("async")
            run_sync(lambda: drive_async.run_level(level, values))
    except BaseException as exc:
        close(state, exc)
        raise cleaned(exc)  # noqa: B904 (it is the exception being handled: no chaining)
    finally:
        METER.reset(current)
    close(state, None)
    return call.shape(values, state.report)


async def arun(pipeline: Pipeline, positional: Any, kwargs: dict[str, Any]) -> Any:
    """Run ``pipeline`` once on the caller's event loop."""
    call = _Call(pipeline, positional, kwargs, "arun")
    state, level = call.root()
    values = dict(call.values)
    current = METER.set(state)  # record_usage adds to this run
    try:
        if call.synchronous(level):
            state.uses("sync")
            drive_sync.run_level(level, values)
        else:
            from nestflow.runtime import drive_async

            state.uses("async")
            await drive_async.run_level(level, values)
    except BaseException as exc:
        close(state, exc)
        raise cleaned(exc)  # noqa: B904
    finally:
        METER.reset(current)
    close(state, None)
    return call.shape(values, state.report)


def close(state: RunState, error: BaseException | None) -> None:
    """Finish and deliver the report; then raise a strict cache's write failure, if any."""
    deliver(state.finish(error))
    if state.flush_failure is not None and error is None:
        raise state.flush_failure


# --- map -------------------------------------------------------------------------------------


def map(pipeline: Pipeline, positional: Any, kwargs: dict[str, Any]) -> Any:
    """Run ``pipeline`` once per item; see ``Pipeline.map``."""
    call = _Call(pipeline, positional, kwargs, "map")
    state, level = call.root()
    current = METER.set(state)  # record_usage adds to this run
    try:
        if call.synchronous(level):
            state.uses("sync")
            results = drive_sync.map_pipeline(level, call.map_call())
        else:
            state.uses("async")
            results = run_sync(lambda: _amap(level, call))
    except BaseException as exc:
        close(state, exc)
        raise cleaned(exc)  # noqa: B904
    finally:
        METER.reset(current)
    close(state, None)
    return call.shape(results, state.report)


async def amap(pipeline: Pipeline, positional: Any, kwargs: dict[str, Any]) -> Any:
    """Map on the caller's event loop."""
    call = _Call(pipeline, positional, kwargs, "amap")
    state, level = call.root()
    current = METER.set(state)  # record_usage adds to this run
    try:
        if call.synchronous(level):
            state.uses("sync")
            results = drive_sync.map_pipeline(level, call.map_call())
        else:
            state.uses("async")
            results = await _amap(level, call)
    except BaseException as exc:
        close(state, exc)
        raise cleaned(exc)  # noqa: B904
    finally:
        METER.reset(current)
    close(state, None)
    return call.shape(results, state.report)


def _amap(level: Level, call: _Call) -> Coroutine[Any, Any, dict[str, Any]]:
    from nestflow.runtime import drive_async

    return drive_async.map_pipeline(level, call.map_call())
