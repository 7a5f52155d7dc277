"""The state of one run (``RunState``) and of each level in it (``Level``).

Effective configuration lives here, per run and per level, never on pipelines, so one
pipeline can be reused by two parents, run standalone, or run from two threads at once
without seeing another run's configuration.

Ids come from a private generator seeded from ``os.urandom`` (and reseeded in forked
children): nestflow never draws from, or reseeds, the user's ``random``.
"""

from __future__ import annotations

import os
import random
import threading
import warnings
from collections.abc import Mapping
from time import perf_counter, time
from typing import TYPE_CHECKING, Any

from nestflow.callbacks.dispatch import Dispatcher
from nestflow.callbacks.events import CallbackContext
from nestflow.core.config import EffectiveConfig
from nestflow.core.usage import Usage
from nestflow.engines import executors, workers
from nestflow.engines.backends import LocalBackend
from nestflow.errors import BackendWarning
from nestflow.runtime.failure import ErrorContext
from nestflow.runtime.plan import LevelPlan
from nestflow.runtime.report import RunReport

if TYPE_CHECKING:
    from nestflow.engines.threads import ThreadPools
    from nestflow.runtime.step import Compiled

_ids = random.Random(os.urandom(32))
if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's ids
    os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_ids() -> tuple[str, str]:
    """Two fresh ids (a run's id and its trace id) in one draw."""
    both = f"{_ids.getrandbits(256):064x}"
    return both[:32], both[32:]


def new_key() -> int:
    """A fresh 64-bit key for state shared with workers (unique across processes and hosts)."""
    return int.from_bytes(os.urandom(8), "big")


_NO_CODES: dict[tuple[str, ...], bytes] = {}
"""No code fingerprints were shipped with this run (never written: a worker's run replaces it)."""


class RelayedEvent:
    """One hook call recorded in a worker, with where it happened.

    A plain slotted class, not a frozen dataclass, for the import time of a process's first
    run (see ``runtime/plan.py``'s ``Step``).
    """

    __slots__ = ("args", "attempt", "entered", "error", "hook", "item_path", "item_total",
                 "node_id")  # fmt: skip

    def __init__(
        self,
        *,
        hook: str,
        args: tuple[Any, ...],
        entered: tuple[str, ...],
        item_path: tuple[int, ...],
        item_total: int | None,
        node_id: str | None,
        error: BaseException | None,
        attempt: int,
    ) -> None:
        self.hook, self.args, self.entered = hook, args, entered
        self.item_path, self.item_total = item_path, item_total
        self.node_id, self.error, self.attempt = node_id, error, attempt

    def with_args(self, args: tuple[Any, ...]) -> RelayedEvent:
        """A copy with other arguments."""
        return RelayedEvent(
            hook=self.hook, args=args, entered=self.entered, item_path=self.item_path,
            item_total=self.item_total, node_id=self.node_id, error=self.error,
            attempt=self.attempt,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"RelayedEvent(hook={self.hook!r}, node_id={self.node_id!r})"


_MAKING_USAGE = threading.Lock()
"""Taken only while a run makes its ``Usage``, the first time a node reports some."""


class RunState:
    """What the levels of one run share: ids, the report, the dispatcher and the callback store."""

    __slots__ = (
        "_dispatcher", "_pools", "_store", "cached", "caches", "codes", "drivers",
        "flush_failure", "memory", "metadata", "refreshed", "relayed", "report", "run_id",
        "sessions", "signers", "started", "step_count", "steps_taken", "usage", "warned",
    )  # fmt: skip

    def __init__(self, pipeline_name: str, relay: bool = False) -> None:
        self.run_id, trace_id = new_ids()
        self.started = perf_counter()
        self.report = RunReport(
            run_id=self.run_id, trace_id=trace_id, pipeline=pipeline_name, started_at=time()
        )
        self.relayed: list[RelayedEvent] | None = [] if relay else None
        """In a worker: events recorded for the coordinator instead of dispatched."""
        self.flush_failure: Exception | None = None
        """A strict cache that could not write at the end of the run (raised after delivery)."""
        self.codes: dict[tuple[str, ...], bytes] = _NO_CODES
        """Code fingerprints made by the coordinator, by node path (in a worker's item run)."""
        self.drivers: list[str] = []
        self.cached = False
        """Some level of this run has a cache: values may be unread, signatures kept."""
        # Made when first needed: most runs use none of them.
        self.metadata: dict[str, dict[str, Any]] | None = None
        self.caches: dict[int, Any] | None = None
        """Caches written by this run, flushed when it finishes."""
        self.signers: dict[int, Any] | None = None
        """Each compiled level's signer, made once per run."""
        self.refreshed: dict[int, Any] | None = None
        """Caches this run looks up in, each asked once whether it was cleared elsewhere."""
        self.sessions: list[Any] | None = None
        self.warned: set[str] | None = None
        self.step_count: Any = None
        """Numbers node executions counted against ``max_total_steps`` (an
        ``itertools.count`` made by ``runtime.guard`` when a run first counts)."""
        self.steps_taken = 0
        """The last number taken from ``step_count``."""
        self.memory: Any = None
        """The memory watch of a run with a memory limit (``runtime.guard``)."""
        self.usage: Usage | None = None
        """What the run's nodes report with ``record_usage`` (made when first reported)."""
        self._store: dict[str, Any] | None = None
        self._dispatcher: Dispatcher | None = None
        self._pools: ThreadPools | None = None

    @property
    def store(self) -> dict[str, Any]:
        """The key-value store callbacks share (``ctx.get`` / ``ctx.set``)."""
        if self._store is None:
            self._store = {}
        return self._store

    def wrote(self, cache: Any) -> None:
        """Note that this run wrote to ``cache`` (it is flushed when the run finishes)."""
        if self.caches is None:
            self.caches = {}
        self.caches[id(cache)] = cache

    def looks_up(self, cache: Any) -> None:
        """Before the first lookup of this run in ``cache``: let it drop what it remembers
        if the store was cleared or damaged elsewhere (``Cache.refresh``), once per run."""
        refreshed = self.refreshed
        if refreshed is None:
            refreshed = self.refreshed = {}
        if id(cache) not in refreshed:
            refreshed[id(cache)] = cache
            refresh = getattr(cache, "refresh", None)  # custom stores may have no front
            if refresh is not None:
                refresh()

    def opened(self, session: Any) -> None:
        """Note a backend session this run opened (closed when the run finishes)."""
        if self.sessions is None:
            self.sessions = []
        self.sessions.append(session)

    @property
    def dispatcher(self) -> Dispatcher:
        """The run's dispatcher, made on the first event."""
        if self._dispatcher is None:
            self._dispatcher = Dispatcher()
        return self._dispatcher

    @property
    def pools(self) -> ThreadPools:
        """The run's thread pools, made on first use."""
        if self._pools is None:
            from nestflow.engines.threads import ThreadPools  # a run that offloads calls

            self._pools = ThreadPools()
        return self._pools

    @property
    def trace_id(self) -> str:
        """The run's trace id: the report's, which a tracing callback may set to its own."""
        return self.report.trace_id

    @trace_id.setter
    def trace_id(self, value: str) -> None:
        self.report.trace_id = value

    def uses(self, driver: str) -> None:
        """Note that ``driver`` runs a level of this run."""
        if driver not in self.drivers:
            self.drivers.append(driver)

    def pipeline_metadata(self, pipeline_id: str) -> dict[str, Any]:
        """Metadata of a level that has started in this run."""
        try:
            return (self.metadata or {})[pipeline_id]
        except KeyError:
            known = ", ".join(self.metadata or ()) or "(none yet)"
            raise KeyError(
                f"No pipeline `{pipeline_id}` has started in this run; known: {known}."
            ) from None

    def _close_caches(self) -> None:
        """Flush what the run wrote; each cache it looked up in sums up what it saw."""
        for cache in (self.caches or {}).values():
            try:
                cache.flush()
            except Exception as exc:  # a strict cache: reported once the run is closed
                self.flush_failure = self.flush_failure or exc
        for cache in (self.refreshed or {}).values():
            end_run = getattr(cache, "end_run", None)
            if end_run is not None:
                end_run()

    def add(self, name: str, amount: float) -> None:
        """``record_usage`` in this run (the run is current while it runs): counted in a
        ``Usage`` made the first time, from whichever thread."""
        usage = self.usage
        if usage is None:
            with _MAKING_USAGE:
                usage = self.usage
                if usage is None:
                    usage = self.usage = Usage()
        usage.add(name, amount)

    def merge(self, amounts: Mapping[str, float]) -> None:
        """Add what a worker counted for this run."""
        for name, amount in amounts.items():
            self.add(name, amount)

    def finish(self, error: BaseException | None) -> RunReport:
        """Close the report: duration, status, drivers and callback failures."""
        report = self.report
        self._close_caches()
        if self.flush_failure is not None and error is None:
            error = self.flush_failure
        report.duration_s = perf_counter() - self.started
        report.drivers = tuple(self.drivers)
        if self.usage is not None:
            report.usage = self.usage.totals()
        if error is not None:
            report.status = "failed"
        elif report.errors:
            report.status = "partial"
        if self._dispatcher is not None:
            report.callback_failures = self._dispatcher.failures
        if self._pools is not None:
            self._pools.close()
        for session in self.sessions or ():
            session.close()
        if self.memory is not None:
            self.memory.close()
        return report


class Level:
    """One pipeline level of a run (one per item inside maps); never changed once made."""

    __slots__ = (
        "compiled", "config", "depth", "entered", "executor", "hierarchy", "hooks", "item_path",
        "item_total", "offload", "parent", "plan", "run",
    )  # fmt: skip

    run: RunState
    compiled: Compiled
    plan: LevelPlan
    config: EffectiveConfig
    depth: int
    hierarchy: tuple[str, ...]
    entered: tuple[str, ...]
    """Ids of the nested nodes that led from the root to this level."""
    item_path: tuple[int, ...]
    item_total: int | None
    executor: executors.Executor
    """Where this level's function calls run."""
    offload: int
    """Thread pool size that sequential work is offloaded to under a concurrent level (0: none)."""
    hooks: frozenset[str]
    """The hooks this level's callbacks implement (``Compiled.hooks``)."""
    parent: Level | None

    @classmethod
    def root(cls, run: RunState, compiled: Compiled) -> Level:
        """The root level of a run."""
        level = cls.__new__(cls)
        level.run, level.compiled, level.plan = run, compiled, compiled.plan
        level.config = compiled.config
        level.depth, level.hierarchy, level.entered = 0, (compiled.name,), ()
        level.item_path, level.item_total, level.parent = (), None, None
        level.hooks = compiled.hooks
        level.offload = 0
        level.executor = executors.INLINE if compiled.inline else level._open_executor()
        if compiled.caches:
            run.cached = True
        if level.hooks:
            level.register(mapped=False)
        return level

    @classmethod
    def at(
        cls,
        run: RunState,
        compiled: Compiled,
        depth: int,
        hierarchy: tuple[str, ...],
        entered: tuple[str, ...],
        item_path: tuple[int, ...],
        item_total: int | None,
    ) -> Level:
        """A level at a given location of a run (a map item shipped to a worker)."""
        level = cls.root(run, compiled)
        level.depth, level.hierarchy, level.entered = depth, hierarchy, entered
        level.item_path, level.item_total = item_path, item_total
        return level

    def child(self, compiled: Compiled, entered: str, mapped: bool, replay: bool = False) -> Level:
        """The level of a nested pipeline entered through node ``entered``."""
        level = Level.__new__(Level)
        level.run, level.compiled, level.plan = self.run, compiled, compiled.plan
        level.config = compiled.config
        level.depth = self.depth + 1
        level.hierarchy = (*self.hierarchy, compiled.name)
        level.entered = (*self.entered, entered)
        level.item_path, level.item_total, level.parent = self.item_path, self.item_total, self
        level.hooks = compiled.hooks
        level.offload = self.offload
        if replay:
            level.executor = executors.INLINE
        elif compiled.config.backend is self.config.backend and self.executor.kind != "session":
            level.executor = self.executor  # the same local backend: the same executor
        else:
            level.executor = level._open_executor()
        if compiled.config.cache is not None:
            self.run.cached = True
        if level.hooks:
            level.register(mapped=mapped)
        return level

    def item(self, index: int, total: int) -> Level:
        """The same level, running map item ``index`` of ``total``."""
        level = Level.__new__(Level)
        level.run, level.compiled, level.plan = self.run, self.compiled, self.plan
        level.config, level.depth, level.hierarchy = self.config, self.depth, self.hierarchy
        level.entered = self.entered  # the same object: callbacks compare levels by it
        level.item_path, level.item_total = (*self.item_path, index), total
        level.executor, level.offload, level.hooks = self.executor, self.offload, self.hooks
        level.parent = self.parent
        return level

    def relocated(self, item_path: tuple[int, ...], item_total: int | None) -> Level:
        """This level at another item location (events replayed from a worker)."""
        level = self.item(0, 0)
        level.item_path, level.item_total = item_path, item_total
        return level

    def _open_executor(self) -> executors.Executor:
        backend = self.config.backend
        if not isinstance(backend, LocalBackend):  # a custom or dask backend always submits
            session = backend.open()
            self.run.opened(session)
            return executors.Sessions(session)
        mode = backend.node_execution
        if mode == "parallel" and not processes_available():
            mode = "sequential"
        if mode != "sequential":
            self.offload = max(self.offload, backend.workers(mode))
            if mode == "parallel":
                return executors.Processes(backend.workers(mode))
        if self.offload:
            return executors.Threads(self.run.pools.get(self.offload))
        return executors.INLINE

    def offloaded(self, size: int) -> Level:
        """This (new) item level with its sync calls offloaded to a pool of ``size`` threads."""
        if size > self.offload:
            self.offload = size
            if self.executor is executors.INLINE or self.executor.kind == "threads":
                self.executor = executors.Threads(self.run.pools.get(size))
        return self

    def register(self, mapped: bool) -> None:
        """Record this level's metadata for ``ctx.get_pipeline_metadata``."""
        steps = self.plan.steps
        cache = self.config.cache
        if self.run.metadata is None:
            self.run.metadata = {}
        self.run.metadata[self.plan.name] = {
            "total_nodes": len(self.plan.pipeline.nodes),
            "node_ids": self.plan.pipeline.execution_order(),
            "selected_node_ids": tuple(s.id for s in steps),
            "nested_node_ids": tuple(s.id for s in steps if s.child is not None),
            "backend_label": self.config.backend.label,
            "cache_label": "No cache" if cache is None else cache.label,
            "mapped": mapped,
        }

    def emit(
        self,
        hook: str,
        *args: Any,
        node_id: str | None = None,
        error: BaseException | None = None,
        attempt: int = 1,
    ) -> None:
        """Fire ``hook`` on this level's callbacks with a context describing the event."""
        if self.run.relayed is not None or hook in self.hooks:
            self.notify(hook, args, node_id, error, attempt)

    def notify(
        self,
        hook: str,
        args: tuple[Any, ...],
        node_id: str | None = None,
        error: BaseException | None = None,
        attempt: int = 1,
    ) -> None:
        """``emit`` with the arguments as one tuple, for a hook known to be listened to
        (``hook in self.hooks``): the path of the events of every node and item."""
        relayed = self.run.relayed
        if relayed is not None:  # in a worker: recorded for the coordinator
            relayed.append(
                RelayedEvent(
                    hook=hook,
                    args=args,
                    entered=self.entered,
                    item_path=self.item_path,
                    item_total=self.item_total,
                    node_id=node_id,
                    error=error,
                    attempt=attempt,
                )
            )
            return
        ctx = CallbackContext(self, node_id, error, attempt)
        # Every event of a run comes from the one thread coordinating it: no lock is needed.
        for callback, handler in self.compiled.handlers[hook]:
            try:
                handler(*args, ctx)
            except Exception as exc:  # a callback must never change a run's outcome
                self.run.dispatcher.failed(callback, hook, exc)

    def path(self, node_id: str) -> str:
        """``root > nested node id > ... > node``: the ids of the nodes that entered each
        level tell apart a pipeline nested twice (``tree()``, notes and logs say the same)."""
        return " > ".join((self.hierarchy[0], *self.entered, node_id))

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
            nodes_executed=sum(1 for r in self.run.report.records if r.status == "executed"),
            node_config={
                "timeout": self.config.timeout,
                "retries": self.config.retries,
                "cache": "None" if cache is None else cache.label,
            },
        )


def map_width(level: Level, total: int) -> int:
    """How many items of a map at ``level`` run at once (1: one after another)."""
    backend = level.config.backend
    if not isinstance(backend, LocalBackend):
        executor = level.executor
        session = getattr(executor, "session", None)
        capacity = session.capacity("map") if session is not None else 1
        return max(1, total) if capacity is None else capacity
    mode = backend.map_execution
    if mode == "sequential" or (mode == "parallel" and not processes_available()):
        return 1
    if mode == "async":
        return max(1, total)  # items are tasks on one loop; threads bound their sync work
    return backend.workers(mode)


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
    if not workers.IN_WORKER:
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


def warn_once(run: RunState, message: str) -> None:
    """Emit ``message`` as a BackendWarning, once per run."""
    if run.warned is None:
        run.warned = set()
    if message in run.warned:
        return
    run.warned.add(message)
    warnings.warn(message, BackendWarning, stacklevel=2)
