"""Thread pools for sync work under the threaded and async modes, one set per run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


class ThreadPools:
    """The pools of one run, one per size, closed when the run ends."""

    def __init__(self) -> None:
        self._pools: dict[int, ThreadPoolExecutor] = {}

    def get(self, size: int) -> ThreadPoolExecutor:
        """The pool with ``size`` workers, created on first use."""
        pool = self._pools.get(size)
        if pool is None:
            pool = self._pools[size] = ThreadPoolExecutor(size, thread_name_prefix="nestflow")
        return pool

    def close(self) -> None:
        """Shut every pool down without waiting for abandoned work."""
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()
