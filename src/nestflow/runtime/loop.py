"""Run a coroutine to completion from synchronous code, even inside a running event loop.

``asyncio`` (with ssl, sockets and subprocesses: tens of milliseconds to import) is imported
by the functions here when they first run, so a run that needs no event loop never loads it.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``make()`` on a loop owned by this call.

    When the calling thread already runs an event loop (Jupyter, an async web handler),
    the run's loop is hosted in a helper thread; the caller's context variables are
    copied there, so ``capture()`` and OpenTelemetry spans keep working.
    """
    # Asked without an exception handler, so no failure of the run is raised "during
    # handling" of the RuntimeError that means "no loop here". No loop runs anywhere in a
    # process that has not imported asyncio.
    running = sys.modules.get("asyncio")
    if running is None or running._get_running_loop() is None:
        return run_here(make())
    return _run_in_helper_thread(make)


class _Held:
    """This thread's loop; closed when the thread ends and its locals are dropped."""

    __slots__ = ("loop", "pid")

    def __init__(self) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()

    def __del__(self) -> None:
        if self.pid == os.getpid() and not self.loop.is_running():
            self.loop.close()


_threads = threading.local()


def run_here(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on this thread's reusable event loop (no loop may be running here).

    Creating and closing a loop per run, as ``asyncio.run`` does, costs more than a
    whole small run; the loop is kept per thread (and per process, for forks) instead.
    Tasks a run leaves behind are cancelled when it ends, as ``asyncio.run`` would.
    """
    import asyncio

    held: _Held | None = getattr(_threads, "held", None)
    if held is None or held.loop.is_closed() or held.pid != os.getpid():
        held = _threads.held = _Held()
    loop = held.loop
    asyncio.set_event_loop(loop)
    try:
        value = loop.run_until_complete(coro)
    except BaseException:
        _discard(loop)
        raise
    finally:
        asyncio.set_event_loop(None)
    _cancel_leftovers(loop)
    return value


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    import asyncio

    leftovers = asyncio.all_tasks(loop)
    if not leftovers:
        return
    for task in leftovers:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))


def _discard(loop: asyncio.AbstractEventLoop) -> None:
    # After a failure (or Ctrl-C) the loop is closed as asyncio.run would close it;
    # the next run on this thread starts a fresh one.
    try:
        _cancel_leftovers(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def _run_in_helper_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    import asyncio

    context = contextvars.copy_context()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = context.run(asyncio.run, make())
        except BaseException as exc:  # re-raised in the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="nestflow-run", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value
