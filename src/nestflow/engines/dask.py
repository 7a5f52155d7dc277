"""DaskBackend: run nodes and map items on dask.distributed (extra ``dask``).

With no address it starts a LocalCluster on first use and closes it on ``close()``,
on leaving ``with``, or at exit. With ``address=`` it connects to an existing
scheduler: any dask cluster, including GPU pools, is reached that way, and
``resources={"GPU": 1}`` sends every task of the levels under this backend only to
workers that advertise the resource.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from nestflow.core import usage
from nestflow.core.usage import Meter, Usage
from nestflow.engines.backends import MODES, Mode
from nestflow.engines.protocol import Dimension
from nestflow.errors import BackendError

if TYPE_CHECKING:
    from distributed import Client

T = TypeVar("T")
_INSTALL = "pip install 'nestflow[dask]'"


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"DaskBackend needs dask.distributed, which is not installed. Install it with: "
            f"{_INSTALL}"
        ) from exc
    return distributed


class Task(Protocol):
    """What a dask session ships: a ``NodeCall`` or a whole map item, run where it lands."""

    def run(self) -> Any:
        """Execute the task in the worker and return its result."""
        ...


def _run_task(task: Task) -> Any:
    """What every dask task runs: a NodeCall or a whole map item.

    A task that leaves a thread running in this worker (a call inside it abandoned at
    its deadline) hands its outcome back in a ``_Replace``: the coordinator restarts the
    worker once it has the outcome, so the thread cannot hold the worker.
    """
    from nestflow.engines import executors

    collected = Usage()
    try:
        with usage.collecting(collected):
            value = task.run()
    except BaseException as exc:
        if collected:  # a failed call's usage counts too: it travels on the exception
            with contextlib.suppress(AttributeError, TypeError):
                exc.__nestflow_usage__ = collected.totals()  # type: ignore[attr-defined]
        if executors.runaway():
            return _Replace(_distributed().get_worker().address, exc, failed=True)
        raise
    if collected:  # what a node call reported with record_usage travels with its value
        value = _Used(value, collected.totals())
    if executors.runaway():
        return _Replace(_distributed().get_worker().address, value)
    return value


class _Replace:
    """A task's outcome, and the worker to restart because a thread still runs there."""

    def __init__(self, address: str, outcome: Any, failed: bool = False) -> None:
        self.address = address
        self.outcome = outcome
        self.failed = failed


class _Used:
    """A task's value and the usage its call reported (``record_usage``)."""

    def __init__(self, value: Any, amounts: dict[str, float]) -> None:
        self.value = value
        self.amounts = amounts


def _unused_by(error: BaseException, sink: Meter | None) -> BaseException:
    """``error`` without the usage its failed call recorded, which is added to ``sink``."""
    used = error.__dict__.pop("__nestflow_usage__", None) if hasattr(error, "__dict__") else None
    if used and sink is not None:
        sink.merge(used)
    return error


def _unused(value: Any, sink: Meter | None) -> Any:
    """``value`` without the usage it carries, which is added to ``sink``."""
    if isinstance(value, _Replace):
        if value.failed:
            value.outcome = _unused_by(value.outcome, sink)
            return value
        value.outcome = _unused(value.outcome, sink)
    elif isinstance(value, _Used):
        if sink is not None:
            sink.merge(value.amounts)
        return value.value
    return value


def _still_running(key: Any, dask_worker: Any = None) -> bool:
    """On a worker (``Client.run``): whether a thread there still runs task ``key``."""
    state = dask_worker.state.tasks.get(key) if dask_worker is not None else None
    return state is not None and state.state in ("executing", "long-running", "cancelled")


def restart_worker(client: Any, address: str | None = None, key: Any = None) -> None:
    """Restart a worker (through its nanny): the one at ``address``, or the one still
    running task ``key``. A worker without a nanny cannot be restarted: it is left, with
    a warning, and keeps the thread until the call ends."""
    if client.status != "running":  # the backend is closing: its workers go anyway
        return
    try:
        if address is None:
            found = client.run(_still_running, key)
            address = next((where for where, running in found.items() if running), None)
            if address is None:
                return
        client.restart_workers([address], raise_for_error=True)
    except Exception as exc:
        if client.status != "running":
            return
        warnings.warn(
            f"A call past its deadline still runs on dask worker {address or '(unknown)'}, "
            f"which could not be restarted ({type(exc).__name__}: {exc}); it stays busy until "
            "the call ends. Start workers with a nanny (the default of `dask worker` and "
            "LocalCluster) so that nestflow can restart them.",
            RuntimeWarning,
            stacklevel=2,
        )


def _restart_later(client: Any, address: str | None = None, key: Any = None) -> None:
    threading.Thread(
        target=restart_worker,
        args=(client, address, key),
        name="nestflow-dask-restart",
        daemon=True,
    ).start()


class DaskBackend:
    """Nodes and map items as dask futures, each its own task (no hidden batching)."""

    ships_map_items = True
    """Map items travel whole: inside an item task, the item's nodes run in that worker."""

    def __init__(
        self,
        address: str | None = None,
        *,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
        resources: Mapping[str, float] | None = None,
        node_execution: Mode = "parallel",
        map_execution: Mode = "parallel",
        client: Client | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        _distributed()
        for dimension, mode in (
            ("node_execution", node_execution),
            ("map_execution", map_execution),
        ):
            if mode not in MODES:
                raise ValueError(
                    f"Unknown {dimension} mode {mode!r}. Expected one of: {', '.join(MODES)}."
                )
        if n_workers is not None and n_workers < 1:
            raise ValueError(f"n_workers must be >= 1 or None, got {n_workers!r}.")
        self.address = address if client is None else _address_of(client)
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.resources = dict(resources or {})
        self.node_execution = node_execution
        self.map_execution = map_execution
        self.connect_timeout = connect_timeout
        self._client = client
        self._owns_client = client is None
        self._cluster: Any = None
        self._lock = threading.Lock()
        _open_backends.add(self)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The ``distributed.Client``, connecting (or starting a LocalCluster) on first use.

        Inside a dask task (a map item shipped whole) it is the worker's own client.
        """
        inside = _worker_client()
        if inside is not None:
            return inside
        with self._lock:
            if self._client is None:
                self._client = _off_loop(self._connect)
            return self._client

    def _connect(self) -> Any:
        distributed = _distributed()
        if self.address is None:
            self._cluster = distributed.LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=self.threads_per_worker,
                dashboard_address=":0",  # a random port: never clash with another cluster
                silence_logs=logging.ERROR,
            )
            return distributed.Client(self._cluster)
        try:
            return distributed.Client(self.address, timeout=self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise BackendError(
                f"Cannot reach the dask scheduler at {self.address} within "
                f"{self.connect_timeout} s: {exc}. Check the address, that `dask scheduler` "
                "runs there, and that this machine can reach its port."
            ) from exc

    def close(self) -> None:
        """Close the client, and the LocalCluster if this backend started it."""
        with self._lock:
            client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        if client is not None and self._owns_client:
            _off_loop(client.close)
        if cluster is not None:
            _off_loop(cluster.close)

    def __enter__(self) -> DaskBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # A backend travels as its configuration; the other side connects on its own.
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.update(_client=None, _owns_client=True, _cluster=None, _lock=threading.Lock())

    # --- protocol ----------------------------------------------------------------------------

    @property
    def label(self) -> str:
        """``Dask(local×4)`` or ``Dask(tcp://host:8786)``, with ``, GPU=1`` for resources."""
        where = self.address or f"local×{self.n_workers or os.cpu_count() or 1}"
        extra = "".join(f", {k}={v:g}" for k, v in self.resources.items())
        return f"Dask({where}{extra})"

    def open(self) -> DaskSession:
        """A session submitting tasks through this backend's client."""
        return DaskSession(self)

    def __repr__(self) -> str:
        return f"DaskBackend({self.label})"


class DaskSession:
    """Submits NodeCalls and ItemRuns as dask futures; results come back to this process."""

    remote = True

    def __init__(self, backend: DaskBackend) -> None:
        self.backend = backend
        self.in_task = _worker_client() is not None
        self.client = backend.client
        self._threads: int | None = None
        self._remotes: weakref.WeakKeyDictionary[Future[Any], Any] = weakref.WeakKeyDictionary()

    def submit(self, task: Task) -> Future[Any]:
        """One dask task, placed by the backend's resources."""
        if self.in_task:
            _secede_once()
        resources = self.backend.resources or None
        remote = self.client.submit(_run_task, task, resources=resources, pure=False)
        local = _bridge(self.client, remote, usage.current())
        self._remotes[local] = remote.key
        return local

    def stop(self, future: Future[Any]) -> None:
        """The task of ``future`` ran past its deadline: restart the worker running it
        (a thread cannot be stopped; the worker's nanny starts a fresh process)."""
        key = self._remotes.pop(future, None)
        if key is not None:
            _restart_later(self.client, key=key)

    def submit_many(self, tasks: Sequence[Task]) -> list[Future[Any]]:
        """Many tasks in one message to the scheduler: each is still its own dask task."""
        if not tasks:
            return []
        if self.in_task:
            _secede_once()
        resources = self.backend.resources or None
        remotes = self.client.map(_run_task, list(tasks), resources=resources, pure=False)
        local: list[Future[Any]] = []
        for remote in remotes:
            future: Future[Any] = Future()
            future.add_done_callback(_canceller(remote))
            local.append(future)
        thread = threading.Thread(
            target=_deliver, args=(self.client, remotes, local), name="nestflow-dask-results"
        )
        thread.daemon = True
        thread.start()
        return local

    def capacity(self, dimension: Dimension) -> int | None:
        """Map items: unbounded (the scheduler queues them); nodes: total worker threads."""
        backend = self.backend
        mode = backend.node_execution if dimension == "node" else backend.map_execution
        if mode == "sequential":
            return 1
        if dimension == "map":
            return None
        if self._threads is None:
            self._threads = sum(_off_loop(self.client.nthreads).values()) or None
        return self._threads

    def close(self) -> None:
        """Nothing to release: the client belongs to the backend."""


def _address_of(client: Client) -> str:
    scheduler = client.scheduler
    if scheduler is None:
        raise BackendError(
            "DaskBackend(client=...) got a client that is not connected to a scheduler. "
            "Pass a connected distributed.Client, or address='tcp://host:8786'."
        )
    return str(scheduler.address)


_task_state = threading.local()


def _worker_client() -> Any:
    """The worker's client when this thread runs a dask task, else ``None``."""
    distributed = _distributed()
    try:
        distributed.get_worker()
    except ValueError:
        return None
    return distributed.get_client()


def _secede_once() -> None:
    # A task that waits for tasks of its own must give its thread slot back, or a worker
    # with one thread would wait for itself forever.
    if not getattr(_task_state, "seceded", False):
        _distributed().secede()
        _task_state.seceded = True


def rejoin_if_seceded() -> None:
    """Take the worker's thread slot back after ``_secede_once`` (end of a shipped item)."""
    if getattr(_task_state, "seceded", False):
        _task_state.seceded = False
        _distributed().rejoin()


def _deliver(client: Any, remotes: list[Any], local: list[Future[Any]]) -> None:
    # Results are fetched in batches as tasks finish: one gather per batch instead of
    # one round trip per item, which is what makes a big map as fast as client.map.
    position = {remote.key: i for i, remote in enumerate(remotes)}
    for batch in _distributed().as_completed(remotes).batches():
        finished = [remote for remote in batch if remote.status == "finished"]
        values: list[Any] = []
        if finished:
            try:
                values = client.gather(finished)
            except Exception:  # lost data and the like: settle them one by one below
                finished, values = [], []
        for remote, value in zip(finished, values, strict=True):
            _settle(local[position[remote.key]], True, value, client, remote)
        settled = {remote.key for remote in finished}
        for remote in batch:
            if remote.key in settled:
                continue
            target = local[position[remote.key]]
            try:
                _settle(target, True, remote.result(), client, remote)
            except BaseException as exc:
                _settle(target, False, exc)


def _settle(
    local: Future[Any], ok: bool, value: Any, client: Any = None, remote: Any = None
) -> None:
    if ok and isinstance(value, _Replace):
        # The outcome is here: the worker can go (its copy released first, so the
        # scheduler does not compute it again), and the task settles once it is gone.
        if remote is not None:
            remote.release()
        replace = value

        def restart_then_settle() -> None:
            try:
                restart_worker(client, address=replace.address)
            finally:
                _settle(local, not replace.failed, replace.outcome)

        threading.Thread(
            target=restart_then_settle, name="nestflow-dask-restart", daemon=True
        ).start()
        return
    # Cancelled here (after a timeout or another item's failure): the result is discarded.
    with contextlib.suppress(InvalidStateError):
        (local.set_result if ok else local.set_exception)(value)


def _canceller(remote: Any) -> Callable[[Future[Any]], None]:
    def cancel_remote(done: Future[Any]) -> None:
        if done.cancelled():
            remote.cancel()

    return cancel_remote


def _bridge(client: Any, remote: Any, sink: Meter | None = None) -> Future[Any]:
    local: Future[Any] = Future()

    def settle(done: Any) -> None:
        try:
            value = done.result()
        except BaseException as exc:
            _settle(local, False, _unused_by(exc, sink))
        else:
            value = _unused(value, sink)
            _settle(local, True, value, client, remote)

    remote.add_done_callback(settle)
    local.add_done_callback(_canceller(remote))
    return local


def _off_loop(fn: Callable[[], T]) -> T:
    # distributed's synchronous client must not be created or driven from a thread that
    # runs an asyncio loop (a run's coordinator does); a plain helper thread is safe, and
    # a fresh one per call still works while the interpreter exits.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="nestflow-dask", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


_open_backends: weakref.WeakSet[DaskBackend] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for backend in list(_open_backends):
        backend.close()
