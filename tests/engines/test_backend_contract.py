"""A7.11 and SPEC 7.5: every backend passes BackendContract, a custom one included."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from nestflow import LocalBackend, Pipeline, node
from nestflow.backends import Backend, NodeCall, Session
from nestflow.testing import BackendContract


class PoolBackend:
    """A custom backend written only against the public protocol: a thread pool."""

    label = "Pool(2)"
    node_execution = "threaded"
    map_execution = "threaded"

    def __init__(self) -> None:
        self.sessions: list[PoolSession] = []

    def open(self) -> PoolSession:
        session = PoolSession()
        self.sessions.append(session)
        return session


class PoolSession:
    remote = False

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(2)
        self.submitted: list[str] = []
        self.closed = False

    def submit(self, task: NodeCall) -> Future[Any]:
        self.submitted.append(task.node_path)
        return self.pool.submit(task.run)

    def capacity(self, dimension: str) -> int | None:
        return 2

    def close(self) -> None:
        self.closed = True
        self.pool.shutdown(wait=False, cancel_futures=True)


class TestCustomBackend(BackendContract):
    def make_backend(self) -> PoolBackend:
        return PoolBackend()


class TestLocalSequential(BackendContract):
    def make_backend(self) -> LocalBackend:
        return LocalBackend()


class TestLocalThreaded(BackendContract):
    def make_backend(self) -> LocalBackend:
        return LocalBackend(node_execution="threaded", map_execution="threaded", max_workers=4)


class TestLocalAsync(BackendContract):
    def make_backend(self) -> LocalBackend:
        return LocalBackend(node_execution="async", map_execution="async")


class TestLocalParallel(BackendContract):
    def make_backend(self) -> LocalBackend:
        return LocalBackend(node_execution="parallel", map_execution="parallel", max_workers=2)


def test_a7_11_custom_backend_satisfies_the_protocol_and_gets_every_call() -> None:
    backend = PoolBackend()
    assert isinstance(backend, Backend)

    @node(output_name="y")
    def f(x: int) -> int:
        return x * 3

    assert Pipeline([f], name="p", backend=backend).run(x=2) == {"y": 6}
    (session,) = backend.sessions
    assert isinstance(session, Session)
    assert session.submitted == ["p > f"]
    assert session.closed, "the runtime closes every session it opened when the run ends"


def test_local_backend_sessions_run_node_calls_in_every_mode() -> None:
    def triple(x: int) -> int:
        return x * 3

    for mode in ("sequential", "threaded", "async", "parallel"):
        session = LocalBackend(node_execution=mode, max_workers=2).open()
        try:
            assert session.submit(NodeCall(triple, (4,), {})).result(timeout=30) == 12
            assert session.remote == (mode == "parallel")
            assert session.capacity("node") == (1 if mode == "sequential" else 2)
        finally:
            session.close()
