"""Static loop prevention at registration (SPEC 12.6, 12.10).

Within one organisation, the ``pipeline_call`` nodes of a pipeline, at any nesting depth
(nested pipelines, YAML ``call`` steps), whose URL is under the server's public URL and
names ``/v1/call/<the same org>/<name>`` are the edges of a call graph. Registering a
pipeline that would close a cycle of that graph is refused with ``CallCycleError``, citing
the chain from the pipeline being registered back to itself:
``acme/B -> acme/A -> acme/B``. A call to a pipeline not registered yet is an edge to
nowhere, allowed; the registration that later closes the cycle is the one refused.

The edges of the registered pipelines are found by loading them (``sources.load_pipeline``),
once per source and content hash, and only for the pipelines the new one can reach. The
runtime depth limit (508) still guards what this cannot see: calls across organisations or
servers, and two registrations racing each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Final
from urllib.parse import urlsplit

from nestflow.core.nesting import PipelineNode
from nestflow.core.pipeline import Pipeline
from nestflow.errors import CallCycleError
from nestflow.service.call import RemoteCall
from nestflow.service.sources import SourceError, load_pipeline
from nestflow.service.store import Store

DEFAULT_PUBLIC_URL: Final = "http://127.0.0.1:8787"
"""The server counted as "this server" when no public URL is configured (SPEC 12.10)."""

CALL_PREFIX: Final = "/v1/call/"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

Edges = Callable[[str], tuple[str, ...]]
"""The names of the same-organisation pipelines a registered pipeline calls, by name."""


def call_urls(pipeline: Pipeline) -> Iterator[str]:
    """The URL of every ``pipeline_call`` node of ``pipeline``, nested ones included."""
    for member in pipeline.nodes:
        if isinstance(member, PipelineNode):
            yield from call_urls(member.pipeline)
        elif isinstance(member.func, RemoteCall):
            yield member.func.url


def local_target(url: str, org: str, public_url: str) -> str | None:
    """The pipeline of ``org`` that ``url`` calls on the server at ``public_url``, if it does.

    >>> local_target("http://127.0.0.1:8787/v1/call/acme/b", "acme", DEFAULT_PUBLIC_URL)
    'b'
    >>> local_target("http://127.0.0.1:8787/v1/call/beta/b", "acme", DEFAULT_PUBLIC_URL) is None
    True
    """
    base, target = urlsplit(public_url), urlsplit(url)
    if _origin(base.scheme, base.netloc) != _origin(target.scheme, target.netloc):
        return None
    prefix = base.path.rstrip("/") + CALL_PREFIX
    if not target.path.startswith(prefix):
        return None
    owner, _, name = target.path[len(prefix) :].rstrip("/").partition("/")
    return name if owner == org and name and "/" not in name else None


def _origin(scheme: str, netloc: str) -> tuple[str, str, int | None]:
    """Scheme, host and port, with the scheme's default port made explicit."""
    parsed = urlsplit(f"{scheme}://{netloc}")
    scheme = scheme.lower()
    try:
        port = parsed.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number: no server matches it
        port = None
    return scheme, (parsed.hostname or "").lower(), port


def targets(pipeline: Pipeline, org: str, public_url: str) -> tuple[str, ...]:
    """The pipelines of ``org`` on this server that ``pipeline`` calls, sorted, once each."""
    found = (local_target(url, org, public_url) for url in call_urls(pipeline))
    return tuple(sorted({name for name in found if name is not None}))


def find_cycle(start: str, calls: tuple[str, ...], edges: Edges) -> list[str] | None:
    """A chain ``[start, ..., start]`` of calls, if ``start`` calling ``calls`` closes one.

    Depth first, in name order, so the chain reported for a given graph is always the same.
    """
    seen: set[str] = set()

    def walk(name: str, chain: list[str]) -> list[str] | None:
        for callee in calls if name == start else edges(name):
            if callee == start:
                return [*chain, callee]
            if callee not in seen:
                seen.add(callee)
                found = walk(callee, [*chain, callee])
                if found is not None:
                    return found
        return None

    return walk(start, [start])


class CallGraph:
    """The call edges of an organisation's registered pipelines, read from the store.

    Loaded pipelines are kept by (source, content hash), so re-registering or registering
    a neighbour loads only what changed. Safe to share between threads.
    """

    def __init__(self) -> None:
        self._edges: dict[tuple[str, str, str, str], tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def check(
        self, store: Store, org: str, name: str, pipeline: Pipeline, public_url: str | None
    ) -> None:
        """Raise ``CallCycleError`` if registering ``pipeline`` as ``org/name`` closes a cycle."""
        base = public_url or DEFAULT_PUBLIC_URL
        chain = find_cycle(
            name,
            targets(pipeline, org, base),
            lambda callee: self._registered(store, org, callee, base),
        )
        if chain is not None:
            shown = " -> ".join(f"{org}/{step}" for step in chain)
            raise CallCycleError(
                f"Registering {org}/{name} would close a loop of pipeline calls: {shown}. "
                "A pipeline cannot reach itself through calls within its organisation (SPEC "
                f"12.6); remove the pipeline_call to {org}/{chain[1]} from {org}/{name}, or one "
                "of the others along the chain."
            )

    def _registered(self, store: Store, org: str, name: str, base: str) -> tuple[str, ...]:
        """What the registered ``org/name`` calls; nothing when it is not registered."""
        found = store.get_pipeline(org, name)
        if found is None:
            return ()
        key = (found.source, found.content_hash, org, base)
        with self._lock:
            known = self._edges.get(key)
        if known is not None:
            return known
        try:
            edges = targets(load_pipeline(found.source), org, base)
        except SourceError:  # it cannot load now, so it cannot run either: no calls
            edges = ()
        with self._lock:
            self._edges[key] = edges
        return edges


GRAPH: Final = CallGraph()
"""The process's call graph cache, shared by the admin API and the command line."""
