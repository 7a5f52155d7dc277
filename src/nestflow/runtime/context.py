"""RunContext: the state of one run and of each level in it.

Effective configuration lives here, per run and per level, never on pipelines, so
one pipeline can be reused by two parents, run standalone, or run from two threads
at once without seeing another run's configuration.
"""

from __future__ import annotations

import random
import threading
import warnings
from dataclasses import dataclass, field, replace
from time import perf_counter, time
from typing import Any

from nestflow.callbacks.dispatch import Dispatcher
from nestflow.callbacks.events import CallbackContext
from nestflow.core.config import EffectiveConfig
from nestflow.engines import processes
from nestflow.engines.backends import LocalBackend
from nestflow.engines.threads import ThreadPools
from nestflow.errors import BackendWarning
from nestflow.runtime.failure import ErrorContext
from nestflow.runtime.plan import LevelPlan
from nestflow.runtime.report import RunReport


def new_run_id() -> str:
    """A fresh run id (32 hex characters).

    ``random`` rather than ``uuid4``: ids need uniqueness, not secrecy, and uuid4 costs a
    system call that would be a fifth of a small run's overhead. ``random`` reseeds
    itself in forked children.
    """
    return f"{random.getrandbits(128):032x}"


def new_trace_id() -> str:
    """A fresh W3C-style trace id (32 hex characters)."""
    return f"{random.getrandbits(128):032x}"


@dataclass(frozen=True, slots=True)
class RelayedEvent:
    """One hook call recorded in a worker, with where it happened."""

    hook: str
    args: tuple[Any, ...]
    entered: tuple[str, ...]
    item_path: tuple[int, ...]
    item_total: int | None
    node_id: str | None
    error: BaseException | None
    attempt: int


class RunState:
    """What the levels of one run share: ids, the report, the dispatcher and the callback store."""

    def __init__(self, pipeline_name: str, relay: bool = False) -> None:
        self.run_id = new_run_id()
        self.started = perf_counter()
        self.report = RunReport(
            run_id=self.run_id, trace_id=new_trace_id(), pipeline=pipeline_name, started_at=time()
        )
        self.dispatcher = Dispatcher()
        self.store: dict[str, Any] = {}
        self.metadata: dict[str, dict[str, Any]] = {}
        self.nodes_executed = 0
        self.pools = ThreadPools()
        self.sessions: list[Any] = []
        self.relayed: list[RelayedEvent] | None = [] if relay else None
        self.warned: set[str] = set()
        self.flush_failure: Exception | None = None
        """A strict cache that could not write at the end of the run (raised after delivery)."""
        self._labels: dict[int, tuple[EffectiveConfig, str, str | None]] = {}
        self.uses_cache = False
        """Some level of this run has a cache: values may be pending, signatures computed."""
        self.prefixes: dict[Any, Any] = {}
        """Signature prefixes per (plan, node), computed once per run."""
        self.caches: dict[int, Any] = {}
        self.codes: dict[tuple[str, ...], bytes] = {}
        self.absent: set[str] = set()
        """Signatures a batched lookup found missing (SPEC 8.1: decided before running)."""
        """Code fingerprints made by the coordinator, by node path (in a worker's item run)."""
        """Caches written by this run, flushed when it finishes."""
        """In a worker: events recorded for the coordinator instead of dispatched."""

    def labels(self, config: EffectiveConfig) -> tuple[str, str | None]:
        """The backend and cache labels of ``config`` (made once per configuration and run)."""
        found = self._labels.get(id(config))
        if found is None or found[0] is not config:
            cache = config.cache
            found = (config, config.backend.label, None if cache is None else cache.label)
            self._labels[id(config)] = found
        return found[1], found[2]

    @property
    def trace_id(self) -> str:
        """The run's trace id: the report's, which a tracing callback may set to its own."""
        return self.report.trace_id

    @trace_id.setter
    def trace_id(self, value: str) -> None:
        self.report.trace_id = value

    def open_session(self, backend: Any) -> Any:
        """A session of a custom backend for one level, closed when the run ends."""
        if isinstance(backend, LocalBackend):
            return None  # the runtime drives local levels itself
        session = backend.open()
        self.sessions.append(session)
        return session

    def pipeline_metadata(self, pipeline_id: str) -> dict[str, Any]:
        """Metadata of a level that has started in this run."""
        try:
            return self.metadata[pipeline_id]
        except KeyError:
            known = ", ".join(self.metadata) or "(none yet)"
            raise KeyError(
                f"No pipeline `{pipeline_id}` has started in this run; known: {known}."
            ) from None

    def finish(self, error: BaseException | None) -> RunReport:
        """Close the report: duration, status and callback failures."""
        report = self.report
        for cache in self.caches.values():
            try:
                cache.flush()
            except Exception as exc:  # a strict cache: reported once the run is closed
                self.flush_failure = self.flush_failure or exc
        if self.flush_failure is not None and error is None:
            error = self.flush_failure
        report.duration_s = perf_counter() - self.started
        if error is not None:
            report.status = "failed"
        elif report.errors:
            report.status = "partial"
        report.callback_failures = self.dispatcher.failures
        self.pools.close()
        for session in self.sessions:
            session.close()
        return report


@dataclass(slots=True, eq=False)
class Level:
    """One pipeline level of a run (one per item inside maps); never changed once made.

    Not a frozen dataclass only because those cost twice as much to make, and a map makes
    one per item.
    """

    run: RunState
    plan: LevelPlan
    config: EffectiveConfig
    depth: int = 0
    hierarchy: tuple[str, ...] = ()
    entered: tuple[str, ...] = ()
    """Ids of the nested nodes that led from the root to this level."""
    item_path: tuple[int, ...] = ()
    item_total: int | None = None
    offload: int = 0
    """Pool size for sync calls (0: call inline). Set once anything around runs concurrently."""
    processes: int = 0
    """Worker processes for function calls (0: none), under a parallel level or map."""
    session: Any = None
    """The open session of a custom backend (None for LocalBackend levels)."""
    parent: Level | None = field(default=None, repr=False)

    @classmethod
    def root(cls, run: RunState, plan: LevelPlan, config: EffectiveConfig) -> Level:
        """The root level of a run."""
        level = cls(
            run=run,
            plan=plan,
            config=config,
            hierarchy=(plan.name,),
            offload=_node_pool(config),
            processes=_process_pool(config, "node_execution"),
            session=run.open_session(config.backend),
        )
        level.register(mapped=False)
        return level

    def child(
        self,
        plan: LevelPlan,
        config: EffectiveConfig,
        entered: str,
        mapped: bool,
        open_session: bool = True,
    ) -> Level:
        """The level of a nested pipeline entered through node ``entered``."""
        level = Level(
            run=self.run,
            plan=plan,
            config=config,
            depth=self.depth + 1,
            hierarchy=(*self.hierarchy, plan.name),
            entered=(*self.entered, entered),
            item_path=self.item_path,
            item_total=self.item_total,
            offload=max(self.offload, _node_pool(config)),
            processes=max(self.processes, _process_pool(config, "node_execution")),
            session=self.run.open_session(config.backend) if open_session else None,
            parent=self,
        )
        level.register(mapped=mapped)
        return level

    def with_pools(self) -> Level:
        """This level with the pools its own configuration asks for (a worker's item level)."""
        config = self.config
        if config.cache is not None:
            self.run.uses_cache = True
        return replace(
            self,
            offload=_node_pool(config),
            processes=_process_pool(config, "node_execution"),
            session=self.run.open_session(config.backend),
        )

    def item(self, index: int, total: int, offload: int = 0, processes: int = 0) -> Level:
        """The same level, running map item ``index`` of ``total``."""
        # Made once per map item: the constructor, not dataclasses.replace (which costs more).
        return Level(
            self.run,
            self.plan,
            self.config,
            self.depth,
            self.hierarchy,
            self.entered,
            (*self.item_path, index),
            total,
            max(self.offload, offload),
            max(self.processes, processes),
            self.session,
            self.parent,
        )

    def register(self, mapped: bool) -> None:
        """Record this level's metadata for ``ctx.get_pipeline_metadata``."""
        steps = self.plan.steps
        cache = self.config.cache
        if cache is not None:
            self.run.uses_cache = True
        self.run.metadata[self.plan.name] = {
            "total_nodes": len(self.plan.pipeline.nodes),
            "node_ids": self.plan.pipeline.execution_order(),
            "selected_node_ids": tuple(s.id for s in steps),
            "nested_node_ids": tuple(s.id for s in steps if s.child is not None),
            "backend_label": self.config.backend.label,
            "cache_label": "No cache" if cache is None else cache.label,
            "mapped": mapped,
        }

    @property
    def callbacks(self) -> tuple[Any, ...]:
        """The effective callbacks of this level."""
        return self.config.callbacks

    def emit(
        self,
        hook: str,
        *args: Any,
        node_id: str | None = None,
        error: BaseException | None = None,
        attempt: int = 1,
    ) -> None:
        """Fire ``hook`` on this level's callbacks with a context describing the event."""
        relayed = self.run.relayed
        if relayed is not None:
            relayed.append(
                RelayedEvent(
                    hook,
                    args,
                    self.entered,
                    self.item_path,
                    self.item_total,
                    node_id,
                    error,
                    attempt,
                )
            )
            return
        callbacks = self.config.callbacks
        if not callbacks or not self.run.dispatcher.listening(callbacks, hook):
            return
        ctx = self.callback_context(node_id, error, attempt)
        self.run.dispatcher.emit(callbacks, hook, (*args, ctx))

    def callback_context(
        self, node_id: str | None, error: BaseException | None, attempt: int
    ) -> CallbackContext:
        """The ``ctx`` for one event at this level."""
        return CallbackContext(self, node_id, error, attempt)

    def error_context(self, node_id: str, attempts: int) -> ErrorContext:
        """The facts of a failure of ``node_id`` at this level."""
        cache = self.config.cache
        return ErrorContext(
            levels=tuple(zip(self.hierarchy, (*self.entered, None), strict=True)),
            node=node_id,
            depth=self.depth,
            item_path=self.item_path,
            item_total=self.item_total,
            attempts=attempts,
            trace_id=self.run.trace_id,
            run_id=self.run.run_id,
            elapsed_s=perf_counter() - self.run.started,
            nodes_executed=self.run.nodes_executed,
            node_config={
                "timeout": self.config.timeout,
                "retries": self.config.retries,
                "cache": "None" if cache is None else cache.label,
            },
        )


def workers(config: EffectiveConfig, dimension: str) -> int:
    """How many things ``dimension`` runs at once (1: sequential)."""
    backend = config.backend
    mode = getattr(backend, dimension)
    if mode == "sequential" or not isinstance(backend, LocalBackend):
        return 1  # custom backends: their session says how many (see map_workers)
    if mode == "parallel" and not processes_available():
        return 1
    return backend.workers(mode)


def map_workers(level: Level, total: int) -> tuple[int, int]:
    """How many items of a map at ``level`` run at once, and the thread pool for their sync work.

    Async items are tasks on one loop: all of them are in flight, and ``max_workers``
    bounds only the threads their sync nodes are offloaded to.
    """
    if level.session is None:
        size = workers(level.config, "map_execution")
        if size > 1 and level.config.backend.map_execution == "async":
            return max(1, total), size
        return size, size
    capacity = level.session.capacity("map")
    return (max(1, total) if capacity is None else capacity), 0


def _node_pool(config: EffectiveConfig) -> int:
    size = workers(config, "node_execution")
    return 0 if size == 1 else size


def _process_pool(config: EffectiveConfig, dimension: str) -> int:
    if getattr(config.backend, dimension) != "parallel" or not processes_available():
        return 0
    return workers(config, dimension)


FALLBACK = (
    "A parallel backend runs inside a worker process, which cannot start processes of its "
    "own; the level runs sequentially in the worker instead. Give the inner level "
    "LocalBackend('threaded') or leave its backend unset to silence this."
)


def processes_available() -> bool:
    """Whether this process may start worker processes.

    In a worker it may not: the level falls back to sequential, and the fallback is
    recorded for the coordinator, which emits one BackendWarning per run (SPEC 7.2).
    """
    if not processes.IN_WORKER:
        return True
    notices = pending_fallbacks()
    if not notices:
        notices.append(FALLBACK)
    return False


_fallbacks = threading.local()


def pending_fallbacks() -> list[str]:
    """This thread's fallback notices not yet sent to the coordinator (see ``ItemRun.run``).

    Per thread: a dask worker runs several items at once, each in a thread of its own.
    """
    found: list[str] | None = getattr(_fallbacks, "notices", None)
    if found is None:
        found = _fallbacks.notices = []
    return found


"""In a worker: fallback notices not yet sent to the coordinator (see ``ItemRun.run``)."""


def warn_once(run: RunState, message: str) -> None:
    """Emit ``message`` as a BackendWarning, once per run."""
    if message in run.warned:
        return
    run.warned.add(message)
    warnings.warn(message, BackendWarning, stacklevel=2)
