"""Worker processes for the parallel mode: cloudpickled calls, kill-and-replace on timeout.

Each worker process is fed one call at a time by its own feeder thread, so a call
that runs past its timeout is stopped by terminating just that worker; the next call
gets a fresh one. Pools are kept per size and reused across runs, and closed at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import os
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

from nestflow.core import usage
from nestflow.core.usage import Meter, Usage
from nestflow.engines import workers
from nestflow.engines.workers import WorkerTimeout
from nestflow.errors import BackendError

WORKER_NAME = "nestflow-worker"
"""The name of every worker process; a spawned child knows it is one while it starts."""

UNGUARDED_EXIT = 78
"""A worker's exit code when importing the main module made it start workers of its own
(sysexits' EX_CONFIG: the script, not the call, needs fixing)."""

_main_unguarded = False
"""Set once a worker exited with ``UNGUARDED_EXIT``: no later worker can start either."""


@dataclass(frozen=True, slots=True)
class RemoteFailure:
    """A worker-side exception whose object could not be sent back."""

    type_name: str
    message: str
    traceback: str


RETIRING = b"\0retiring"
"""Sent before a reply by a worker that ends after it: a call it ran was abandoned at its
deadline and still runs a thread there (``executors.runaway``). No reply (a pickle) is
ever equal to it."""


def _worker_main(conn: Connection) -> None:
    workers.IN_WORKER = True
    from nestflow.engines import executors

    while True:
        try:
            payload = conn.recv_bytes()
        except EOFError:
            return
        reply = _execute(payload)
        if executors.runaway():
            conn.send_bytes(RETIRING)
            conn.send_bytes(reply)
            return  # the runaway thread ends with this process; the pool starts another
        conn.send_bytes(reply)


def _execute(payload: bytes) -> bytes:
    collected = Usage()  # what the call reports with record_usage, sent back with its reply
    try:
        with usage.collecting(collected):
            fn, args, kwargs = cloudpickle.loads(payload)
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
    except BaseException as exc:
        return _dump_error(exc, collected.totals())
    try:
        return bytes(cloudpickle.dumps(("ok", result, collected.totals())))
    except Exception as exc:
        return _dump_error(exc, collected.totals(), result_type=type(result).__name__)


def _dump_error(
    exc: BaseException, used: dict[str, float], result_type: str | None = None
) -> bytes:
    if exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
        exc.__traceback__ = exc.__traceback__.tb_next  # from the called function on
    text = "".join(traceback.format_exception(exc))
    if result_type is not None:
        failure = RemoteFailure("SerializationError", f"result of type {result_type}: {exc}", text)
        return bytes(cloudpickle.dumps(("unsendable", failure, used)))
    try:
        blob = cloudpickle.dumps(exc)
    except Exception:
        blob = None
    failure = RemoteFailure(type(exc).__name__, str(exc), text)
    return bytes(cloudpickle.dumps(("error", (blob, failure), used)))


def decode(message: bytes, sink: Meter | None = None) -> Any:
    """The value a worker sent back, or raise what it raised; the usage the call reported
    is added to ``sink`` either way.

    An exception that cannot be rebuilt here raises ``RemoteFailure`` data wrapped by the caller.
    """
    kind, body, used = cloudpickle.loads(message)
    if used and sink is not None:
        sink.merge(used)
    if kind == "ok":
        return body
    if kind == "unsendable":
        raise _Unsendable(body)
    blob, failure = body
    if blob is not None:
        try:
            error = cloudpickle.loads(blob)
        except Exception:
            error = None
        if isinstance(error, BaseException):
            if error.__cause__ is None:  # the worker's frames, as concurrent.futures shows them
                error.__cause__ = RemoteTraceback(failure.traceback)
            raise error
    raise _Unrebuildable(failure)


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (its ``__cause__``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


class _Unsendable(Exception):
    def __init__(self, failure: RemoteFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class _Unrebuildable(Exception):
    def __init__(self, failure: RemoteFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


Unsendable = _Unsendable
Unrebuildable = _Unrebuildable


class _Worker:
    """One worker process and the pipe to it, started on first use."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self._process: Any = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        pipe: tuple[Connection, Connection] = self._context.Pipe()
        parent, child = pipe
        process = self._context.Process(
            target=_worker_main, args=(child,), daemon=True, name=WORKER_NAME
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        return parent

    def call(self, payload: bytes, timeout: float | None) -> bytes:
        if _main_unguarded:
            raise unguarded_main_error()
        conn = self._conn if self._process is not None and self._process.is_alive() else None
        conn = conn or self._start()
        try:
            conn.send_bytes(payload)
            if not conn.poll(timeout):
                self.stop()
                raise WorkerTimeout
            reply = conn.recv_bytes()
            if reply == RETIRING:  # the worker ends after this reply; the next call starts one
                reply = conn.recv_bytes()
                self.stop()
            return reply
        except (EOFError, OSError):
            raise self._lost() from None

    def _lost(self) -> BackendError:
        """The error for a worker that died: how it ended, read once it has been reaped."""
        code = None
        if self._process is not None:
            self._process.join(5)
            code = self._process.exitcode
        self.stop()
        return worker_lost(code)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn = None, None


class ProcessPool:
    """``size`` worker processes fed from one queue; a timed-out call kills only its worker."""

    def __init__(self, size: int) -> None:
        _stop_if_bootstrapping()
        if workers.IN_WORKER:
            raise BackendError("worker processes cannot start worker processes of their own")
        self.size = size
        self._queue: queue.SimpleQueue[tuple[bytes, float | None, Future[bytes]] | None] = (
            queue.SimpleQueue()
        )
        context = multiprocessing.get_context("spawn")
        self._workers = [_Worker(context) for _ in range(size)]
        self._threads = [
            threading.Thread(target=self._feed, args=(w,), daemon=True, name="nestflow-feeder")
            for w in self._workers
        ]
        for thread in self._threads:
            thread.start()

    def _feed(self, worker: _Worker) -> None:
        while (task := self._queue.get()) is not None:
            payload, timeout, future = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(worker.call(payload, timeout))
            except BaseException as exc:
                future.set_exception(exc)
        worker.stop()

    def submit(self, payload: bytes, timeout: float | None = None) -> Future[bytes]:
        """Queue a cloudpickled ``(fn, args, kwargs)``; the future holds the worker's reply."""
        future: Future[bytes] = Future()
        self._queue.put((payload, timeout, future))
        return future

    def close(self) -> None:
        """Stop every worker once its current call ends."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(10)


def _stop_if_bootstrapping() -> None:
    """In a worker still importing the main module, exit at once with ``UNGUARDED_EXIT``.

    Spawned workers import the main module again; a script that runs its pipelines at
    import time, with no ``if __name__ == "__main__":`` guard, would make every worker
    start workers of its own. The parent reads the exit code and explains the guard;
    a traceback printed here would be repeated by every worker.
    """
    process = multiprocessing.current_process()
    if getattr(process, "_inheriting", False) and process.name == WORKER_NAME:
        os._exit(UNGUARDED_EXIT)


def worker_lost(code: int | None) -> BackendError:
    """The error for a worker that died while running a call, from its exit code."""
    global _main_unguarded
    if code == UNGUARDED_EXIT:
        _main_unguarded = True
        return unguarded_main_error()
    if code is not None and code < 0:
        how = f"was killed by {_signal_name(-code)}"
    else:
        how = "ended" if code is None else f"exited with code {code}"
    hint = (
        " SIGKILL usually comes from the system's out-of-memory killer (or kill -9): check "
        "the memory the node needs, or run fewer workers (LocalBackend(max_workers=...))."
        if code == -signal.SIGKILL
        else ""
    )
    return BackendError(
        f"A worker process {how} while running a call. The pool replaced it; the call "
        f"itself is lost.{hint}"
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def unguarded_main_error() -> BackendError:
    """Worker processes cannot start because the main module runs pipelines on import."""
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    where = f"`{os.path.basename(script)}`" if script else "the main module"
    return BackendError(
        f"Worker processes cannot start: {where} runs a pipeline when it is imported. "
        "'parallel' execution (LocalBackend(node_execution='parallel') or "
        "map_execution='parallel') starts worker processes, and each one imports the main "
        "module again, which would start the run again. Put the code that runs pipelines "
        f'under a guard at the end of {where}:\n\n    if __name__ == "__main__":\n'
        "        main()  # or the run itself\n\n"
        "Nodes and pipelines may still be defined at module level. Or use 'threaded' "
        "instead of 'parallel'."
    )


_pools: dict[int, ProcessPool] = {}
_pools_lock = threading.Lock()


def shared_pool(size: int | None = None) -> ProcessPool:
    """The process pool of ``size`` workers (default: one per CPU), reused across runs."""
    size = size or os.cpu_count() or 1
    with _pools_lock:
        pool = _pools.get(size)
        if pool is None:
            pool = _pools[size] = ProcessPool(size)
        return pool


@atexit.register
def close_pools() -> None:
    """Close every shared pool (at interpreter exit, or by hand)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


def decoded(reply: Future[bytes], sink: Meter | None = None) -> Future[Any]:
    """A future of the decoded value (or raised exception) of a worker's reply; the usage
    the call reported is added to ``sink``."""
    result: Future[Any] = Future()

    def settle(done: Future[bytes]) -> None:
        try:
            result.set_result(decode(done.result(), sink))
        except BackendError as exc:
            # A lost worker is reported by nestflow itself; the frames of the pool's feeder
            # thread would only push the message further from the user's own call.
            result.set_exception(exc.with_traceback(None))
        except BaseException as exc:
            result.set_exception(exc)

    reply.add_done_callback(settle)
    return result


def dumps_call(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> bytes:
    """Serialise one call with cloudpickle (functions from ``__main__`` and closures travel)."""
    return bytes(cloudpickle.dumps((fn, args, kwargs)))
