"""Executors: where one node call runs. They know nothing of caches, callbacks or reports.

Every level of a run has one executor, chosen from its effective backend when the level
opens: inline (this thread), a thread pool, worker processes, or a backend's session
(dask or a custom backend; such a backend is always asked to submit). Both drivers
hand calls to the same executors: the synchronous driver waits on ``call``, the
asynchronous one awaits ``settle`` on the future of ``submit``.

A call with a timeout that would run in a local thread gets a daemon thread of its own
(``Deadline``): a thread cannot be interrupted, and an abandoned call must never hold a
pool slot that later calls wait for.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from nestflow.core import usage
from nestflow.engines.workers import WorkerTimeout

if TYPE_CHECKING:  # concurrent.futures (and logging) load with the first call not run inline
    from concurrent.futures import Future, ThreadPoolExecutor

    from nestflow.engines.protocol import NodeCall, Session


class CallTimeout(Exception):
    """A call ran past its deadline; ``stopped`` says what became of it."""

    def __init__(self, stopped: str, abandoned: bool = False) -> None:
        super().__init__(stopped)
        self.stopped = stopped
        self.abandoned = abandoned
        """A thread was left running (its result will be discarded)."""


class Executor(Protocol):
    """Runs node calls somewhere."""

    kind: str
    """``inline``, ``threads``, ``processes`` or ``session``."""

    def submit(self, call: NodeCall) -> Future[Any]:
        """Start ``call``; the future holds its result or exception."""
        ...

    def call(self, call: NodeCall) -> Any:
        """Run ``call`` and wait for its result (``CallTimeout`` past its deadline)."""
        ...


def _done(fn: Callable[[], Any]) -> Future[Any]:
    from concurrent.futures import Future

    future: Future[Any] = Future()
    try:
        future.set_result(fn())
    except BaseException as exc:
        future.set_exception(exc)
    return future


class Inline:
    """Calls run in the calling thread."""

    kind = "inline"

    def submit(self, call: NodeCall) -> Future[Any]:
        return _done(lambda: call.fn(*call.args, **call.kwargs))

    def call(self, call: NodeCall) -> Any:
        return call.fn(*call.args, **call.kwargs)


INLINE = Inline()


class Threads:
    """Calls run in a thread pool; context variables travel with them (trace spans)."""

    kind = "threads"

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool

    def submit(self, call: NodeCall) -> Future[Any]:
        context = contextvars.copy_context()
        return self.pool.submit(context.run, call.fn, *call.args, **call.kwargs)

    def call(self, call: NodeCall) -> Any:
        return self.submit(call).result()


class Deadline:
    """A timed call in a daemon thread of its own, abandoned (not stopped) at its deadline.

    The threads of abandoned calls are remembered: a worker process (a map item's, or a
    dask worker) that still runs one after its task is replaced (``runaway``).
    """

    kind = "deadline"

    def __init__(self) -> None:
        self._threads: weakref.WeakKeyDictionary[Future[Any], threading.Thread] = (
            weakref.WeakKeyDictionary()
        )
        self._abandoned: weakref.WeakSet[threading.Thread] = weakref.WeakSet()

    def abandon(self, future: Future[Any]) -> None:
        """The call of ``future`` ran past its deadline: its thread is left running."""
        thread = self._threads.pop(future, None)
        if thread is not None and thread.is_alive():
            self._abandoned.add(thread)

    def runaway(self) -> int:
        """How many abandoned calls still run in this process."""
        return sum(1 for thread in list(self._abandoned) if thread.is_alive())

    def submit(self, call: NodeCall) -> Future[Any]:
        from concurrent.futures import Future

        future: Future[Any] = Future()
        context = contextvars.copy_context()

        def work() -> None:
            try:
                outcome = context.run(call.fn, *call.args, **call.kwargs)
            except BaseException as exc:
                if not future.done():
                    future.set_exception(exc)
                return
            if not future.done():
                future.set_result(outcome)

        name = f"nestflow-{call.node_path.rsplit(' > ', 1)[-1]}"
        thread = threading.Thread(target=work, name=name, daemon=True)
        self._threads[future] = thread
        thread.start()
        return future

    def call(self, call: NodeCall) -> Any:
        return wait(self, self.submit(call), call.timeout)


DEADLINE = Deadline()


class Processes:
    """Calls cloudpickled to worker processes; a timed-out worker is terminated and replaced."""

    kind = "processes"

    def __init__(self, size: int) -> None:
        self.size = size

    def submit(self, call: NodeCall) -> Future[Any]:
        from nestflow.engines import processes  # multiprocessing, only when processes run

        payload = processes.dumps_call(call.fn, list(call.args), dict(call.kwargs))
        return self.submit_pickled(payload, call.timeout)

    def submit_pickled(self, payload: bytes, timeout: float | None = None) -> Future[Any]:
        """Run a call already pickled by ``processes.dumps_call``."""
        from nestflow.engines import processes

        reply = processes.shared_pool(self.size).submit(payload, timeout)
        return processes.decoded(reply, usage.current())

    def call(self, call: NodeCall) -> Any:
        return wait(self, self.submit(call), None)


class Sessions:
    """Calls handed to a backend's session (dask, or a custom backend)."""

    kind = "session"

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def remote(self) -> bool:
        """Whether calls leave this process (values are checked for pickling first)."""
        return bool(getattr(self.session, "remote", False))

    def submit(self, call: NodeCall) -> Future[Any]:
        return self.session.submit(call)

    def call(self, call: NodeCall) -> Any:
        return wait(self, self.submit(call), call.timeout)

    def abandon(self, future: Future[Any]) -> None:
        """The call of ``future`` ran past its deadline: the session frees what runs it,
        when it can (``Session.stop``, optional: dask restarts the worker)."""
        stop = getattr(self.session, "stop", None)
        if stop is not None:
            stop(future)


STOPPED = {
    "inline": "its thread was abandoned",
    "deadline": "its thread was abandoned",
    "threads": "its thread was abandoned",
    "processes": "its worker process was terminated and replaced",
    "session": "its task was cancelled",
}


def timed_out(executor: Executor) -> CallTimeout:
    """The timeout of a call on ``executor``."""
    kind = executor.kind
    return CallTimeout(STOPPED[kind], abandoned=kind in ("inline", "deadline", "threads"))


def runaway() -> int:
    """How many calls abandoned at their deadline still run threads in this process."""
    return DEADLINE.runaway()


def _abandon(executor: Executor, future: Future[Any]) -> None:
    abandon = getattr(executor, "abandon", None)
    if abandon is not None:
        abandon(future)
    future.cancel()


def wait(executor: Executor, future: Future[Any], timeout: float | None) -> Any:
    """The result of ``future``, or ``CallTimeout`` after ``timeout`` seconds."""
    try:
        return future.result(timeout)
    except TimeoutError:  # what concurrent.futures raises (an alias since Python 3.11)
        _abandon(executor, future)
        raise timed_out(executor) from None
    except WorkerTimeout:
        raise timed_out(executor) from None


async def settle(executor: Executor, future: Future[Any], timeout: float | None) -> Any:
    """Await ``future`` on the running loop, or ``CallTimeout`` after ``timeout`` seconds."""
    import asyncio  # loaded already: a loop is running

    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
    except TimeoutError:
        _abandon(executor, future)
        raise timed_out(executor) from None
    except WorkerTimeout:
        raise timed_out(executor) from None


def for_call(executor: Executor, timeout: float | None) -> Executor:
    """The executor a call with ``timeout`` takes: local threads cannot be interrupted, so a
    timed call gets a thread of its own (``Deadline``)."""
    if timeout is not None and executor.kind in ("inline", "threads"):
        return DEADLINE
    return executor
