"""LocalBackend's session: the public protocol served by this machine's threads and processes.

The runtime drives LocalBackend levels directly (async nodes stay on the run's event
loop); this session is what the protocol offers to code that holds a backend.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from nestflow.engines import processes
from nestflow.engines.backends import LocalBackend
from nestflow.engines.protocol import Dimension, NodeCall


class LocalSession:
    """Runs NodeCalls inline, in a thread pool or in worker processes, by ``node_execution``."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self.remote = backend.node_execution == "parallel"
        self._threads: ThreadPoolExecutor | None = None

    def capacity(self, dimension: Dimension) -> int | None:
        """Workers per dimension; 1 is sequential."""
        mode = self.backend.node_execution if dimension == "node" else self.backend.map_execution
        return self.backend.workers(mode)

    def submit(self, task: NodeCall) -> Future[Any]:
        """Run ``task`` according to the backend's node_execution mode."""
        mode = self.backend.node_execution
        if mode == "parallel":
            pool = processes.shared_pool(self.backend.workers("parallel"))
            reply = pool.submit(processes.dumps_call(NodeCall.run, [task], {}), task.timeout)
            return processes.decoded(reply)
        if mode == "sequential":
            future: Future[Any] = Future()
            try:
                future.set_result(task.run())
            except BaseException as exc:
                future.set_exception(exc)
            return future
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.backend.workers(mode), "nestflow-session")
        return self._threads.submit(task.run)

    def close(self) -> None:
        """Shut the session's thread pool down (shared process pools stay for reuse)."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None
