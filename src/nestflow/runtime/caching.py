"""Cache decisions: signatures, hits as values read on first use, stores (SPEC 8.1).

A node's signature hashes a per-run prefix (format, versions, code fingerprint, output
names) and one *representation* per input: ``s<signature>:<output>`` when the value came
from an eligible producer, ``v<fingerprint>`` otherwise, ``m<digest>`` for a list published
by a mapped node (the ordered per-item representations). Representations live in the
level's values dict under ``@name`` keys, next to the values, so they travel wherever
values are copied (map items, nested levels, shipped items) and are computed once.

A hit does not read its value: the outputs become ``Unread`` values, read when a node
that misses needs them or when the run returns them. A stored value that cannot be read
any more (deleted, truncated) is recomputed by running its producer again.

A level whose steps are all cached function nodes is signed whole before anything runs
(every item of a map too) and the cache asked once (``Batch``); other levels sign and
look up node by node. Both use the one signing rule of ``Signer.sign``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from nestflow.cache.store import CacheMiss
from nestflow.cache.unhashable import Unhashable
from nestflow.errors import UnhashableInputError

if TYPE_CHECKING:
    from nestflow.cache.code import AnalysisStore
    from nestflow.core.config import EffectiveConfig
    from nestflow.runtime.context import Level
    from nestflow.runtime.plan import LevelPlan
    from nestflow.runtime.step import NodeStep

REP = "@"
"""Prefix of the ``@name`` keys holding representations in a values dict (never a name)."""

_FORMAT = b"nestflow-sig/1"
_SALT: list[bytes] = []
_ABSENT: Any = object()


def _salt() -> bytes:
    if not _SALT:
        from nestflow.version import __version__

        _SALT.append(".".join(__version__.split(".")[:2]).encode())
    return _SALT[0]


def fingerprint(value: Any) -> bytes:
    """``cache.fingerprint.fingerprint``; its rules (and their imports) load when a run first
    signs a value, and this name is then the function itself."""
    found: bytes = _rules().fingerprint(value)
    return found


def code_fingerprints(
    fns: Sequence[Callable[..., Any]], analyses: AnalysisStore | None = None
) -> tuple[list[bytes], bool]:
    """``cache.fingerprint.code_fingerprints``, loaded as ``fingerprint`` is."""
    found: tuple[list[bytes], bool] = _rules().code_fingerprints(fns, analyses)
    return found


def _rules() -> Any:
    global fingerprint, code_fingerprints
    from nestflow.cache import fingerprint as rules

    fingerprint, code_fingerprints = rules.fingerprint, rules.code_fingerprints
    return rules


# --- values read on first use ---------------------------------------------------------------


class Unread:
    """The stored value of a hit, read at most once; recomputed if it cannot be read.

    ``maker`` (a step) runs its node again at ``level`` on ``values`` (the inputs it had)
    when the stored copy is unusable.
    """

    __slots__ = ("cache", "done", "entry", "level", "maker", "value", "values")

    def __init__(
        self, cache: Any, entry: Any, maker: Any, level: Any, values: dict[str, Any]
    ) -> None:
        self.cache, self.entry, self.maker, self.level, self.values = (
            cache, entry, maker, level, values,
        )  # fmt: skip
        self.done = False
        self.value: Any = None

    def get(self) -> Any:
        """The value: read from the store, or made again when the stored copy is unusable."""
        if not self.done:
            try:
                self.value = self.cache.load(self.entry)
            except CacheMiss:
                self.value = self.maker.remake(self.level, self.values, self.entry.signature)
            self.done = True
        return self.value

    def __repr__(self) -> str:
        return "<cached value, not read>"


class UnreadPart(Unread):
    """One output of a multi-output hit."""

    __slots__ = ("index", "whole")

    def __init__(self, whole: Unread, index: int) -> None:
        self.whole, self.index = whole, index
        self.cache, self.entry = whole.cache, whole.entry
        self.done = False

    def get(self) -> Any:
        return self.whole.get()[self.index]


class UnreadList(Unread):
    """A mapped node's output list holding unread items: read whole when needed."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.done = False

    def get(self) -> Any:
        return [item.get() if isinstance(item, Unread) else item for item in self.items]

    def __repr__(self) -> str:
        return f"<{len(self.items)} cached values, not read>"


def column(items: list[Any]) -> Any:
    """A result list, unread as a whole if any item is unread."""
    return UnreadList(items) if any(isinstance(i, Unread) for i in items) else items


def read(values: dict[str, Any], names: Iterable[str]) -> None:
    """Read the unread values among ``names`` into ``values`` (before a call uses them)."""
    for name in names:
        value = values.get(name)
        if isinstance(value, Unread):
            values[name] = value.get()


def read_all(items: Sequence[dict[str, Any]], names: tuple[str, ...]) -> None:
    """Read the unread outputs of many items, with batched store reads per cache."""
    by_cache: dict[int, tuple[Any, dict[str, Unread]]] = {}
    for values in items:
        for name in names:
            value = values.get(name)
            if type(value) is Unread and not value.done:
                found = by_cache.get(id(value.cache))
                if found is None:
                    found = by_cache[id(value.cache)] = (value.cache, {})
                found[1][value.entry.signature] = value
    for cache, whole in by_cache.values():
        loaded = cache.load_many([v.entry for v in whole.values()])
        for sig, value in loaded.items():
            held = whole[sig]
            held.value, held.done = value, True
    for values in items:
        read(values, names)


def visible(values: dict[str, Any]) -> dict[str, Any]:
    """The values a callback may see: names only, read values only."""
    return {k: v for k, v in values.items() if k[:1] != REP and not isinstance(v, Unread)}


def carry(source: dict[Any, Any], target: dict[Any, Any], pairs: Iterable[tuple[str, str]]) -> None:
    """Copy the representations of renamed values (``(from, to)`` pairs) across levels."""
    for old, new in pairs:
        rep = source.get(REP + old)
        if rep is not None:
            target[REP + new] = rep


def rep_of(key: str, names: tuple[str, ...]) -> bool:
    """Whether ``key`` is the representation key of one of ``names``."""
    return key[:1] == REP and key[1:] in names


def output_rep(sig: str, out: str) -> bytes:
    """The representation of output ``out`` of the node signed ``sig``."""
    return b"s" + sig.encode() + b":" + out.encode()


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


def mapped_columns(outputs: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any]:
    """One list per output in item order, with its representation for signatures downstream."""
    columns: dict[str, Any] = {}
    for name in names:
        items = [values[name] for values in outputs]
        rep = list_rep([values.get(REP + name) for values in outputs], items)
        columns[name] = column(items)
        if rep is not None:
            columns[REP + name] = rep
    return columns


# --- signing --------------------------------------------------------------------------------


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


_Signing = tuple[Any, list[tuple[str, str, bytes, Any]], list[tuple[str, bytes]]]
"""Per node: hash prefix, (input, representation key, tag, default), (rep key, output name)."""


def _signatures(plan: LevelPlan, version: str | None) -> dict[Any, list[str]]:
    """The plan's memo of signatures under cache version ``version`` (a few versions kept)."""
    kept: dict[str | None, dict[Any, list[str]]] = plan.memo.setdefault("signatures", {})
    found = kept.get(version)
    if found is None:
        if len(kept) >= 8:
            kept.clear()
        found = kept[version] = {}
    return found


class Signer:
    """How the cached function nodes of one compiled level sign, made once per run.

    The prefixes hold the code fingerprints, which re-read globals and closures, so they
    are made per run; a level whose nodes read no global name keeps its fingerprints on the
    plan while the functions keep their code objects.
    """

    __slots__ = ("_memo", "_signing", "cache", "codes", "hierarchy", "nodes", "plan")

    def __init__(self, level: Level) -> None:
        compiled = level.compiled
        self.plan = level.plan
        self.cache = level.config.cache
        level.run.looks_up(self.cache)
        self.hierarchy = level.hierarchy
        self.nodes: tuple[NodeStep, ...] = compiled.signed
        self._memo: dict[Any, list[str]] = _signatures(self.plan, self.cache.cache_version)
        """Signatures per (code fingerprints, input representations): they depend on nothing
        else but the plan and the cache version, so every pipeline sharing the plan reuses them."""
        self.codes = self._codes(level)
        self._signing: list[_Signing] | None = None

    def signing(self) -> list[_Signing]:
        """Each node's hash prefix and input order, made when something is first signed."""
        if self._signing is None:
            head = _head(self.cache.cache_version)
            made = []
            for step, code in zip(self.nodes, self.codes, strict=True):
                prefix = _node_state(head, step.node.cache_version, code, step.spec.outs)
                # Keyed by parameter, so rewiring a node (``with_inputs``) keeps its entries.
                wired = [(w, REP + w, p.encode() + b"\0", d) for p, w, d in step.wired]
                outs = [(REP + out, out.encode()) for out in step.spec.outs]
                made.append((prefix, wired, outs))
            self._signing = made
        return self._signing

    @classmethod
    def of(cls, level: Level) -> Signer:
        """The signer of ``level``'s compiled form in this run."""
        signers = level.run.signers
        if signers is None:
            signers = level.run.signers = {}
        key = id(level.compiled)
        found: Signer | None = signers.get(key)
        if found is None or found.hierarchy != level.hierarchy:
            found = signers[key] = cls(level)
        return found

    def _codes(self, level: Level) -> tuple[bytes, ...]:
        shipped = level.run.codes
        funcs = [step.node.func for step in self.nodes]
        if shipped:
            found = [shipped.get((*level.hierarchy, step.id)) for step in self.nodes]
            if all(found):  # made by the coordinator of this map item
                return tuple(found)  # type: ignore[arg-type]
        memo = self.plan.memo
        kept = memo.get("closed-codes")
        if kept is not None and all(f.__code__ is c for f, c in zip(funcs, kept[0], strict=True)):
            return tuple(kept[1])
        made, closed = code_fingerprints(funcs, getattr(self.cache, "analyses", None))
        if closed:
            memo["closed-codes"] = (tuple(f.__code__ for f in funcs), tuple(made))
        return tuple(made)

    def sign(self, position: int, values: dict[str, Any]) -> str:
        """The signature of node ``position`` (in ``nodes``) with the inputs in ``values``.

        Input representations are kept in ``values``; an unread input without one (a list
        whose items could not all be represented) is read first.
        """
        prefix, wired, _ = self.signing()[position]
        digest = prefix.copy()
        for name, key, tag, default in wired:
            rep = values.get(key)
            if rep is None:
                if isinstance(values.get(name), Unread):
                    values[name] = values[name].get()
                rep = self._rep(position, name, default, values)
            digest.update(tag + rep + b"\0")
        hexdigest: str = digest.hexdigest()
        return hexdigest

    def _rep(self, position: int, name: str, default: Any, values: dict[str, Any]) -> bytes:
        step = self.nodes[position]
        if name in values:
            rep = values[REP + name] = b"v" + self.fingerprint(step, name, values[name])
            return rep
        return b"v" + self.fingerprint(step, name, default)  # as if passed explicitly

    def sign_item(self, values: dict[str, Any]) -> list[str]:
        """Every node's signature for one item of a flat level, before anything runs."""
        trial = dict(values)
        found = []
        for position, (_, _, outs) in enumerate(self.signing()):
            sig = self.sign(position, trial)
            found.append(sig)
            head = b"s" + sig.encode() + b":"
            for key, encoded in outs:
                trial[key] = head + encoded
        return found

    def sign_run(self, values: dict[str, Any], inputs: tuple[str, ...]) -> list[str]:
        """``sign_item`` for a plain run, remembered per (code, input representations).

        A level's signatures depend only on the code fingerprints of its nodes and the
        representations of its inputs; when both match an earlier run, none is hashed again.
        """
        key = (self.codes, tuple(self._input_rep(name, values) for name in inputs))
        found = self._memo.get(key)
        if found is None:
            found = self.sign_item(values)
            if len(self._memo) >= 64:
                self._memo.clear()
            self._memo[key] = found
        return found

    def _input_rep(self, name: str, values: dict[str, Any]) -> bytes:
        rep = values.get(REP + name)
        if rep is None:
            if name not in values:  # a default: fingerprinted with its node when signing
                return b"-" + b"".join(self._defaults(name))
            if isinstance(values[name], Unread):
                values[name] = values[name].get()
            rep = values[REP + name] = b"v" + fingerprint(values[name])
        return rep

    def _defaults(self, name: str) -> list[bytes]:
        return [
            fingerprint(default)
            for step in self.nodes
            for _, wired, default in step.wired
            if wired == name
        ]

    def fingerprint(self, step: NodeStep, name: str, value: Any) -> bytes:
        """The fingerprint of input ``name`` of ``step``, or ``UnhashableInputError``."""
        try:
            return fingerprint(value)
        except Unhashable as exc:
            path = " > ".join((*self.hierarchy, step.id))
            inside = f" (at `{exc.where}`)" if exc.where else ""
            raise UnhashableInputError(
                f"Node `{path}` is cached, but its input `{name}` cannot be fingerprinted: a "
                f"{exc.type_name}{inside} has no stable content to key the cache with. Fix it "
                f"by one of: define `__cache_key__(self)` on the class returning plain data; "
                f"register a fingerprinter with nestflow.register_fingerprint("
                f"{exc.type_name.split('.')[-1]}, fn); or set cache=False on node `{step.id}`."
            ) from exc


class Batch:
    """Every signature of a flat cached level's items, and what the cache holds for them.

    The nodes making a requested output will be read if they hit, so their values are
    read with their entries (``read_values``); the others are only looked up, and read
    later if something needs them (lazy loading, SPEC 8.4).
    """

    __slots__ = ("entries", "held", "made", "sigs")

    def __init__(self, level: Level, sigs: list[list[str]]) -> None:
        self.sigs = sigs
        self.made: set[str] = set()
        """Signatures stored during this run: hits for later items."""
        cache = level.config.cache
        producers: list[int] = level.compiled.producers
        self.held: dict[str, Any] = cache.read_values(
            [item[index] for item in sigs for index in producers]
        )
        self.entries: dict[str, Any] = {}
        if len(producers) < len(level.compiled.signed):
            wanted = set(producers)
            self.entries = cache.lookup(
                [sig for item in sigs for index, sig in enumerate(item) if index not in wanted]
            )

    def complete(self, item: int) -> bool:
        """Whether every node of ``item`` is in the cache."""
        held, entries, made = self.held, self.entries, self.made
        return all(sig in held or sig in entries or sig in made for sig in self.sigs[item])


ABSENT = _ABSENT
"""What ``Batch.held.get(sig, ABSENT)`` gives for a signature whose value was not read."""


def code_fingerprints_below(
    plan: LevelPlan,
    config: EffectiveConfig,
    hierarchy: tuple[str, ...],
    child_config: Callable[[Any, EffectiveConfig], EffectiveConfig],
) -> dict[tuple[str, ...], bytes]:
    """Code fingerprints of the cached function nodes of ``plan`` and below, by node path.

    Made in the coordinating process and shipped with map items, so a worker (which may
    not have the source files) signs exactly as this process does.
    """
    from nestflow.cache.fingerprint import code_fingerprint
    from nestflow.core.node import Node

    found: dict[tuple[str, ...], bytes] = {}
    for step in plan.steps:
        if step.child is not None:
            child = step.child
            below = child_config(step.inner, config)
            found.update(
                code_fingerprints_below(child, below, (*hierarchy, child.name), child_config)
            )
        elif config.cache is not None and isinstance(step.node, Node) and step.node.cache:
            analyses = getattr(config.cache, "analyses", None)
            found[(*hierarchy, step.id)] = code_fingerprint(step.node.func, analyses)
    return found
