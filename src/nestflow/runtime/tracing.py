"""Trace context for user code: a node's span is current while its function runs.

A callback that traces (``TelemetryCallback``) offers ``carrier(node_id, ctx)``: the W3C
trace context of the span about to run. The runtime wraps the node's function so that the
context is attached where the function runs (this thread, a pool thread, a worker process
or a dask worker: the wrapper is picklable and attaches on the far side).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from nestflow.callbacks.events import CallbackContext
from nestflow.runtime.context import Level


def carrier_for(level: Level, node_id: str, attempt: int = 1) -> dict[str, str]:
    """The trace carrier a callback of ``level`` offers for ``node_id`` (``{}`` if none)."""
    for callback in level.config.callbacks:
        offer = getattr(callback, "carrier", None)
        if offer is None:
            continue
        with contextlib.suppress(Exception):  # tracing must never break a run
            return dict(offer(node_id, CallbackContext(level, node_id, None, attempt)))
    return {}


def traced_fn(fn: Any, carrier: Mapping[str, str], is_async: bool) -> Any:
    """``fn``, run with ``carrier`` attached."""
    if not carrier:
        return fn
    wrapper = TracedAsync if is_async else Traced
    return wrapper(fn, dict(carrier))


@contextlib.contextmanager
def attached(carrier: Mapping[str, str]) -> Iterator[None]:
    """Make the span of ``carrier`` current here (a no-op without OpenTelemetry)."""
    if not carrier:
        yield
        return
    try:
        from opentelemetry import context, propagate
    except ImportError:  # a worker without the extra: run untraced
        yield
        return
    token = context.attach(propagate.extract(dict(carrier)))
    try:
        yield
    finally:
        context.detach(token)


class Traced:
    """A sync node function that runs under a trace context; picklable."""

    __slots__ = ("carrier", "fn")

    def __init__(self, fn: Any, carrier: dict[str, str]) -> None:
        self.fn, self.carrier = fn, carrier

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with attached(self.carrier):
            return self.fn(*args, **kwargs)


class TracedAsync(Traced):
    """An async node function that runs under a trace context; picklable."""

    __slots__ = ()

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with attached(self.carrier):
            return await self.fn(*args, **kwargs)
