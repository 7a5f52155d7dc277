"""Cache decisions on the general path: signatures, hits as lazy values, stores (SPEC 8.1).

A node's signature hashes a per-run prefix (format, versions, code fingerprint, output
names) and one *representation* per input: ``s<signature>:<output>`` when the value
came from an eligible producer, ``v<fingerprint>`` otherwise, ``m<digest>`` for a list
published by a mapped node (the ordered per-item representations). Representations
live in the level's values dict under ``@name`` keys, next to the values, so they
travel wherever values are copied (map items, nested levels) and are computed once.

A hit does not read its value: the outputs become ``Pending`` values, read only when a
node that misses needs them or when they are returned. A stored value that cannot be
read any more (deleted, truncated) is recomputed by running its producer again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from nestflow.cache.fingerprint import Unhashable, code_fingerprint, fingerprint
from nestflow.cache.store import CacheMiss
from nestflow.core.config import EffectiveConfig
from nestflow.core.node import Node
from nestflow.errors import UnhashableInputError
from nestflow.runtime.calls import CallSpec
from nestflow.runtime.context import Level
from nestflow.runtime.plan import LevelPlan, Step
from nestflow.runtime.settings import child_config

REP = "@"
"""Prefix of the ``@name`` keys holding representations in a values dict (never a name)."""

_FORMAT = b"nestflow-sig/1"


_SALT: list[bytes] = []


def _salt() -> bytes:
    if not _SALT:
        from nestflow.version import __version__

        _SALT.append(".".join(__version__.split(".")[:2]).encode())
    return _SALT[0]


class Load:
    """The stored value of one hit, read at most once."""

    __slots__ = ("cache", "done", "entry", "recompute", "remaking", "value")

    def __init__(self, cache: Any, entry: Any, recompute: Callable[[], Awaitable[Any]]) -> None:
        self.cache, self.entry, self.recompute = cache, entry, recompute
        self.done = False
        self.value: Any = None
        self.remaking: asyncio.Future[Any] | None = None

    async def get(self) -> Any:
        """The value: read from the store, or recomputed (once) when the stored copy is unusable."""
        if self.done:
            return self.value
        if self.remaking is not None:  # another consumer is recomputing it: wait for that
            return await asyncio.shield(self.remaking)
        try:
            self.value = self.cache.load(self.entry)
        except CacheMiss:
            self.remaking = asyncio.get_running_loop().create_future()
            try:
                self.value = await self.recompute()
            except BaseException as exc:
                self.remaking.set_exception(exc)
                self.remaking.exception()  # retrieved: the awaiting consumers re-raise it
                raise
            self.remaking.set_result(self.value)
        self.done = True
        return self.value


class Pending:
    """An output of a cache hit whose value has not been read."""

    __slots__ = ("index", "load")

    def __init__(self, load: Load, index: int | None) -> None:
        self.load, self.index = load, index

    async def get(self) -> Any:
        """The output's value."""
        value = await self.load.get()
        return value if self.index is None else value[self.index]

    def __repr__(self) -> str:
        return "<cached value, not read>"


class PendingList(Pending):
    """A mapped node's output list holding pending items: read whole when needed."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    async def get(self) -> Any:
        """Every item's value, in order."""
        return [await resolved(item) for item in self.items]

    def __repr__(self) -> str:
        return f"<{len(self.items)} cached values, not read>"


def column(items: list[Any]) -> Any:
    """A result list, pending as a whole if any item is pending."""
    return PendingList(items) if any(isinstance(i, Pending) for i in items) else items


async def resolved(value: Any) -> Any:
    """``value``, read from the cache if it is ``Pending``."""
    return await value.get() if isinstance(value, Pending) else value


async def ready(names: Iterable[str], values: dict[str, Any]) -> None:
    """Read the ``Pending`` values among ``names`` into ``values`` (before a call uses them)."""
    for name in names:
        value = values.get(name)
        if isinstance(value, Pending):
            values[name] = await value.get()


def carry(source: dict[Any, Any], target: dict[Any, Any], pairs: Iterable[tuple[str, str]]) -> None:
    """Copy the representations of renamed values (``(from, to)`` pairs) across levels."""
    for old, new in pairs:
        rep = source.get(REP + old)
        if rep is not None:
            target[REP + new] = rep


def rep_of(key: str, names: tuple[str, ...]) -> bool:
    """Whether ``key`` is the representation key of one of ``names``."""
    return key[:1] == REP and key[1:] in names


def visible(values: dict[str, Any]) -> dict[str, Any]:
    """The values a callback may see: names only, read values only."""
    return {k: v for k, v in values.items() if k[:1] != REP and not isinstance(v, Pending)}


def eligible(level: Level, node: Node) -> bool:
    """A cache is in effect at ``level`` and the node allows caching."""
    return level.config.cache is not None and node.cache


# --- signatures ------------------------------------------------------------------------------


def _prefix(level: Level, step: Step, spec: CallSpec) -> Any:
    # Per run: the code fingerprint (it re-reads globals and closures, which may change
    # between runs); across runs: the hash state for that fingerprint, kept on the plan.
    # One plan may be nested under levels with different caches (versions): key by both.
    key = (id(level.plan), step.id, id(level.config.cache))
    prefixes = level.run.prefixes
    found = prefixes.get(key)
    if found is None:
        node = step.node
        assert isinstance(node, Node)
        code = level.run.codes.get((*level.hierarchy, step.id))
        if code is None:
            code = code_fingerprint(node.func, getattr(level.config.cache, "analyses", None))
        versions = (level.config.cache.cache_version, node.cache_version)
        memo_key = ("prefix", step.id, code, versions)
        found = level.plan.memo.get(memo_key)
        if found is None:
            found = _node_state(_head(versions[0]), versions[1], code, spec.outs)
            level.plan.memo[memo_key] = found
        prefixes[key] = found
    return found


def level_prefixes(
    level: Level, steps: Sequence[Step], specs: Sequence[CallSpec], codes: Sequence[bytes]
) -> list[Any]:
    """``prefix`` of each of ``steps`` (function nodes with their ``codes``), made together.

    The same hash states as ``prefix``, with the part every node shares (format, salt and
    the store's version) hashed once: a new process signs a whole level with little else.
    """
    head = _head(level.config.cache.cache_version)
    return [
        _node_state(head, step.node.cache_version, code, spec.outs)  # type: ignore[union-attr]
        for step, spec, code in zip(steps, specs, codes, strict=True)
    ]


def _part(value: Any) -> bytes:
    return b"\0" + (b"-" if value is None else str(value).encode())


def _head(cache_version: str | None) -> Any:
    """The hash state every signature under a store starts from: format, salt, version."""
    return hashlib.sha256(_FORMAT + _part(_salt().decode()) + _part(cache_version))


def _node_state(head: Any, node_version: str | None, code: bytes, outs: tuple[str, ...]) -> Any:
    """``head`` continued with one node's version, code fingerprint and output names."""
    state = head.copy()
    state.update(_part(node_version) + code + "\0".join(outs).encode())
    return state


def code_fingerprints(
    plan: LevelPlan, config: EffectiveConfig, hierarchy: tuple[str, ...]
) -> dict[tuple[str, ...], bytes]:
    """Code fingerprints of the cached function nodes of ``plan`` and below, by node path.

    Made in the coordinating process and shipped with map items, so a worker (which may
    not have the source files) signs exactly as this process does.
    """
    found: dict[tuple[str, ...], bytes] = {}
    for step in plan.steps:
        if step.child is not None:
            child = step.child
            child_cfg = child_config(child.pipeline, config)
            found.update(code_fingerprints(child, child_cfg, (*hierarchy, child.name)))
        elif config.cache is not None and isinstance(step.node, Node) and step.node.cache:
            analyses = getattr(config.cache, "analyses", None)
            found[(*hierarchy, step.id)] = code_fingerprint(step.node.func, analyses)
    return found


def _wired(spec: CallSpec) -> list[tuple[str, Any]]:
    pairs = list(spec.positional) + [(name, default) for _, name, default in spec.keyword]
    return sorted(pairs, key=lambda pair: pair[0])


async def signature(level: Level, step: Step, spec: CallSpec, values: dict[str, Any]) -> str:
    """The computation signature of ``step`` with these inputs.

    A pending input normally carries its representation; one that does not (a list whose
    items could not all be represented) is read first, then ``signature_now`` signs.
    """
    for name in spec.names:
        if REP + name not in values and isinstance(values.get(name), Pending):
            values[name] = await values[name].get()
    return signature_now(level, step, spec, values)


def prefix(level: Level, step: Step, spec: CallSpec) -> Any:
    """The hash state every signature of ``step`` in this run starts from."""
    return _prefix(level, step, spec)


def wired(level: Level, step: Step, spec: CallSpec) -> list[tuple[str, Any]]:
    """``(input name, default)`` of ``step`` in signing order."""
    found: list[tuple[str, Any]] | None = level.plan.memo.get(("wired", step.id))
    if found is None:
        found = level.plan.memo[("wired", step.id)] = _wired(spec)
    return found


def value_fingerprint(level: Level, step: Step, name: str, value: Any) -> bytes:
    """The fingerprint of input ``name`` of ``step``, or ``UnhashableInputError``."""
    return _fingerprint(level, step, name, value)


def signature_now(level: Level, step: Step, spec: CallSpec, values: dict[str, Any]) -> str:
    """``signature`` for values that are all read (no pending value among the inputs)."""
    digest = _prefix(level, step, spec).copy()
    for name, default in wired(level, step, spec):
        rep = values.get(REP + name)
        if rep is None:
            if name in values:
                rep = values[REP + name] = b"v" + _fingerprint(level, step, name, values[name])
            else:
                rep = b"d" + _fingerprint(level, step, name, default)
        digest.update(name.encode() + b"\0" + rep + b"\0")
    hexdigest: str = digest.hexdigest()
    return hexdigest


def prefetch(level: Level, specs: list[CallSpec], items: list[dict[str, Any]]) -> None:
    """Sign every node of every item up front and ask the cache once (SPEC 8.1, 8.6).

    Hits become known to the cache object, misses to the run, so the per-node decisions
    that follow never query the store one signature at a time.
    """
    signatures: list[str] = []
    for values in items:
        trial = dict(values)
        for step, spec in zip(level.plan.steps, specs, strict=True):
            sig = signature_now(level, step, spec, trial)
            signatures.append(sig)
            for out in spec.outs:
                trial[REP + out] = output_rep(sig, out)
    found = level.config.cache.lookup(signatures)
    level.run.absent.update(sig for sig in signatures if sig not in found)


def _fingerprint(level: Level, step: Step, name: str, value: Any) -> bytes:
    try:
        return fingerprint(value)
    except Unhashable as exc:
        path = " > ".join((*level.hierarchy, step.id))
        inside = f" (at `{exc.where}`)" if exc.where else ""
        raise UnhashableInputError(
            f"Node `{path}` is cached, but its input `{name}` cannot be fingerprinted: a "
            f"{exc.type_name}{inside} has no stable content to key the cache with. Fix it by "
            f"one of: define `__cache_key__(self)` on the class returning plain data; register "
            f"a fingerprinter with nestflow.register_fingerprint({exc.type_name.split('.')[-1]}, "
            f"fn); or set cache=False on node `{step.id}`."
        ) from exc


def list_rep(reps: list[bytes | None], values: list[Any]) -> bytes | None:
    """The representation of a mapped node's output list, or ``None`` if an item has none."""
    digest = hashlib.sha256(b"m")
    for rep, value in zip(reps, values, strict=True):
        if rep is None:
            try:
                rep = b"v" + fingerprint(value)
            except Unhashable:
                return None
        digest.update(rep + b"\0")
    return b"m" + digest.digest()


# --- hits and stores ------------------------------------------------------------------------


def hit(
    level: Level,
    step: Step,
    spec: CallSpec,
    values: dict[str, Any],
    sig: str,
    recompute: Callable[[], Awaitable[Any]],
) -> bool:
    """Publish the outputs of ``step`` as pending values if the cache holds ``sig``."""
    if sig in level.run.absent:
        return False
    cache = level.config.cache
    entry = cache.lookup([sig]).get(sig)
    if entry is None:
        return False
    load = Load(cache, entry, recompute)
    single = len(spec.outs) == 1
    for index, out in enumerate(spec.outs):
        values[out] = Pending(load, None if single else index)
        values[REP + out] = output_rep(sig, out)
    return True


def store(level: Level, step: Step, spec: CallSpec, values: dict[str, Any], sig: str) -> None:
    """Keep the outputs of a successful execution under ``sig``."""
    cache = level.config.cache
    outs = spec.outs
    value = values[outs[0]] if len(outs) == 1 else tuple(values[o] for o in outs)
    cache.store(sig, " > ".join((*level.hierarchy, step.id)), outs, value)
    level.run.absent.discard(sig)
    level.run.caches[id(cache)] = cache
    for out in outs:
        values[REP + out] = output_rep(sig, out)
    level.run.report.cache_misses += 1


def output_rep(sig: str, out: str) -> bytes:
    """The representation of output ``out`` of the node signed ``sig``."""
    return b"s" + sig.encode() + b":" + out.encode()
