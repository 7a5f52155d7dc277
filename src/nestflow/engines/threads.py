"""Thread pools for sync work under the threaded and async modes; contextvars travel along."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


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


async def call_in_thread(
    pool: ThreadPoolExecutor, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]
) -> Any:
    """Run a sync call in ``pool`` and await its result on the current loop.

    The context is copied: OpenTelemetry keeps the current span in a contextvar, and
    pool threads start empty.
    """
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool, call)
