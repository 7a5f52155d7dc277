"""Whole map items shipped to workers: ItemRun out, ItemResult back, events replayed here.

A worker runs the item with the same drivers and steps as the coordinator, at the same absolute
location (depth, path, item path, run and trace ids), so notes and records read
exactly as if the item had run here. It calls no callbacks: it records the events,
and the coordinator replays them, in order, to the callbacks of the matching level
before it delivers the item's result.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field, replace
from time import perf_counter, time
from typing import TYPE_CHECKING, Any

import cloudpickle

from nestflow.core import usage
from nestflow.core.config import EffectiveConfig
from nestflow.engines import dask as dask_engine
from nestflow.engines import executors, processes
from nestflow.engines.backends import LocalBackend
from nestflow.errors import RemoteExecutionError, SerializationError
from nestflow.runtime import caching, context, guard, tracing
from nestflow.runtime.caching import Batch
from nestflow.runtime.context import Level, RelayedEvent, RunState, new_key
from nestflow.runtime.items import MapCall
from nestflow.runtime.loop import run_here
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
    steps_taken: int = 0
    """Node executions the run had counted when the item was sent (``max_total_steps``)."""
    started_at: float = 0.0
    """When the run started (Unix seconds): a worker's clock for ``max_run_seconds`` goes
    on from there, however long the item waited to be taken."""


@dataclass(slots=True)
class ItemResult:
    """What a worker sends back for one item."""

    values: dict[str, Any]
    events: list[RelayedEvent] = field(default_factory=list)
    records: list[NodeRecord] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    error: BaseException | None = None
    warnings: list[str] = field(default_factory=list)
    abandoned_threads: list[str] = field(default_factory=list)
    maps: list[tuple[str, ...]] = field(default_factory=list)
    cache_hits: int = 0
    cache_misses: int = 0
    usage: dict[str, float] = field(default_factory=dict)


class ItemShared:
    """What every item of one map shares: pipeline, configuration, outputs, relay flag.

    It is pickled once per map (not once per item) and loaded once per worker process:
    items carry the same bytes, and a worker that has seen them reuses the object, and
    with it the pipeline's memoised plans.
    """

    __slots__ = ("_blob", "codes", "config", "key", "outputs", "pipeline", "relay")

    def __init__(
        self,
        pipeline: Pipeline,
        config: EffectiveConfig,
        outputs: tuple[str, ...],
        relay: bool,
        codes: dict[tuple[str, ...], bytes] | None = None,
        key: int | None = None,
        blob: bytes | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.config = config
        """The level's resolved configuration, without callbacks (they stay here)."""
        self.outputs = outputs
        self.relay = relay
        self.codes = codes or {}
        """Code fingerprints by node path, made here: workers may not have the source."""
        self.key = new_key() if key is None else key
        """Names the shared part in workers' memory: random bits from the operating system,
        so maps of other runs, scripts or hosts on one cluster never share a key."""
        self._blob = blob
        """The pickled form (``blob``), as loaded in a worker or made on first use."""

    def blob(self) -> bytes:
        """The pickled form, made on first use."""
        if self._blob is None:
            parts = {
                "pipeline": self.pipeline,
                "config": self.config,
                "outputs": self.outputs,
                "relay": self.relay,
                "codes": self.codes,
            }
            self._blob = cloudpickle.dumps(parts)
        return self._blob

    def __reduce__(self) -> tuple[Any, tuple[int, bytes]]:
        return (_load_shared, (self.key, self.blob()))


_loaded: OrderedDict[int, ItemShared] = OrderedDict()
_loaded_lock = threading.Lock()
_LOADED_MAX = 32


def _load_shared(key: int, blob: bytes) -> ItemShared:
    with _loaded_lock:
        found = _loaded.get(key)
        if found is not None:
            _loaded.move_to_end(key)
            return found
    shared = ItemShared(**cloudpickle.loads(blob), key=key, blob=blob)
    with _loaded_lock:
        _loaded[key] = shared
        while len(_loaded) > _LOADED_MAX:
            _loaded.popitem(last=False)
    return shared


@dataclass(frozen=True, slots=True)
class ItemRun:
    """One map item as a self-contained, picklable task (SPEC 7.5)."""

    shared: ItemShared
    inputs: dict[str, Any]
    location: Location
    carrier: dict[str, str] = field(default_factory=dict)

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline the item runs."""
        return self.shared.pipeline

    @property
    def config(self) -> EffectiveConfig:
        """The resolved configuration of the item's level, without callbacks."""
        return self.shared.config

    @property
    def outputs(self) -> tuple[str, ...]:
        """The outputs sent back."""
        return self.shared.outputs

    @property
    def relay(self) -> bool:
        """Whether events are recorded for the coordinator."""
        return self.shared.relay

    def run(self) -> ItemResult:
        """Run the item here (in a worker), on the driver its level takes."""
        from nestflow.runtime.step import compiled

        state = RunState(self.pipeline.name, relay=self.relay)
        state.codes = self.shared.codes
        where = self.location
        state.run_id, state.trace_id = where.run_id, where.trace_id
        state.steps_taken = where.steps_taken  # the count goes on from there
        state.started = perf_counter() - (time() - where.started_at)  # and so does the clock
        level = Level.at(
            state,
            compiled(self.pipeline, plan_for(self.pipeline, self.outputs), self.config, self.relay),
            depth=where.depth,
            hierarchy=where.hierarchy,
            entered=where.entered,
            item_path=where.item_path,
            item_total=where.item_total,
        )
        values = dict(self.inputs)
        result = ItemResult(values={})
        try:
            # User spans nest under the item's span; record_usage adds to the item's run.
            with tracing.attached(self.carrier), usage.counting(state):
                _run_and_read(level, values, self.outputs)
        except Exception as exc:
            result.error = exc
        finally:
            state.finish(result.error)
            if "distributed" in sys.modules:
                dask_engine.rejoin_if_seceded()
        result.values = {o: values[o] for o in self.outputs if o in values}
        # Their signature representations too, so lists built from shipped items sign as
        # lists built here do.
        reps = ((caching.REP + o, values.get(caching.REP + o)) for o in self.outputs)
        result.values.update((key, rep) for key, rep in reps if rep is not None)
        result.events = state.relayed or []
        result.records = state.report.records
        result.errors = state.report.errors
        result.cache_hits = state.report.cache_hits
        result.cache_misses = state.report.cache_misses
        result.usage = {} if state.usage is None else state.usage.totals()
        result.abandoned_threads = state.report.abandoned_threads
        result.maps = state.report.maps or []
        notices = context.pending_fallbacks()
        result.warnings = notices[:]
        notices.clear()
        return _sendable(result, " > ".join(self.location.hierarchy))


def _run_and_read(level: Level, values: dict[str, Any], outputs: tuple[str, ...]) -> None:
    from nestflow.runtime import drive_async, drive_sync

    if level.compiled.sync:
        drive_sync.run_steps(level, values)
    else:
        run_here(drive_async.run_steps(level, values))
    caching.read(values, outputs)  # cached outputs are read here: only values travel back


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
        result.events = [e.with_args(tuple(map(_shown, e.args))) for e in result.events]
    return result


def _shown(value: Any) -> Any:
    return value if _travels(value) else repr(value)


def item_shared(level: Level) -> ItemShared:
    """The part common to every item of the map at ``level``."""
    config = replace(level.config, callbacks=(), backend=_in_worker(level.config.backend))
    relay = listens(level.plan, level.config)
    codes = caching.code_fingerprints_below(level.plan, level.config, level.hierarchy, child_config)
    return ItemShared(level.plan.pipeline, config, level.plan.outputs, relay, codes)


def item_run(level: Level, values: dict[str, Any], shared: ItemShared) -> ItemRun:
    """The task for the item that ``level`` (an item level) would run here."""
    run = level.run
    carrier = tracing.carrier_for(level, "") if "carrier" in level.hooks else {}
    return ItemRun(
        shared=shared,
        inputs=values,
        carrier=carrier,
        location=Location(
            depth=level.depth,
            hierarchy=level.hierarchy,
            entered=level.entered,
            item_path=level.item_path,
            item_total=level.item_total,
            run_id=run.run_id,
            trace_id=run.trace_id,
            steps_taken=run.steps_taken,
            started_at=time() - (perf_counter() - run.started),
        ),
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
    if not isinstance(backend, LocalBackend):
        return bool(getattr(backend, "ships_map_items", False))
    return backend.map_execution == "parallel" and context.processes_available()


async def run_shipped(
    level: Level,
    map_id: str,
    values: dict[str, Any],
    names: tuple[str, ...],
    workers: int,
    shared: ItemShared,
) -> dict[str, Any]:
    """One map item run whole in a worker, between item start and end events here."""
    from nestflow.runtime import step

    started = step.item_started(level, map_id, values, names)
    error: BaseException | None = None
    try:
        task = item_run(level, values, shared)
        payload = _dumps(level, task)
        session = _session(level)
        if session is not None:
            future = session.submit(task)
        else:
            future = executors.Processes(workers).submit_pickled(payload)
        return absorb(level, await asyncio.wrap_future(future))
    except BaseException as exc:
        error = exc
        raise
    finally:
        step.item_ended(level, map_id, started, error)


def _session(level: Level) -> Any:
    return getattr(level.executor, "session", None)


def submits_many(level: Level) -> bool:
    """Whether the session of ``level`` takes a whole map's items in one call."""
    return hasattr(_session(level), "submit_many")


async def map_submitted(
    level: Level,
    call: MapCall,
    inputs: list[dict[str, Any]],
    batch: Batch | None,
) -> tuple[list[dict[str, Any]], dict[int, Exception]]:
    """Every item of a map handed to the session at once (``Session.submit_many``).

    The backend queues them (a dask scheduler does); results are absorbed as they
    arrive. Unless the map keeps going, the items not yet finished are cancelled after
    the first failure. Returns the outputs in item order and the failures by item index.
    """
    from nestflow.runtime import drive_async, step

    map_id, names = call.map_id, call.names
    shared = item_shared(level)
    total = len(inputs)
    outputs: list[dict[str, Any]] = [{} for _ in range(total)]
    batch_items: list[tuple[int, Level, ItemRun, dict[str, Any]]] = []
    unsent: dict[int, Exception] = {}
    for index, values in enumerate(inputs):
        item_level = level.item(index, total)
        if batch is not None and batch.complete(index):
            outputs[index] = await drive_async.run_item(item_level, map_id, values, names, batch)
            continue  # resolved here, never sent
        task = item_run(item_level, values, shared)
        item = {name: values[name] for name in names}
        try:
            _dumps(item_level, task)
        except SerializationError as exc:
            started = step.item_started(item_level, map_id, values, names)
            step.item_ended(item_level, map_id, started, exc)
            unsent[index] = exc
            if not call.keep_going:  # nothing has started yet: fail on this item
                return outputs, unsent
            continue
        batch_items.append((index, item_level, task, item))
    starts = [step.item_started(lv, map_id, task.inputs, names) for _, lv, task, _ in batch_items]
    session = _session(level)
    futures: list[Future[Any]] = session.submit_many([task for _, _, task, _ in batch_items])
    try:
        done, failures = await _collect(
            map_id, [lv for _, lv, _, _ in batch_items], futures, starts, call.keep_going
        )
    finally:
        for future in futures:
            future.cancel()
    for (index, *_), values in zip(batch_items, done, strict=True):
        outputs[index] = values
    unsent.update((batch_items[position][0], exc) for position, exc in failures.items())
    return outputs, unsent


def _lost(exc: BaseException, level: Level) -> Exception:
    from nestflow.errors import BackendError

    lost = BackendError(
        f"Map item {level.item_path[-1]} of `{' > '.join(level.hierarchy)}` was cancelled by "
        f"the cluster ({type(exc).__name__}: {exc}); a worker or the scheduler was lost or "
        "restarted. Run again, or check the cluster's health."
    )
    lost.__cause__ = exc
    return lost


async def _collect(
    map_id: str,
    levels: list[Level],
    futures: list[Future[Any]],
    starts: list[float],
    keep_going: bool,
) -> tuple[list[dict[str, Any]], dict[int, Exception]]:
    from nestflow.runtime import step

    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue[int] = asyncio.Queue()

    def notify(index: int) -> Callable[[Future[Any]], object]:
        return lambda _done: loop.call_soon_threadsafe(arrived.put_nowait, index)

    for index, future in enumerate(futures):
        future.add_done_callback(notify(index))
    outputs: list[dict[str, Any]] = [{} for _ in futures]
    failures: dict[int, Exception] = {}
    for _ in futures:
        index = await arrived.get()
        error: BaseException | None = None
        try:
            outputs[index] = absorb(levels[index], futures[index].result())
        except CancelledError as exc:
            if not futures[index].cancelled():  # cancelled by the cluster, not by us
                error = failures[index] = _lost(exc, levels[index])
            else:
                error = exc  # cancelled here after another item failed
        except Exception as exc:
            error = failures[index] = exc
            if not keep_going:
                for future in futures:
                    future.cancel()
        step.item_ended(levels[index], map_id, starts[index], error)
    return outputs, failures


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
        step.child is not None and listens(step.child, child_config(step.inner, config))
        for step in plan.steps
    )


def absorb(level: Level, result: ItemResult) -> dict[str, Any]:
    """Replay the item's events at their levels, merge its report, then give or raise its result."""
    levels: dict[tuple[str, ...], Level] = {level.entered: level}
    for event in result.events:
        target = _level_at(levels, level, event.entered).relocated(
            event.item_path, event.item_total
        )
        target.emit(
            event.hook, *event.args, node_id=event.node_id, error=event.error, attempt=event.attempt
        )
    report = level.run.report
    for record in result.records:
        # Made under the worker's local stand-in for the level's backend: name the backend
        # the level runs under here.
        label = _level_at(levels, level, record.levels).compiled.backend_label
        report.add(record if record.backend == label else replace(record, backend=label))
    report.errors.extend(result.errors)
    report.abandoned_threads.extend(result.abandoned_threads)
    if report.maps is not None:
        report.maps.extend(m for m in result.maps if m not in report.maps)
    report.cache_hits += result.cache_hits
    report.cache_misses += result.cache_misses
    if result.usage:
        level.run.merge(result.usage)
    if level.config.limits.value("max_total_steps") is not None:  # counted here too
        ran = sum(1 for r in result.records if r.status in ("executed", "failed"))
        guard.add(level.run, ran)
    for message in result.warnings:
        where = " > ".join(level.hierarchy)
        context.warn_once(level.run, f"In the map items of `{where}`: {message}")
    if result.error is not None:
        raise result.error
    return result.values


def _level_at(levels: dict[tuple[str, ...], Level], base: Level, entered: tuple[str, ...]) -> Level:
    found = levels.get(entered)
    if found is not None:
        return found
    parent = _level_at(levels, base, entered[:-1])
    nested = next(s for s in parent.compiled.steps if s.id == entered[-1])
    found = levels[entered] = parent.child(
        nested.child,  # type: ignore[union-attr]
        entered=entered[-1],
        mapped=bool(nested.mapped),  # type: ignore[union-attr]
        replay=True,
    )
    return found
