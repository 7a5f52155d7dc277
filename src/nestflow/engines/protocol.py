"""The public backend protocol: what a custom or future backend implements.

A backend opens one ``Session`` per pipeline level per run; the runtime hands the
session self-contained tasks and awaits the ``concurrent.futures.Future`` it returns.
Scheduling, events, caching and reports stay in the coordinating process.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Dimension = Literal["node", "map"]


@dataclass(frozen=True, slots=True)
class NodeCall:
    """One attempt of one function node: everything a worker needs, and nothing else."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    timeout: float | None = None
    node_path: str = ""
    carrier: Mapping[str, str] = field(default_factory=dict)
    """W3C trace context (``traceparent``) to attach before the call runs."""

    def run(self) -> Any:
        """Execute the call where it stands (a worker); coroutines run to completion."""
        result = self.fn(*self.args, **self.kwargs)
        if isinstance(result, types.CoroutineType):
            import asyncio

            return asyncio.run(result)
        return result


@runtime_checkable
class Session(Protocol):
    """A backend opened for one pipeline level of one run."""

    remote: bool
    """Whether tasks leave the coordinating process (values are checked for pickling first)."""

    def submit(self, task: NodeCall) -> Future[Any]:
        """Start ``task``; the future holds its result or exception."""
        ...

    def capacity(self, dimension: Dimension) -> int | None:
        """How many tasks of ``dimension`` run at once: 1 is sequential, ``None`` unbounded."""
        ...

    def close(self) -> None:
        """Release what the session holds."""
        ...


@runtime_checkable
class Backend(Protocol):
    """Decides how and where the work of a pipeline level runs.

    The three attributes are read, never set, by nestflow: a plain attribute, a property or
    a narrower type (``LocalBackend``'s ``Literal`` modes) all satisfy them.
    """

    @property
    def label(self) -> str:
        """A short description shown in progress, reports and diagrams (``Dask(local×4)``)."""
        ...

    @property
    def node_execution(self) -> str:
        """How the nodes of one run (or one map item) are scheduled: ``"sequential"``, ..."""
        ...

    @property
    def map_execution(self) -> str:
        """How the items of a map are distributed: ``"sequential"``, ``"parallel"``, ..."""
        ...

    def open(self) -> Session:
        """A session for one level of one run."""
        ...
