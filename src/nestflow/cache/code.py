"""Code fingerprints: a digest that changes when what a function does plausibly changes.

Static part, once per code object: the source as a syntax tree without decorators,
docstrings, comments or layout (else bytecode, constants and names), and the global names
and ``module.attr`` chains the code loads. Dynamic part, on every call, so that a rerun in
the same process sees a rebound helper or constant: each chain is resolved in the function's
globals; user functions and classes add their own fingerprints (cycle-guarded), library
objects their qualified name, anything else its value encoding; closure cells likewise.
Names the code writes to (``nonlocal``, ``log.append(x)``, ``table[k] = x``, ``with lock:``)
are state, not constants, and add their type only: a call log must not invalidate its node.
A top-level result is memoised with the namespace slots and cells it read, and reused while
each still holds the same object and every value encoded on the way was immutable.

:mod:`nestflow.cache.fingerprint` builds the :class:`CodeFingerprinter` and hands it the
value encoding, so neither module imports the other at load time. The static analysis is
:mod:`nestflow.cache.source`; what counts as user code is :mod:`nestflow.cache.names`.
"""

from __future__ import annotations

import builtins
import contextlib
import marshal
import pickle
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple, dataclass
from enum import Enum
from functools import cached_property, partial
from hashlib import sha256
from types import CodeType, FunctionType, MethodType, ModuleType
from typing import Any, Protocol

from nestflow.cache.names import LIBRARY_CALLABLES, is_user_module, qualified_name, unwrap
from nestflow.cache.source import Chain, parse, source_digest, tree_digest, uses
from nestflow.errors import CacheWarning

__all__ = ["LIBRARY_CALLABLES", "CodeFingerprinter", "is_user_module", "qualified_name", "unwrap"]

Dep = tuple[Any, Any, Any]  # (namespace, key, object seen), (cell, None, contents), (ns, _SIZE, n)

_BUILTINS: dict[str, Any] = vars(builtins)
_MISSING: Any = object()
_SIZE: Any = object()
_ABSENT, _EMPTY_CELL, _SKIPPED = (tag + bytes(32) for tag in (b"?", b"0", b"g"))
_STABLE = frozenset({int, float, complex, str, bytes, bool, type(None), range, type(...)})
_STABLE_KINDS = (FunctionType, type, ModuleType, Enum, *LIBRARY_CALLABLES)
# Methods that dataclasses and attrs generate from the class body, which the class source covers.
_GENERATED_NAMES = """__init__ __repr__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__ __hash__
    __setattr__ __delattr__ __getstate__ __setstate__ __replace__"""
_GENERATED = frozenset(_GENERATED_NAMES.split())


# --- the static part: normalised source and the names the code loads ---------------------------


class AnalysisStore(Protocol):
    """Where analyses of code objects outlive the process (a DiskCache keeps them)."""

    def get(self, key: str) -> bytes | None:
        """The kept analysis under ``key``."""
        ...

    def put(self, key: str, analysis: bytes) -> None:
        """Keep ``analysis`` under ``key``."""
        ...


@dataclass(frozen=True, slots=True, weakref_slot=True)
class _Static:
    digest: bytes
    chains: tuple[Chain, ...]
    shadowable: tuple[Chain, ...]  # chains starting with a builtin name, read if a global hides it
    mutated: frozenset[Chain]

    @property
    def closed(self) -> bool:
        """Whether the code reads no global name at all (its cells are checked apart)."""
        return not self.chains and not self.shadowable


@dataclass(slots=True)
class _Entry:
    ref: weakref.ref[FunctionType]
    code: CodeType
    static: _Static
    memo: tuple[tuple[Dep, ...], bytes] | None = None


class _Trace:
    """One thread's state: what is being fingerprinted, and what the outermost call read."""

    def __init__(self) -> None:
        self.active: set[int] = set()
        self.deps: list[Dep] = []
        self.stable = True


def _functions_of(attr: Any) -> tuple[Any, ...] | None:
    """The functions behind a class attribute: methods, static/class methods, properties."""
    if isinstance(attr, FunctionType | staticmethod | classmethod):
        return (getattr(attr, "__func__", attr),)
    if isinstance(attr, property):
        return tuple(f for f in (attr.fget, attr.fset, attr.fdel) if f is not None)
    return (attr.func,) if isinstance(attr, cached_property) else None


def _bare(fn: Any) -> bool:
    """A plain function with no cell and no decorator behind it."""
    return type(fn) is FunctionType and fn.__closure__ is None and not hasattr(fn, "__wrapped__")


def _contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:
        return _MISSING


def _unchanged(deps: tuple[Dep, ...]) -> bool:
    for container, key, seen in deps:
        if type(key) is str:
            if container.get(key, _MISSING) is not seen:
                return False
        elif key is None:
            if _contents(container) is not seen:
                return False
        elif len(container) != seen:
            return False
    return True


def _stable(value: Any) -> bool:
    """Whether a fingerprinted value cannot change while the same object is bound."""
    if type(value) in _STABLE or isinstance(value, _STABLE_KINDS):
        return True
    return type(value) in (tuple, frozenset) and all(_stable(item) for item in value)


# --- the fingerprinter ------------------------------------------------------------------------


GROUPS_KEPT = 64
"""Closed groups whose fingerprints a process keeps by their code objects."""


class CodeFingerprinter:
    """Code fingerprints of functions, methods and classes (SPEC 8.2).

    ``encode`` is the value encoding (self-delimiting bytes) of objects the code refers to;
    it raises ``unhashable`` for objects that have none.
    """

    def __init__(self, encode: Callable[[Any], bytes], unhashable: type[Exception]) -> None:
        self._encode = encode
        self._unhashable = unhashable
        self._local = threading.local()
        self._warned: set[tuple[str, str]] = set()
        self._names: dict[str, bytes] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every memo: value rules changed, so constants may encode differently."""
        self._entries: dict[int, _Entry] = {}
        self._statics: weakref.WeakValueDictionary[CodeType, _Static]
        self._statics = weakref.WeakValueDictionary()
        self._class_sources: weakref.WeakKeyDictionary[type, bytes] = weakref.WeakKeyDictionary()
        self._groups: OrderedDict[tuple[CodeType, ...], list[bytes]] = OrderedDict()
        """Fingerprints of closed groups by their code objects, the latest ``GROUPS_KEPT``:
        a new pipeline object made of the same functions finds them without hashing its
        code objects again or asking the store."""

    def __call__(self, fn: Callable[..., Any], analyses: AnalysisStore | None = None) -> bytes:
        """32-byte code fingerprint of ``fn``; ``analyses`` keeps analyses across processes."""
        entry = self._entries.get(id(fn))
        target = None if entry is None else entry.ref()
        if entry is None or target is not fn or target.__code__ is not entry.code:
            if analyses is not None and type(fn) is FunctionType:
                static = self._recall(fn.__code__, analyses)  # held: _statics is weak
                if static.closed and fn.__closure__ is None and not hasattr(fn, "__wrapped__"):
                    return self._closed(fn, static)
                digest = self._callable(fn)
                del static
                return digest
            return self._callable(fn)
        memo = entry.memo
        if memo is not None and _unchanged(memo[0]) and not self._trace().active:
            return memo[1]
        return self._run(target, entry)

    def many(self, fns: Sequence[Any], analyses: AnalysisStore | None) -> tuple[list[bytes], bool]:
        """Fingerprints of ``fns``, and whether all of them are *closed*.

        A closed function is a plain function that reads no global name and has no cell:
        its fingerprint depends on its code object alone, so it holds for as long as the
        function keeps that code object. A new process reads the fingerprints of a closed
        group from one record kept under the group's code objects, instead of recalling
        and checking one analysis per function.
        """
        plain = analyses is not None and all(_bare(fn) for fn in fns)
        key = ""
        codes: tuple[CodeType, ...] = ()
        if plain:
            codes = tuple(fn.__code__ for fn in fns)
            known = self._groups.get(codes)
            if known is not None:
                self._groups.move_to_end(codes)
                return list(known), True
            key = "closed:" + sha256(marshal.dumps(codes)).hexdigest()
            kept = analyses.get(key)  # type: ignore[union-attr]  # plain: not None
            if kept is not None and len(kept) == 32 * len(fns):
                found = [kept[i : i + 32] for i in range(0, len(kept), 32)]
                self._keep(codes, found)
                return found, True
        found = [self(fn, analyses) for fn in fns]
        closed = plain and all(self._closed_code(fn.__code__) for fn in fns)
        if closed:
            analyses.put(key, b"".join(found))  # type: ignore[union-attr]
            self._keep(codes, found)
        return found, closed

    def _keep(self, codes: tuple[CodeType, ...], found: list[bytes]) -> None:
        self._groups[codes] = list(found)
        if len(self._groups) > GROUPS_KEPT:
            self._groups.popitem(last=False)

    def _closed_code(self, code: CodeType) -> bool:
        static = self._statics.get(code)
        return static is not None and static.closed

    def class_fingerprint(self, cls: type) -> bytes:
        """Qualified name of a library class; name, source and members of a user class."""
        if not is_user_module(cls.__module__):
            return self.name_digest(qualified_name(cls))
        return self._guarded(cls, self._class_digest)

    def name_digest(self, name: str) -> bytes:
        """Digest of a qualified name, memoised: library objects are keyed by name only."""
        digest = self._names.get(name)
        if digest is None:
            digest = sha256(b"name\0" + name.encode("utf-8", "surrogatepass")).digest()
            self._names[name] = digest
        return digest

    def _trace(self) -> _Trace:
        trace: _Trace | None = getattr(self._local, "trace", None)
        if trace is None:
            trace = self._local.trace = _Trace()
        return trace

    def _guarded(self, obj: Any, compute: Callable[..., bytes], *args: Any) -> bytes:
        """``compute(obj, *args)``, unless this thread is fingerprinting ``obj`` already."""
        trace = self._trace()
        if id(obj) in trace.active:
            return self.name_digest("cycle:" + qualified_name(obj))
        if not trace.active:
            trace.deps, trace.stable = [], True
        trace.active.add(id(obj))
        try:
            return compute(obj, *args)
        finally:
            trace.active.discard(id(obj))

    # --- functions ------------------------------------------------------------------------

    def _callable(self, obj: Any) -> bytes:
        inner = unwrap(obj)
        if inner is not obj:
            return self(inner)
        if isinstance(obj, FunctionType):
            return self._run(obj, self._entry(obj))
        if isinstance(obj, MethodType):
            return self._bound(obj.__func__, "self", obj.__self__)
        if isinstance(obj, type):
            return self.class_fingerprint(obj)
        if isinstance(obj, staticmethod | classmethod):
            return self(obj.__func__)
        if isinstance(obj, partial):
            return self._bound(obj.func, "partial", (obj.args, obj.keywords))
        if isinstance(obj, LIBRARY_CALLABLES):
            return self.name_digest(qualified_name(obj))
        if callable(obj):
            return self._bound(type(obj), "self", obj)
        raise TypeError(f"code_fingerprint needs a callable, got {qualified_name(type(obj))}.")

    def _bound(self, func: Any, label: str, value: Any) -> bytes:
        code = self(func)
        return sha256(b"bound" + code + self._constant(func, label, value)).digest()

    def _entry(self, fn: FunctionType) -> _Entry:
        entry = self._entries.get(id(fn))
        if entry is not None and entry.ref() is fn and entry.code is fn.__code__:
            return entry
        static = self._statics.get(fn.__code__)
        if static is None:
            static = self._statics[fn.__code__] = self._analyse(fn.__code__)
        forget = partial(self._entries.pop, id(fn), None)
        entry = _Entry(weakref.ref(fn, lambda _: forget()), fn.__code__, static)
        self._entries[id(fn)] = entry
        return entry

    def _closed(self, fn: FunctionType, static: _Static) -> bytes:
        # Code that reads no global and has no cell: its fingerprint is its static digest's,
        # with nothing to re-check on later calls. A new process meets this for most nodes.
        entry = self._entry(fn)
        digest = sha256(static.digest).digest()  # what _dynamic makes of it
        entry.memo = ((), digest)
        return digest

    def _recall(self, code: CodeType, analyses: AnalysisStore) -> _Static:
        # A new process re-reads and re-parses every node's source: the slow part of a
        # fingerprint. The analysis depends only on the code object, so it is kept under
        # a digest of its marshalled form, and any change to the code is a new key.
        static = self._statics.get(code)
        if static is not None:
            return static
        key = sha256(marshal.dumps(code)).hexdigest()
        kept = analyses.get(key)
        if kept is not None:
            with contextlib.suppress(Exception):  # an unreadable analysis is made again
                static = self._statics[code] = _Static(*pickle.loads(kept))
                return static
        static = self._statics[code] = self._analyse(code)
        analyses.put(key, pickle.dumps(astuple(static)))
        return static

    def _analyse(self, code: CodeType) -> _Static:
        chains, mutated = uses(code)
        shadowable = {chain for chain in chains if chain[0] in _BUILTINS}
        digest = source_digest(code) or self._bytecode_digest(code)
        ordered = tuple(sorted(chains - shadowable))
        return _Static(digest, ordered, tuple(sorted(shadowable)), frozenset(mutated))

    def _bytecode_digest(self, code: CodeType) -> bytes:
        consts = tuple(
            ("code", self._bytecode_digest(c)) if isinstance(c, CodeType) else c
            for c in code.co_consts
        )
        layout = (code.co_name, code.co_code, consts, code.co_names, code.co_varnames)
        shape = (code.co_freevars, code.co_argcount, code.co_kwonlyargcount, code.co_flags)
        return sha256(b"bytecode\0" + self._encode((layout, shape))).digest()

    def _run(self, fn: FunctionType, entry: _Entry) -> bytes:
        trace = self._trace()
        outermost = not trace.active
        digest = self._guarded(fn, self._dynamic, entry.static)
        if outermost and trace.stable:
            entry.memo = (tuple(trace.deps), digest)
        return digest

    def _dynamic(self, fn: FunctionType, static: _Static) -> bytes:
        trace, names = self._trace(), fn.__globals__
        parts = [static.digest]
        parts += [self._resolve(trace, fn, static, chain) for chain in static.chains]
        for chain in static.shadowable:
            if chain[0] in names:
                parts += [b"S", ".".join(chain).encode(), b"\0"]
                parts.append(self._resolve(trace, fn, static, chain))
            else:
                trace.deps.append((names, chain[0], _MISSING))
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=True):
            value = _contents(cell)
            trace.deps.append((cell, None, value))
            state = (name,) in static.mutated
            parts.append(_EMPTY_CELL if value is _MISSING else self._refer(fn, name, value, state))
        return sha256(b"".join(parts)).digest()

    def _resolve(self, trace: _Trace, fn: FunctionType, static: _Static, chain: Chain) -> bytes:
        names: Any = fn.__globals__
        obj = names.get(chain[0], _MISSING)
        trace.deps.append((names, chain[0], obj))
        if obj is _MISSING:
            obj = _BUILTINS.get(chain[0], _MISSING)
        depth = 1
        while depth < len(chain) and isinstance(obj, ModuleType) and is_user_module(obj.__name__):
            names = vars(obj)
            obj = names.get(chain[depth], _MISSING)
            trace.deps.append((names, chain[depth], obj))
            depth += 1
        if obj is _MISSING:
            return _ABSENT
        state = bool(static.mutated) and chain[:depth] in static.mutated
        return self._refer(fn, ".".join(chain[:depth]), obj, state)

    def _refer(self, fn: FunctionType, label: str, obj: Any, state: bool) -> bytes:
        """The contribution of one object the code refers to."""
        if isinstance(obj, ModuleType):
            return b"M" + self.name_digest(obj.__name__)
        obj = unwrap(obj)
        if isinstance(obj, FunctionType):
            if is_user_module(obj.__module__):
                return b"F" + self._run(obj, self._entry(obj))
            return b"L" + self.name_digest(qualified_name(obj))
        if isinstance(obj, type):
            return b"C" + self.class_fingerprint(obj)
        if isinstance(obj, LIBRARY_CALLABLES):
            return b"L" + self.name_digest(qualified_name(obj))
        if state:
            return b"s" + self.name_digest(qualified_name(type(obj)))
        return self._constant(fn, label, obj)

    def _constant(self, owner: Any, label: str, value: Any, *, warn: bool = True) -> bytes:
        """Value encoding of a referenced object, or its type name when it has none."""
        if not _stable(value):
            self._trace().stable = False
        try:
            encoded = self._encode(value)
        except self._unhashable:
            if warn:
                self._warn(owner, label, value)
            return b"U" + self.name_digest(qualified_name(type(value)))
        return b"V" + encoded

    def _warn(self, owner: Any, label: str, value: Any) -> None:
        key = (qualified_name(owner), label)
        if key not in self._warned:
            self._warned.add(key)
            message = (
                f"{key[0]} refers to {label!r}, a {qualified_name(type(value))} that cannot be "
                "fingerprinted, so cached results will not notice when it changes. Define "
                "__cache_key__() on its class, register a fingerprinter with "
                "nestflow.register_fingerprint(), or pass it to the node as an input."
            )
            warnings.warn(message, CacheWarning, stacklevel=2)

    # --- classes --------------------------------------------------------------------------

    def _class_digest(self, cls: type) -> bytes:
        source = self._class_sources.get(cls)
        if source is None:
            tree = parse(cls)
            source = bytes(32) if tree is None else tree_digest(b"class", tree)
            self._class_sources[cls] = source
        parts = [qualified_name(cls).encode(), b"\0", source]
        for klass in cls.__mro__[:-1]:
            if is_user_module(klass.__module__):
                parts += self._members(klass)
            else:
                parts += [b"B", self.name_digest(qualified_name(klass))]
        return sha256(b"".join(parts)).digest()

    def _members(self, klass: type) -> Iterator[bytes]:
        members, deps = vars(klass), self._trace().deps
        record = "__dataclass_fields__" in members or "__attrs_attrs__" in members
        deps.append((members, _SIZE, len(members)))
        for name, attr in sorted(members.items()):
            deps.append((members, name, attr))
            functions = _functions_of(attr)
            if functions is not None:
                yield name.encode() + b"\0" + bytes([len(functions)])
                yield from (self._method(func, record) for func in functions)
            elif not name.startswith("_"):
                yield name.encode() + b"\0" + self._constant(klass, name, attr, warn=False)

    def _method(self, func: Any, record: bool) -> bytes:
        if isinstance(func, FunctionType):
            generated = func.__name__ in _GENERATED and func.__code__.co_filename.startswith("<")
            if record and generated:
                return _SKIPPED
            if not is_user_module(func.__module__):
                return b"L" + self.name_digest(qualified_name(func))
        return b"F" + self(func)
