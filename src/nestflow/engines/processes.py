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
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

from nestflow.errors import BackendError

IN_WORKER = False
"""True inside a nestflow worker process (daemonic: it cannot start processes of its own)."""


class WorkerTimeout(Exception):
    """A call ran past its deadline; its worker was terminated."""


@dataclass(frozen=True, slots=True)
class RemoteFailure:
    """A worker-side exception whose object could not be sent back."""

    type_name: str
    message: str
    traceback: str


def _worker_main(conn: Connection) -> None:
    global IN_WORKER
    IN_WORKER = True
    while True:
        try:
            payload = conn.recv_bytes()
        except EOFError:
            return
        conn.send_bytes(_execute(payload))


def _execute(payload: bytes) -> bytes:
    try:
        fn, args, kwargs = cloudpickle.loads(payload)
        result = fn(*args, **kwargs)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except BaseException as exc:
        return _dump_error(exc)
    try:
        return bytes(cloudpickle.dumps(("ok", result)))
    except Exception as exc:
        return _dump_error(exc, result_type=type(result).__name__)


def _dump_error(exc: BaseException, result_type: str | None = None) -> bytes:
    text = "".join(traceback.format_exception(exc))
    if result_type is not None:
        failure = RemoteFailure("SerializationError", f"result of type {result_type}: {exc}", text)
        return bytes(cloudpickle.dumps(("unsendable", failure)))
    try:
        blob = cloudpickle.dumps(exc)
    except Exception:
        blob = None
    failure = RemoteFailure(type(exc).__name__, str(exc), text)
    return bytes(cloudpickle.dumps(("error", (blob, failure))))


def decode(message: bytes) -> Any:
    """The value a worker sent back, or raise what it raised.

    An exception that cannot be rebuilt here raises ``RemoteFailure`` data wrapped by the caller.
    """
    kind, body = cloudpickle.loads(message)
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
            raise error
    raise _Unrebuildable(failure)


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
        process = self._context.Process(target=_worker_main, args=(child,), daemon=True)
        process.start()
        child.close()
        self._process, self._conn = process, parent
        return parent

    def call(self, payload: bytes, timeout: float | None) -> bytes:
        conn = self._conn if self._process is not None and self._process.is_alive() else None
        conn = conn or self._start()
        conn.send_bytes(payload)
        if not conn.poll(timeout):
            self.stop()
            raise WorkerTimeout
        try:
            return conn.recv_bytes()
        except EOFError:
            code = self._process.exitcode if self._process is not None else None
            self.stop()
            raise BackendError(
                f"A worker process died while running a call (exit code {code}). The pool "
                "replaced it; the call itself is lost."
            ) from None

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
        if IN_WORKER:
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


def decoded(reply: Future[bytes]) -> Future[Any]:
    """A future of the decoded value (or raised exception) of a worker's reply."""
    result: Future[Any] = Future()

    def settle(done: Future[bytes]) -> None:
        try:
            result.set_result(decode(done.result()))
        except BaseException as exc:
            result.set_exception(exc)

    reply.add_done_callback(settle)
    return result


def dumps_call(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> bytes:
    """Serialise one call with cloudpickle (functions from ``__main__`` and closures travel)."""
    return bytes(cloudpickle.dumps((fn, args, kwargs)))
