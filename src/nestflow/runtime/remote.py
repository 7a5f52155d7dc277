"""Whole map items shipped to workers: ItemRun out, ItemResult back, events replayed here.

A worker runs the item with the same runner as the coordinator, at the same absolute
location (depth, path, item path, run and trace ids), so notes and records read
exactly as if the item had run here. It calls no callbacks: it records the events,
and the coordinator replays them, in order, to the callbacks of the matching level
before it delivers the item's result.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from dataclasses import dataclass, field, replace
from time import perf_counter
from typing import TYPE_CHECKING, Any

import cloudpickle

from nestflow.core.config import EffectiveConfig
from nestflow.engines import dask as dask_engine
from nestflow.engines import processes
from nestflow.engines.backends import LocalBackend
from nestflow.errors import RemoteExecutionError, SerializationError
from nestflow.runtime.context import Level, RelayedEvent, RunState
from nestflow.runtime.plan import LevelPlan, plan_for
from nestflow.runtime.report import ErrorRecord, NodeRecord
from nestflow.runtime.settings import child_config

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline


@dataclass(frozen=True, slots=True)
class Location:
    """Where the item sits in the coordinator's run."""

    depth: int
    hierarchy: tuple[str, ...]
    entered: tuple[str, ...]
    item_path: tuple[int, ...]
    item_total: int | None
    run_id: str
    trace_id: str


@dataclass(slots=True)
class ItemResult:
    """What a worker sends back for one item."""

    values: dict[str, Any]
    events: list[RelayedEvent] = field(default_factory=list)
    records: list[NodeRecord] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    nodes_executed: int = 0
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class ItemRun:
    """One map item as a self-contained, picklable task."""

    pipeline: Pipeline
    inputs: dict[str, Any]
    config: EffectiveConfig
    """The level's resolved configuration, without callbacks (they stay in the coordinator)."""
    outputs: tuple[str, ...]
    location: Location
    relay: bool
    carrier: dict[str, str] = field(default_factory=dict)

    def run(self) -> ItemResult:
        """Run the item here (in a worker) with an embedded local scheduler."""
        from nestflow.runtime import runner

        state = RunState(self.pipeline.name, relay=self.relay)
        where = self.location
        state.run_id, state.trace_id = where.run_id, where.trace_id
        level = Level(
            run=state,
            plan=plan_for(self.pipeline, self.outputs),
            config=self.config,
            depth=where.depth,
            hierarchy=where.hierarchy,
            entered=where.entered,
            item_path=where.item_path,
            item_total=where.item_total,
        ).with_pools()
        values = dict(self.inputs)
        result = ItemResult(values={})
        try:
            asyncio.run(runner.run_steps(level, values))
        except Exception as exc:
            result.error = exc
        finally:
            state.finish(result.error)
            if "distributed" in sys.modules:
                dask_engine.rejoin_if_seceded()
        result.values = {o: values[o] for o in self.outputs if o in values}
        result.events = state.relayed or []
        result.records = state.report.records
        result.errors = state.report.errors
        result.nodes_executed = state.nodes_executed
        return _sendable(result, " > ".join(self.location.hierarchy))


def _travels(value: Any) -> bool:
    try:
        cloudpickle.loads(cloudpickle.dumps(value))
    except Exception:
        return False
    return True


def _sendable(result: ItemResult, where: str) -> ItemResult:
    # Whatever cannot make the trip back is replaced by an error that can, so the
    # coordinator always gets the events and records of the item.
    error = result.error
    if error is not None and not _travels(error):
        remote = RemoteExecutionError(
            f"{type(error).__name__}: {error} (raised in a worker; the exception cannot be "
            "rebuilt in the coordinating process)",
            remote_type=type(error).__name__,
            remote_traceback="".join(traceback.format_exception(error)),
        )
        for note in getattr(error, "__notes__", ()):
            remote.add_note(note)
        result.error = remote
    if not _travels(result.values):
        names = [name for name, value in result.values.items() if not _travels(value)]
        result.values = {}
        result.error = result.error or SerializationError(
            f"Outputs {', '.join(f'`{n}`' for n in names)} of `{where}` cannot be pickled back "
            "from the worker. Use map_execution='threaded', or return plain data."
        )
    if not _travels(result.events):
        result.events = [replace(e, args=tuple(map(_shown, e.args))) for e in result.events]
    return result


def _shown(value: Any) -> Any:
    return value if _travels(value) else repr(value)


def item_run(level: Level, values: dict[str, Any]) -> ItemRun:
    """The task for the item that ``level`` (an item level) would run here."""
    run = level.run
    return ItemRun(
        pipeline=level.plan.pipeline,
        inputs=values,
        config=replace(level.config, callbacks=(), backend=_in_worker(level.config.backend)),
        outputs=level.plan.outputs,
        location=Location(
            depth=level.depth,
            hierarchy=level.hierarchy,
            entered=level.entered,
            item_path=level.item_path,
            item_total=level.item_total,
            run_id=run.run_id,
            trace_id=run.trace_id,
        ),
        relay=listens(level.plan, level.config),
    )


def _in_worker(backend: Any) -> LocalBackend:
    # Inside an item task the item's nodes run in that worker: threaded or async if the
    # level asks for it, otherwise one at a time.
    mode = backend.node_execution if backend.node_execution in ("threaded", "async") else None
    workers = getattr(backend, "max_workers", None)
    return LocalBackend(node_execution=mode or "sequential", max_workers=workers)


def ships_items(level: Level) -> bool:
    """Whether the items of a map at ``level`` travel whole to workers (SPEC 14.22)."""
    backend = level.config.backend
    if level.session is not None:
        return bool(getattr(backend, "ships_map_items", False))
    return isinstance(backend, LocalBackend) and backend.map_execution == "parallel"


async def run_shipped(
    level: Level, map_id: str, values: dict[str, Any], item: dict[str, Any], workers: int
) -> dict[str, Any]:
    """One map item run whole in a worker, between item start and end events here."""
    index = level.item_path[-1]
    level.emit("on_map_item_start", map_id, index, item)
    started = perf_counter()
    error: BaseException | None = None
    try:
        task = item_run(level, values)
        payload = _dumps(level, task)
        if level.session is not None:
            future = level.session.submit(task)
        else:
            future = processes.decoded(processes.shared_pool(workers).submit(payload))
        return absorb(level, await asyncio.wrap_future(future))
    except BaseException as exc:
        error = exc
        raise
    finally:
        level.emit("on_map_item_end", map_id, index, perf_counter() - started, error=error)


def _dumps(level: Level, task: ItemRun) -> bytes:
    try:
        return processes.dumps_call(ItemRun.run, [task], {})
    except Exception as exc:
        bad = [name for name, value in task.inputs.items() if not _travels(value)]
        what = f"input {', '.join(f'`{n}`' for n in bad)}" if bad else "its pipeline"
        raise SerializationError(
            f"Map item {level.item_path[-1]} of `{' > '.join(level.hierarchy)}` cannot be sent "
            f"to a worker process: {what} cannot be pickled ({exc}). Use "
            "map_execution='threaded' to keep the items in this process, or create the object "
            "inside the node."
        ) from exc


def listens(plan: LevelPlan, config: EffectiveConfig) -> bool:
    """Whether any level of ``plan`` (at this configuration) has callbacks to relay to."""
    if config.callbacks:
        return True
    return any(
        step.child is not None and listens(step.child, child_config(step.child.pipeline, config))
        for step in plan.steps
    )


def absorb(level: Level, result: ItemResult) -> dict[str, Any]:
    """Replay the item's events at their levels, merge its report, then give or raise its result."""
    levels: dict[tuple[str, ...], Level] = {level.entered: level}
    for event in result.events:
        target = replace(
            _level_at(levels, level, event.entered),
            item_path=event.item_path,
            item_total=event.item_total,
        )
        target.emit(
            event.hook, *event.args, node_id=event.node_id, error=event.error, attempt=event.attempt
        )
    report = level.run.report
    for record in result.records:
        report.add(record)
    report.errors.extend(result.errors)
    level.run.nodes_executed += result.nodes_executed
    if result.error is not None:
        raise result.error
    return result.values


def _level_at(levels: dict[tuple[str, ...], Level], base: Level, entered: tuple[str, ...]) -> Level:
    found = levels.get(entered)
    if found is not None:
        return found
    parent = _level_at(levels, base, entered[:-1])
    step = next(s for s in parent.plan.steps if s.id == entered[-1])
    assert step.child is not None
    mapped = bool(step.node.map_over)  # type: ignore[union-attr]
    config = child_config(step.child.pipeline, parent.config)
    found = levels[entered] = parent.child(
        step.child, config, entered=entered[-1], mapped=mapped, open_session=False
    )
    return found
