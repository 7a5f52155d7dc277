"""LocalBackend's session: the public protocol, served by the runtime's own executors.

The runtime gives LocalBackend levels executors directly (async nodes stay on the run's
event loop); this session is what the protocol offers to code that holds a backend, and it
hands calls to the same executors (``engines/executors.py``).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from nestflow.engines import executors
from nestflow.engines.backends import LocalBackend
from nestflow.engines.protocol import Dimension, NodeCall


class LocalSession:
    """Runs NodeCalls inline, in a thread pool or in worker processes, by ``node_execution``."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self.remote = backend.node_execution == "parallel"
        self._threads: ThreadPoolExecutor | None = None
        self._executor: executors.Executor | None = None

    def capacity(self, dimension: Dimension) -> int | None:
        """Workers per dimension; 1 is sequential."""
        mode = self.backend.node_execution if dimension == "node" else self.backend.map_execution
        return self.backend.workers(mode)

    def submit(self, task: NodeCall) -> Future[Any]:
        """Run ``task`` according to the backend's node_execution mode."""
        whole = NodeCall(task.run, (), {}, timeout=task.timeout, node_path=task.node_path)
        return self._open().submit(whole)

    def _open(self) -> executors.Executor:
        if self._executor is None:
            mode = self.backend.node_execution
            if mode == "parallel":
                self._executor = executors.Processes(self.backend.workers(mode))
            elif mode == "sequential":
                self._executor = executors.INLINE
            else:
                self._threads = ThreadPoolExecutor(self.backend.workers(mode), "nestflow-session")
                self._executor = executors.Threads(self._threads)
        return self._executor

    def close(self) -> None:
        """Shut the session's thread pool down (shared process pools stay for reuse)."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None
        self._executor = None
