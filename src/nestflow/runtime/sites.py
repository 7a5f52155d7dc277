"""Where a node function runs, for the functions that ask: ``current_site()``.

The runtime hands a node's function its inputs only. A few functions need more: a
``pipeline_call`` node names its pipeline and node in its request headers and forwards the
progress of a streamed call to the callbacks (``on_remote_event``). Such a function says so
with a true ``__nestflow_site__`` attribute; the runtime then wraps it (``Sited``), and while
it runs, ``current_site()`` tells it the run's root pipeline, its node id and path, and takes
its events.

Hooks run only in the thread coordinating a run. An event sent from that thread (a node
called inline, the default) reaches the callbacks at once; one sent from anywhere else (a
pool thread, a worker process, dask) is kept and delivered, in order, when the call
returns, before ``on_node_end``. The wrapper is picklable: its delivery hook stays behind.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Mapping
from typing import Any

_current: contextvars.ContextVar[Site | None] = contextvars.ContextVar(
    "nestflow_site", default=None
)


class Site:
    """The node call a function runs as."""

    __slots__ = ("_live", "_thread", "events", "node", "path", "pipeline")

    def __init__(
        self,
        pipeline: str,
        node: str,
        path: str,
        live: Callable[[Mapping[str, Any]], None] | None,
        thread: int | None,
    ) -> None:
        self.pipeline = pipeline
        """The name of the run's root pipeline."""
        self.node = node
        """The node's id at its level."""
        self.path = path
        """``root > nested node id > ... > node``, as reports say it."""
        self.events: list[dict[str, Any]] = []
        """Events kept for delivery when the call returns."""
        self._live, self._thread = live, thread

    def emit(self, event: Mapping[str, Any]) -> None:
        """Hand ``event`` to the callbacks' ``on_remote_event`` (now, or when the call ends)."""
        if self._live is not None and threading.get_ident() == self._thread:
            self._live(event)
        else:
            self.events.append(dict(event))


def current_site() -> Site | None:
    """The node call running here, for a function marked ``__nestflow_site__``; else None."""
    return _current.get()


def wants_site(fn: Any) -> bool:
    """Whether ``fn`` asks to know where it runs."""
    return bool(getattr(fn, "__nestflow_site__", False))


class Sited:
    """A sync node function run with its site current; returns ``Delivered``. Picklable."""

    __slots__ = ("fn", "live", "node", "path", "pipeline", "thread")

    def __init__(
        self,
        fn: Any,
        pipeline: str,
        node: str,
        path: str,
        live: Callable[[Mapping[str, Any]], None] | None,
    ) -> None:
        self.fn, self.pipeline, self.node, self.path = fn, pipeline, node, path
        self.live = live
        self.thread: int | None = threading.get_ident()

    def __call__(self, *args: Any, **kwargs: Any) -> Delivered:
        site = Site(self.pipeline, self.node, self.path, self.live, self.thread)
        token = _current.set(site)
        try:
            value = self.fn(*args, **kwargs)
        finally:
            _current.reset(token)
        return Delivered(value, site.events)

    def __getstate__(self) -> dict[str, Any]:
        # The delivery hook belongs to the coordinating thread: it does not travel.
        return {"fn": self.fn, "pipeline": self.pipeline, "node": self.node, "path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.fn, self.pipeline = state["fn"], state["pipeline"]
        self.node, self.path = state["node"], state["path"]
        self.live, self.thread = None, None


class SitedAsync(Sited):
    """An async node function run with its site current."""

    __slots__ = ()

    async def __call__(self, *args: Any, **kwargs: Any) -> Delivered:  # type: ignore[override]
        site = Site(self.pipeline, self.node, self.path, self.live, self.thread)
        token = _current.set(site)
        try:
            value = await self.fn(*args, **kwargs)
        finally:
            _current.reset(token)
        return Delivered(value, site.events)


class Delivered:
    """What a sited call returned, and the events it kept for delivery."""

    __slots__ = ("events", "value")

    def __init__(self, value: Any, events: list[dict[str, Any]]) -> None:
        self.value, self.events = value, events
