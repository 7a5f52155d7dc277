"""The cached fast path: a plain loop for cached runs and maps of one flat level.

It applies when the only thing a run needs beyond the fast path is a cache: one level of
cached, synchronous function nodes, sequential in both dimensions, with no callbacks,
timeouts, retries or ``on_error="continue"``. Every signature is computed before anything
runs (SPEC 8.1: signatures are computable up front) and the store is asked once for all of
them; then each node either hits, leaving its value unread until the result needs it, or
runs and is stored. Records are kept as compact rows and built when the report is read.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from nestflow.cache.fingerprint import Unhashable, code_fingerprints, fingerprint
from nestflow.cache.store import CacheMiss
from nestflow.core.config import UNSET, EffectiveConfig
from nestflow.core.node import Node
from nestflow.runtime import caching
from nestflow.runtime.calls import CallSpec
from nestflow.runtime.context import Level, RunState
from nestflow.runtime.plan import LevelPlan
from nestflow.runtime.report import NodeRecord

_Signing = tuple[Any, list[tuple[str, str, bytes, Any]], list[tuple[str, bytes]]]
"""Per node: hash prefix, (input, representation key, tag, default), (rep key, output name)."""
Row = tuple[int, int, str, str, float]
"""(step index, item index or -1, status, signature, duration) of one node execution."""


class Unread:
    """A hit's value, read on first use; recomputed by its producer if unreadable."""

    __slots__ = ("done", "entry", "index", "quick", "redo", "step", "value", "values")

    def __init__(
        self, quick: QuickLevel, step: int, values: dict[str, Any], entry: Any, index: int | None
    ) -> None:
        self.quick, self.step, self.values, self.entry, self.index = (
            quick,
            step,
            values,
            entry,
            index,
        )
        self.done = False
        self.value: Any = None
        self.redo = quick.redo  # how its producer runs again if the value cannot be read

    def get(self) -> Any:
        if not self.done:
            try:
                self.value = self.quick.cache.load(self.entry)
            except CacheMiss:
                self.value = self.redo(self.step, self.values, self.entry.signature)
            self.done = True
        return self.value if self.index is None else self.value[self.index]


_ABSENT: Any = object()


def qualifies(plan: LevelPlan, config: EffectiveConfig) -> bool:
    """Whether a run of ``plan`` at ``config`` can take the cached fast path."""
    backend = config.backend
    if config.cache is None or config.callbacks or config.timeout is not None:
        return False
    if not (isinstance(config.retries, int) and config.retries == 0):
        return False
    if getattr(backend, "node_execution", None) != "sequential":
        return False
    if getattr(backend, "map_execution", None) != "sequential":
        return False
    return bool(plan.steps) and all(_plain(step.node) for step in plan.steps)


def _plain(node: Any) -> bool:
    return (
        isinstance(node, Node)
        and node.cache
        and not node.is_async
        and node.on_error == "raise"
        and node.timeout in (UNSET, None)
        and node.retries in (UNSET, 0)
    )


class QuickLevel:
    """A flat cached level compiled for the loop: specs, and the run's bookkeeping."""

    def __init__(self, level: Level) -> None:
        from nestflow.runtime.nodes import spec_of

        self.level = level
        self.steps = level.plan.steps
        self.specs: list[CallSpec] = [spec_of(level.plan, step) for step in self.steps]
        self.cache = level.config.cache
        self.rows: list[Row] = []
        self._plan: list[Any] | None = None
        self._node_paths: list[str] | None = None
        self._fps: tuple[bytes, ...] | None = None
        self.made: set[str] = set()
        """Signatures stored during this run."""
        self.redo: Callable[[int, dict[str, Any], str], Any] = self.remake
        """Runs a node again on its inputs (``remake``; the observed loop's fires events)."""
        self._simple = [(sp.arg_names, sp.outs[0]) if sp.simple else None for sp in self.specs]

    def sign_run(self, values: dict[str, Any]) -> list[str]:
        """``sign`` for a plain run, remembered per (code, inputs) on the plan.

        A level's signatures depend only on the code fingerprints of its nodes and the
        fingerprints of its inputs (and of defaults used); when both match an earlier
        run, so do the signatures, and none is hashed again.
        """
        level = self.level
        codes = self._codes()
        key = (codes, tuple(self._input_rep(name, values) for name in self._inputs()))
        memo = level.plan.memo.setdefault("signatures", {})
        found: list[str] | None = memo.get(key)
        if found is None:
            found = self.sign(values)
            if len(memo) >= 64:
                memo.clear()
            memo[key] = found
        return found

    def _codes(self) -> tuple[bytes, ...]:
        """The nodes' code fingerprints.

        Fingerprints of a level whose nodes all depend on their code objects alone are
        kept on the plan with those code objects, and hold while the functions keep them.
        """
        if self._fps is not None:
            return self._fps
        self._fps = self._find_codes()
        return self._fps

    def _find_codes(self) -> tuple[bytes, ...]:
        level = self.level
        codes, funcs = level.run.codes, [step.node.func for step in self.steps]  # type: ignore[union-attr]
        if codes:
            shipped = [codes.get(path) for path in self._paths()]
            if all(shipped):  # made by the coordinator of this map item
                return tuple(shipped)  # type: ignore[arg-type]
        kept = level.plan.memo.get("closed-codes")
        if kept is not None and all(f.__code__ is c for f, c in zip(funcs, kept[0], strict=True)):
            found: tuple[bytes, ...] = kept[1]
        else:
            made, closed = code_fingerprints(funcs, getattr(self.cache, "analyses", None))
            found = tuple(made)
            if closed:
                level.plan.memo["closed-codes"] = (tuple(f.__code__ for f in funcs), found)
        return found

    def _paths(self) -> list[tuple[str, ...]]:
        """Each node's path, as run.codes keys it."""
        level = self.level
        return [(*level.hierarchy, step.id) for step in self.steps]

    def ask(self, sigs: list[list[str]]) -> tuple[dict[str, Any], dict[str, Any]]:
        """What the cache holds for these items: values of requested outputs, entries of others.

        The nodes making a requested output will be read if they hit, so their values are
        read with their entries (``read_values``); the others are only looked up, and read
        later if something needs them (lazy loading, SPEC 8.4).
        """
        producers = self._producers()
        read = [item[index] for item in sigs for index in producers]
        held = self.cache.read_values(read)
        found: dict[str, Any] = {}
        if len(producers) < len(self.specs):
            wanted = set(producers)
            others = [sig for item in sigs for index, sig in enumerate(item) if index not in wanted]
            found = self.cache.lookup(others)
        return held, found

    def _producers(self) -> list[int]:
        memo = self.level.plan.memo
        found: list[int] | None = memo.get("quick-producers")
        if found is None:
            wanted = set(self.level.plan.outputs)
            found = [i for i, spec in enumerate(self.specs) if wanted.intersection(spec.outs)]
            memo["quick-producers"] = found
        return found

    def _inputs(self) -> tuple[str, ...]:
        memo = self.level.plan.memo
        found: tuple[str, ...] | None = memo.get("quick-inputs")
        if found is None:
            made = {out for spec in self.specs for out in spec.outs}
            names = {name for spec in self.specs for name in spec.names if name not in made}
            found = memo["quick-inputs"] = tuple(sorted(names))
        return found

    def _input_rep(self, name: str, values: dict[str, Any]) -> bytes:
        rep = values.get(caching.REP + name)
        if rep is None:
            if name not in values:  # a default: fingerprinted with its node when signing
                return b"-" + b"".join(self._defaults(name))
            rep = values[caching.REP + name] = b"v" + fingerprint(values[name])
        return rep

    def _defaults(self, name: str) -> list[bytes]:
        return [
            fingerprint(default)
            for spec in self.specs
            for wired, default in [*spec.positional, *((n, d) for _, n, d in spec.keyword)]
            if wired == name
        ]

    def sign(self, values: dict[str, Any]) -> list[str]:
        """Every node's signature for one item, computed before anything runs.

        The same computation as ``caching.signature_now``, unrolled for the loop: the
        per-node hash prefix and input order are taken once per run.
        """
        plan = self._signing()
        found = []
        trial = dict(values)
        for index, (prefix, wired, outs) in enumerate(plan):
            digest = prefix.copy()
            for name, key, tag, default in wired:
                rep = trial.get(key)
                if rep is None:
                    rep = self._rep(index, name, default, trial)
                digest.update(tag + rep + b"\0")
            sig = digest.hexdigest()
            found.append(sig)
            head = b"s" + sig.encode() + b":"
            for key, encoded in outs:
                trial[key] = head + encoded
        return found

    def _signing(self) -> list[_Signing]:
        if self._plan is None:
            level, rep = self.level, caching.REP
            prefixes = caching.level_prefixes(level, self.steps, self.specs, self._codes())
            self._plan = [
                (
                    prefix,
                    [
                        (n, rep + n, n.encode() + b"\0", d)
                        for n, d in caching.wired(level, step, spec)
                    ],
                    [(rep + out, out.encode()) for out in spec.outs],
                )
                for step, spec, prefix in zip(self.steps, self.specs, prefixes, strict=True)
            ]
        return self._plan

    def _rep(self, index: int, name: str, default: Any, trial: dict[str, Any]) -> bytes:
        level, step = self.level, self.steps[index]
        if name in trial:
            rep = b"v" + caching.value_fingerprint(level, step, name, trial[name])
            trial[caching.REP + name] = rep
            return rep
        return b"d" + caching.value_fingerprint(level, step, name, default)

    def run_item(
        self,
        values: dict[str, Any],
        sigs: list[str],
        found: tuple[dict[str, Any], dict[str, Any]],
        item: int,
    ) -> None:
        """One item (``item`` = -1 for a plain run): hit or run each node, in order.

        ``found`` is what :meth:`ask` returned: values read, and entries not read yet.
        """
        rows = self.rows
        for index, (spec, sig) in enumerate(zip(self.specs, sigs, strict=True)):
            if self.hit(values, index, spec, sig, found):
                rows.append((index, item, "cached", sig, 0.0))
                continue
            started = perf_counter()
            self._execute(values, index, spec, item)
            self.keep(sig, index, spec, values)
            rows.append((index, item, "executed", sig, perf_counter() - started))

    def hit(
        self,
        values: dict[str, Any],
        index: int,
        spec: CallSpec,
        sig: str,
        found: tuple[dict[str, Any], dict[str, Any]],
    ) -> bool:
        """Publish node ``index``'s outputs if the cache holds ``sig``: a value read with its
        entry, or an entry whose value is read on first use (``found`` is :meth:`ask`'s)."""
        value = found[0].get(sig, _ABSENT)
        if value is not _ABSENT:
            if len(spec.outs) == 1:
                values[spec.outs[0]] = value
            else:
                values.update(zip(spec.outs, value, strict=True))
            return True
        entry = found[1].get(sig) or self.again(sig)
        if entry is None:
            return False
        self.publish(values, index, spec, entry)
        return True

    def again(self, sig: str) -> Any:
        """The entry of ``sig`` if an earlier item of this run stored it (else None).

        The cache was asked once before the first item; a value an earlier item stored
        (a shared setup node, a repeated item) is a hit for the later ones, as it is on
        the general runner. Only those are asked again, from the cache's memory.
        """
        if sig not in self.made:
            return None
        return self.cache.lookup((sig,)).get(sig)

    def keep(self, sig: str, index: int, spec: CallSpec, values: dict[str, Any]) -> None:
        """Store node ``index``'s outputs under ``sig``."""
        self.cache.store(sig, self._path(index), spec.outs, stored(spec, values))
        self.made.add(sig)

    def publish(self, values: dict[str, Any], index: int, spec: CallSpec, entry: Any) -> None:
        """Publish the outputs of hit ``index`` as values read on first use."""
        if len(spec.outs) == 1:
            values[spec.outs[0]] = Unread(self, index, values, entry, None)
            return
        shared = Unread(self, index, values, entry, None)
        for position, out in enumerate(spec.outs):
            values[out] = _Slice(shared, position)

    def remake(self, index: int, values: dict[str, Any], sig: str) -> Any:
        """Run node ``index`` again on the inputs in ``values`` (its stored value was unusable)."""
        fresh = dict(values)  # inputs are never rebound, so they are still the node's inputs
        spec = self.specs[index]
        self._execute(fresh, index, spec, -1)
        value = stored(spec, fresh)
        self.cache.store(sig, self._path(index), spec.outs, value)
        return value

    def _execute(self, values: dict[str, Any], index: int, spec: CallSpec, item: int) -> None:
        for name in spec.names:
            value = values.get(name)
            if isinstance(value, Unread):
                values[name] = value.get()
        simple = self._simple[index]
        try:
            if simple is not None:  # positional inputs without defaults, one output
                values[simple[1]] = spec.fn(*[values[name] for name in simple[0]])
            else:
                args, kwargs = spec.arguments(values)
                spec.publish(spec.fn(*args, **kwargs), values)
        except Exception as exc:
            self.fail(exc, index, item)
            raise

    def fail(self, exc: Exception, index: int, item: int) -> None:
        """Record the failure like the general path does: notes, record, error record."""
        from nestflow.runtime.nodes import fail

        level = self.level
        if item >= 0:
            level = level.item(item, level.item_total or 0)
        rows, self.rows = self.rows, []
        self._count(level.run, rows)
        level.run.report.add_all(self._records(rows))
        fail(level, self.steps[index], exc, 0.0, 1, {})

    def _path(self, index: int) -> str:
        paths: list[str] | None = self._node_paths
        if paths is None:
            hierarchy = self.level.hierarchy
            paths = self._node_paths = [" > ".join((*hierarchy, s.id)) for s in self.steps]
        return paths[index]

    def _records(self, rows: list[Row]) -> list[NodeRecord]:
        level = self.level
        plan = level.plan
        backend, cache = level.config.backend.label, self.cache.label
        records = []
        for index, item, status, sig, duration in rows:
            step = self.steps[index]
            records.append(
                NodeRecord(
                    path=" > ".join((*level.hierarchy, step.id)),
                    node=step.id,
                    pipeline=plan.name,
                    depth=0,
                    item_path=() if item < 0 else (item,),
                    status=status,  # type: ignore[arg-type]
                    duration_s=duration,
                    signature=sig,
                    backend=backend,
                    cache=cache,
                )
            )
        return records

    def _count(self, state: RunState, rows: list[Row]) -> None:
        hits = sum(1 for row in rows if row[2] == "cached")
        state.report.cache_hits += hits
        state.report.cache_misses += len(rows) - hits
        state.caches[id(self.cache)] = self.cache

    def settle(self, state: RunState) -> None:
        """Count hits and misses, and leave the records to be built when the report is read."""
        rows, self.rows = self.rows, []
        if not rows:
            return
        self._count(state, rows)
        report = state.report
        if report._records is None and report._build is None:
            report._build = lambda: self._records(rows)
        else:
            report.add_all(self._records(rows))


class _Slice(Unread):
    """One output of a multi-output hit."""

    __slots__ = ("whole",)

    def __init__(self, whole: Unread, position: int) -> None:
        self.whole, self.index, self.entry = whole, position, whole.entry
        self.done = False

    def get(self) -> Any:
        return self.whole.get()[self.index]


def stored(spec: CallSpec, values: dict[str, Any]) -> Any:
    outs = spec.outs
    return values[outs[0]] if len(outs) == 1 else tuple(values[o] for o in outs)


def read(values: dict[str, Any], names: tuple[str, ...]) -> None:
    """Read the unread values among ``names``."""
    for name in names:
        value = values.get(name)
        if isinstance(value, Unread):
            values[name] = value.get()


def run_level(quick: QuickLevel, values: dict[str, Any]) -> None:
    """A plain run of the level: sign, ask once, hit or run, read the requested outputs."""
    try:
        sigs = quick.sign_run(values)
    except Unhashable:
        sigs = quick.sign(values)  # raises the error that names the node and input
    found = quick.ask([sigs])
    quick.run_item(values, sigs, found, -1)
    read(values, quick.level.plan.outputs)


def map_level(quick: QuickLevel, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every item, signed first and looked up in one batch; outputs read in batches at the end."""
    sigs = [quick.sign(values) for values in items]
    found = quick.ask(sigs)
    for index, values in enumerate(items):
        quick.run_item(values, sigs[index], found, index)
    read_all(quick.cache, items, quick.level.plan.outputs)
    return items


def read_all(cache: Any, items: list[dict[str, Any]], names: tuple[str, ...]) -> None:
    """Read the unread outputs of many items with batched store reads."""
    unread = [
        value for values in items for name in names if isinstance(value := values.get(name), Unread)
    ]
    entries = {v.entry.signature: v.entry for v in unread if not v.done and type(v) is Unread}
    loaded = cache.load_many(list(entries.values())) if entries else {}
    for value in unread:
        if value.done or type(value) is not Unread:
            continue
        sig = value.entry.signature
        if sig in loaded:
            value.value, value.done = loaded[sig], True
        else:  # load_many reported and deleted it: make it again, without a second warning
            value.value = value.quick.remake(value.step, value.values, sig)
            value.done = True
    for values in items:
        read(values, names)
