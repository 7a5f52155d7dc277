"""The byte encodings fingerprints are made of: scalars, and the parts of container rules.

Every encoding starts with a type tag and every variable-length part carries its length
(see :mod:`nestflow.cache.fingerprint`, which builds the rules for every type from these).
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from pathlib import PosixPath, PurePosixPath, PureWindowsPath, WindowsPath
from typing import Any, Protocol
from uuid import UUID

from nestflow.cache.code import qualified_name
from nestflow.cache.unhashable import Unhashable

#: Containers nested deeper than this raise :class:`Unhashable` instead of being truncated.
MAX_DEPTH = 64


class Encoder(Protocol):
    """The running encoding that rules recurse through (``fingerprint._Encoder``)."""

    active: dict[int, int]
    """Ids of the containers open on the current path, with their depth."""
    depth: int

    def encode(self, value: Any) -> bytes:
        """The encoding of ``value``."""
        ...

    def encode_at(self, value: Any, step: str) -> bytes:
        """The encoding of ``value``, found at ``step`` inside the value being encoded."""
        ...

    def items(self, values: Iterable[Any], brackets: Sequence[str] = "[]") -> list[bytes]:
        """The encodings of ``values``, positions named with ``brackets`` in errors."""
        ...

    def pairs(self, items: Iterable[tuple[Any, Any]]) -> list[bytes]:
        """The encodings of key-value pairs."""
        ...

    def fields(self, head: bytes, named: Sequence[tuple[str, bytes, Any]]) -> bytes:
        """Named values after ``head``, each as its encoded name and value."""
        ...


Handler = Callable[[Encoder, Any], bytes]
"""The encoding of one value of a type, given the running encoder."""
Encode = Callable[[Any], bytes]

LENGTH = struct.Struct(">Q").pack
DOUBLE = struct.Struct(">d").pack
NAN = DOUBLE(math.nan)


# --- scalars: one function per exact type, returning the encoding ------------------------------


def int_bytes(value: int) -> bytes:
    data = value.to_bytes((value.bit_length() + 8) >> 3, "big", signed=True)
    return b"i" + LENGTH(len(data)) + data


def double_bytes(value: float) -> bytes:
    return DOUBLE(value) if value == value else NAN


def text_bytes(value: str) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    return b"s" + LENGTH(len(data)) + data


def blob(tag: bytes) -> Encode:
    return lambda value: tag + LENGTH(len(value)) + value


def tagged_text(tag: bytes, render: Callable[[Any], str]) -> Encode:
    return lambda value: tag + text_bytes(render(value))


def zone(tz: dt.tzinfo | None) -> str:
    if tz is None:
        return ""
    text = str(tz)  # a zone name or offset; never a repr carrying an address
    return qualified_name(type(tz)) + ("" if " at 0x" in text else ":" + text)


def clock(tag: bytes) -> Encode:
    """datetime and time: ISO text, the zone's identity and the fold."""
    return lambda value: tag + text_bytes(f"{value.isoformat()}|{zone(value.tzinfo)}|{value.fold}")


def memoryview_bytes(value: memoryview) -> bytes:
    shape = b"".join(int_bytes(n) for n in value.shape or ())
    return b"v" + text_bytes(value.format) + shape + raw_bytes(value.tobytes())


raw_bytes = blob(b"b")
PATHS = (PosixPath, WindowsPath, PurePosixPath, PureWindowsPath)
SCALARS: dict[type, Encode] = {
    int: int_bytes,
    str: text_bytes,
    float: lambda value: b"f" + double_bytes(value),
    bool: lambda value: b"T" if value else b"F",
    type(None): lambda _: b"N",
    bytes: raw_bytes,
    bytearray: blob(b"B"),
    memoryview: memoryview_bytes,
    complex: lambda value: b"c" + double_bytes(value.real) + double_bytes(value.imag),
    Decimal: tagged_text(b"D", str),
    Fraction: lambda value: b"Q" + int_bytes(value.numerator) + int_bytes(value.denominator),
    dt.datetime: clock(b"@"),
    dt.time: clock(b"h"),
    dt.date: tagged_text(b"a", dt.date.isoformat),
    dt.timedelta: lambda v: (
        b"z" + int_bytes(v.days) + int_bytes(v.seconds) + int_bytes(v.microseconds)
    ),
    dt.timezone: tagged_text(b"Z", zone),
    UUID: lambda value: b"u" + value.bytes,
    range: lambda value: (
        b"r" + int_bytes(value.start) + int_bytes(value.stop) + int_bytes(value.step)
    ),
    type(...): lambda _: b"E",
    object: lambda _: b"o",
    **{kind: tagged_text(b"p" + text_bytes(qualified_name(kind)), str) for kind in PATHS},
}


def tracked(inner: Handler) -> Handler:
    """Wrap the handler of a container-like value in the depth and cycle bookkeeping."""

    def encode(enc: Encoder, value: Any) -> bytes:
        key, depth, active = id(value), enc.depth, enc.active
        if key in active:  # a cycle: say how many levels up the open value is
            return b"^" + LENGTH(depth - active[key])
        if depth >= MAX_DEPTH:
            reason = f"it is nested more than {MAX_DEPTH} containers deep"
            raise Unhashable(qualified_name(type(value)), reason)
        enc.depth = active[key] = depth + 1
        try:
            return inner(enc, value)
        finally:
            del active[key]
            enc.depth = depth

    return encode


def prefixed(head: bytes, inner: Handler) -> Handler:
    return lambda enc, value: head + inner(enc, value)


def scalar(head: bytes, scalar: Encode) -> Handler:
    return lambda enc, value: head + scalar(value)
