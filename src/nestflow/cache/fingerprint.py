"""Value fingerprints: a type-exact, deterministic sha256 of any value a node receives.

Every encoded value starts with a type tag and every variable-length part carries its
length, so ``1``, ``"1"``, ``True``, ``1.0`` and ``Decimal(1)`` differ, and so do a list and
a tuple of the same items. Dict and set items are encoded one by one and sorted, so neither
insertion order nor the hash seed matters; floats are keyed by their IEEE bytes, with one
NaN for all. Nothing depends on ``hash()``, ``id()`` or pickle output, so a digest is the
same in every process and on every machine with the same byte order.

The rule for a type is decided once and memoised: a fingerprinter registered with
:func:`register_fingerprint` (exact type, then MRO), then ``__cache_key__()``, then the
built-in rules, then the public attributes of any object with ``__dict__`` or
``__slots__``; anything else raises :class:`Unhashable`. Scalars of exact built-in types
skip that dispatch: they are most inputs, and a warm node has about two microseconds.
Functions and classes are keyed by their code fingerprint (:mod:`nestflow.cache.code`).
"""

from __future__ import annotations

import array
import dataclasses
import datetime as dt
import ipaddress
import operator
import re
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from functools import partial
from hashlib import sha256
from types import FunctionType, MethodType, ModuleType
from typing import Any

from nestflow.cache.arrays import numpy_rule, pandas_rule
from nestflow.cache.code import (
    LIBRARY_CALLABLES,
    AnalysisStore,
    CodeFingerprinter,
    qualified_name,
)
from nestflow.cache.encoding import (
    LENGTH,
    MAX_DEPTH,
    SCALARS,
    Encode,
    Encoder,
    Handler,
    prefixed,
    raw_bytes,
    scalar,
    tagged_text,
    text_bytes,
    tracked,
    zone,
)
from nestflow.cache.unhashable import Unhashable
from nestflow.errors import CacheWarning

__all__ = ["MAX_DEPTH", "Unhashable", "code_fingerprint", "fingerprint", "register_fingerprint"]

_RESOURCE_TYPES = """socket.socket _io._IOBase _thread.lock _thread.RLock threading.Thread
    threading.Condition threading.Event threading.Semaphore threading.Barrier queue.Queue
    subprocess.Popen builtins.module asyncio.events.AbstractEventLoop selectors.BaseSelector
    concurrent.futures._base.Executor multiprocessing.process.BaseProcess"""
_RESOURCES = frozenset(_RESOURCE_TYPES.split())


# Exact scalar types with no registered fingerprinter; register_fingerprint prunes it.
_fast: dict[type, Encode] = dict(SCALARS)
_UNSET: Any = object()
_first = operator.itemgetter(0)


# --- the encoder: nesting, cycles and access paths ---------------------------------------------


class _Encoder:
    """One encoding: the containers open on the current path, and the depth."""

    __slots__ = ("active", "depth")

    def __init__(self) -> None:
        self.active: dict[int, int] = {}
        self.depth = 0

    def encode(self, value: Any) -> bytes:
        scalar = _fast.get(type(value))
        if scalar is not None:
            return scalar(value)
        handler = _handlers.get(type(value)) or _resolve(type(value))
        return handler(self, value)

    def encode_at(self, value: Any, step: str) -> bytes:
        try:
            return self.encode(value)
        except Unhashable as exc:
            exc.add_step(step)
            raise

    def items(self, values: Iterable[Any], brackets: Sequence[str] = "[]") -> list[bytes]:
        out: list[bytes] = []
        try:
            for value in values:
                out.append(self.encode(value))
        except Unhashable as exc:
            exc.add_step(f"{brackets[0]}{len(out)}{brackets[1]}")
            raise
        return out

    def pairs(self, items: Iterable[tuple[Any, Any]]) -> list[bytes]:
        out: list[bytes] = []
        for key, value in items:
            encoded = self.encode_at(key, f"<key {len(out)}>")
            try:
                out.append(encoded + self.encode(value))
            except Unhashable as exc:
                label = repr(key) if type(key) in (str, int, bool) else "..."
                exc.add_step(f"[{label if len(label) < 40 else '...'}]")
                raise
        return out

    def fields(self, head: bytes, named: Sequence[tuple[str, bytes, Any]]) -> bytes:
        """Named values, each as its encoded name and value; ``named`` is in a fixed order."""
        parts: list[bytes] = []
        try:
            for _, label, value in named:
                parts.append(label + self.encode(value))
        except Unhashable as exc:
            exc.add_step(f".{named[len(parts)][0]}")
            raise
        return head + LENGTH(len(parts)) + b"".join(parts)


def _sequence(tag: bytes, order: Callable[[list[bytes]], list[bytes]], brackets: str) -> Handler:
    def encode(enc: Encoder, value: Any) -> bytes:
        return tag + LENGTH(len(value)) + b"".join(order(enc.items(value, brackets)))

    return tracked(encode)


def _dict(enc: Encoder, value: Any) -> bytes:
    return b"{" + LENGTH(len(value)) + b"".join(sorted(enc.pairs(value.items())))


def _unordered(tag: bytes) -> Handler:
    return _sequence(tag, sorted, "{}")


def _ordered(tag: bytes) -> Handler:
    return _sequence(tag, lambda parts: parts, "[]")


_CONTAINERS: dict[type, Handler] = {
    list: _ordered(b"l"),
    tuple: _ordered(b"("),
    deque: _ordered(b"q"),
    dict: tracked(_dict),
    set: _unordered(b"<"),
    frozenset: _unordered(b">"),
    slice: lambda enc, v: b"x" + enc.encode((v.start, v.stop, v.step)),
}


# --- rules, tried in order once per type ------------------------------------------------------


def _keyed(head: bytes, key: Callable[[Any], Any], step: str) -> Handler:
    return tracked(lambda enc, value: head + enc.encode_at(key(value), step))


def _fields(tag: bytes, kind: type, names: Iterable[str]) -> Handler:
    head, labels = (
        tag + text_bytes(qualified_name(kind)),
        [(name, text_bytes(name)) for name in names],
    )

    def encode(enc: Encoder, value: Any) -> bytes:
        named = [
            (n, label, v) for n, label in labels if (v := getattr(value, n, _UNSET)) is not _UNSET
        ]
        return enc.fields(head, named)

    return tracked(encode)


def _exact_rule(kind: type) -> Handler | None:
    encoding = SCALARS.get(kind)
    return scalar(b"", encoding) if encoding is not None else _CONTAINERS.get(kind)


def _method_value(enc: Encoder, value: MethodType) -> bytes:
    return b"M" + _CODE(value.__func__) + enc.encode_at(value.__self__, ".__self__")


def _builtin_value(enc: Encoder, value: Any) -> bytes:
    owner = getattr(value, "__self__", None)
    head = b"L" + text_bytes(qualified_name(value))
    if owner is None or isinstance(owner, ModuleType):
        return head
    return head + enc.encode_at(owner, ".__self__")


def _partial_value(enc: Encoder, value: partial[Any]) -> bytes:
    func = enc.encode_at(value.func, ".func")
    return b"P" + func + enc.encode_at(value.args, ".args") + enc.encode_at(value.keywords, ".kw")


def _callable_rule(kind: type) -> Handler | None:
    if issubclass(kind, type):
        return lambda enc, value: b"C" + _CODE.class_fingerprint(value)
    if kind is FunctionType:
        return lambda enc, value: b"m" + _CODE(value)
    if issubclass(kind, staticmethod | classmethod):
        head = b"S" + text_bytes(qualified_name(kind))
        return tracked(lambda enc, value: head + enc.encode_at(value.__func__, ".__func__"))
    handlers: tuple[tuple[Any, Handler], ...] = (
        (MethodType, _method_value),
        (partial, _partial_value),
        (LIBRARY_CALLABLES, _builtin_value),
    )
    return next((tracked(h) for base, h in handlers if issubclass(kind, base)), None)


def _stdlib_rule(kind: type) -> Handler | None:
    name = qualified_name(kind)
    if issubclass(kind, Enum):
        return scalar(b"e" + text_bytes(name), lambda value: text_bytes(str(value.name)))
    if issubclass(kind, dt.tzinfo):
        return scalar(b"", tagged_text(b"Z", zone))
    if issubclass(kind, ipaddress._IPAddressBase):
        return scalar(b"I" + text_bytes(name), lambda value: text_bytes(str(value)))
    if issubclass(kind, array.array):
        return scalar(b"[", lambda value: text_bytes(value.typecode) + raw_bytes(value.tobytes()))
    if issubclass(kind, re.Pattern):
        return lambda enc, value: b"%" + enc.encode((value.pattern, value.flags))
    if any(qualified_name(base) in _RESOURCES for base in kind.__mro__):
        return _unhashable(name, "sockets, files, locks, threads and modules have no stable value")
    return None


def _record_rule(kind: type) -> Handler | None:
    if issubclass(kind, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
        return _fields(b"n", kind, getattr(kind, "_fields", ()))
    if dataclasses.is_dataclass(kind):
        return _fields(b"A", kind, [f.name for f in dataclasses.fields(kind) if f.compare])
    attributes = getattr(kind, "__attrs_attrs__", None)
    if attributes is not None:
        return _fields(b"y", kind, [a.name for a in attributes if getattr(a, "eq", True)])
    if hasattr(kind, "__pydantic_fields__") and callable(getattr(kind, "model_dump", None)):
        head = b"Y" + text_bytes(qualified_name(kind))
        dump = operator.methodcaller("model_dump", mode="python")
        return tracked(lambda enc, value: enc.fields(head, _labelled(dump(value).items())))
    return None


def _subclass_rule(kind: type) -> Handler | None:
    """Subclasses of built-in scalars and containers: their own name, then the base rule."""
    head = b"X" + text_bytes(qualified_name(kind))
    for base in kind.__mro__[1:-1]:
        if base in SCALARS:
            return scalar(head, SCALARS[base])
        if base in _CONTAINERS:
            return prefixed(head, _CONTAINERS[base])
    return None


def _object_rule(kind: type) -> Handler | None:
    has_slots = any("__slots__" in vars(klass) for klass in kind.__mro__)
    if not kind.__dictoffset__ and not has_slots:
        return None
    head, slots = b"O" + text_bytes(qualified_name(kind)), _public_slots(kind)

    def encode(enc: Encoder, value: Any) -> bytes:
        named = _public_attributes(value, slots)
        if not named:
            _warn_shared_key(kind)
        return enc.fields(head, named)

    return tracked(encode)


def _public_slots(kind: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in kind.__mro__:
        slots = vars(klass).get("__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    return tuple(dict.fromkeys(name for name in names if not name.startswith("_")))


def _public_attributes(value: Any, slots: tuple[str, ...]) -> list[tuple[str, bytes, Any]]:
    found = {
        name: attr
        for name, attr in getattr(value, "__dict__", {}).items()
        if isinstance(name, str) and not name.startswith("_")
    }
    found.update((name, getattr(value, name)) for name in slots if hasattr(value, name))
    return _labelled(found.items())


def _labelled(named: Iterable[tuple[str, Any]]) -> list[tuple[str, bytes, Any]]:
    return [(name, text_bytes(name), value) for name, value in sorted(named, key=_first)]


_shared_key_warned: weakref.WeakSet[type] = weakref.WeakSet()


def _warn_shared_key(kind: type) -> None:
    if kind not in _shared_key_warned:
        _shared_key_warned.add(kind)
        message = (
            f"{qualified_name(kind)} has no public attributes, so all its instances share one "
            f"cache key. Define __cache_key__() on {kind.__qualname__} or register a "
            "fingerprinter with nestflow.register_fingerprint() to tell them apart."
        )
        warnings.warn(message, CacheWarning, stacklevel=4)


def _unhashable(type_name: str, reason: str) -> Handler:
    def encode(enc: Encoder, value: Any) -> bytes:
        raise Unhashable(type_name, reason)

    return encode


# --- dispatch and registration ----------------------------------------------------------------

_RULES: tuple[Callable[[type], Handler | None], ...] = (
    _exact_rule,
    _callable_rule,
    numpy_rule,
    pandas_rule,
    _stdlib_rule,
    _record_rule,
    _subclass_rule,
    _object_rule,
)
_registry: dict[type, Callable[[Any], Any]] = {}
_handlers: dict[type, Handler] = {}
_lock = threading.Lock()


def _registered(kind: type) -> Callable[[Any], Any] | None:
    return next((_registry[k] for k in kind.__mro__ if k in _registry), None)


def _rule_for(kind: type) -> Handler:
    name = text_bytes(qualified_name(kind))
    registered = _registered(kind)
    if registered is not None:
        return _keyed(b"R" + name, registered, "<registered fingerprinter>")
    if callable(getattr(kind, "__cache_key__", None)):
        return _keyed(b"K" + name, operator.methodcaller("__cache_key__"), ".__cache_key__()")
    handlers = (rule(kind) for rule in _RULES)
    default = _unhashable(qualified_name(kind), "no fingerprint rule applies to this type")
    return next((handler for handler in handlers if handler is not None), default)


def _resolve(kind: type) -> Handler:
    with _lock:
        handler = _handlers.get(kind)
        if handler is None:
            handler = _handlers[kind] = _rule_for(kind)
    return handler


def register_fingerprint(type_: type, fn: Callable[[Any], Any]) -> None:
    """Fingerprint instances of ``type_`` (and its subclasses) by the value ``fn`` returns.

    A registration wins over ``__cache_key__`` and the built-in rules, and may be made at
    any time: every rule and memo decided before is decided again.
    """
    if not isinstance(type_, type):
        raise TypeError(f"register_fingerprint needs a class, got {type_!r}.")
    if not callable(fn):
        raise TypeError(f"register_fingerprint needs a callable fingerprinter, got {fn!r}.")
    with _lock:
        _registry[type_] = fn
        _handlers.clear()
        for kind in [kind for kind in _fast if _registered(kind) is not None]:
            del _fast[kind]
        _CODE.reset()


def _encoding(value: Any) -> bytes:
    scalar = _fast.get(type(value))
    return scalar(value) if scalar is not None else _Encoder().encode(value)


def fingerprint(value: Any) -> bytes:
    """32-byte sha256 digest of the type-exact, deterministic encoding of ``value``.

    Raises
    ------
    Unhashable
        When ``value``, or something inside it, cannot be fingerprinted; ``where`` says
        where inside it.
    """
    scalar = _fast.get(type(value))
    if scalar is not None:
        return sha256(scalar(value)).digest()
    return sha256(_Encoder().encode(value)).digest()


_CODE = CodeFingerprinter(_encoding, Unhashable)


def code_fingerprint(fn: Callable[..., Any], analyses: AnalysisStore | None = None) -> bytes:
    """32-byte digest of what ``fn`` does: normalised source, helpers, constants (SPEC 8.2).

    Repeat calls return a memo after checking that the names and cells it read still hold
    the same objects, so rebinding a helper or a constant shows at once. ``analyses``
    (a cache's store of source analyses) spares a new process from re-parsing sources.
    """
    return _CODE(fn, analyses)


def code_fingerprints(
    fns: Sequence[Callable[..., Any]], analyses: AnalysisStore | None = None
) -> tuple[list[bytes], bool]:
    """``code_fingerprint`` of each of ``fns``, and whether every one depends on its code
    object alone (no global name read, no cell), so the list holds while those do."""
    return _CODE.many(fns, analyses)
