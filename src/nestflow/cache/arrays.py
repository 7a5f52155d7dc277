"""Fingerprint rules for NumPy and pandas, recognised by module name and never imported here."""

from __future__ import annotations

import sys
from typing import Any

from nestflow.cache.code import qualified_name
from nestflow.cache.encoding import (
    Encoder,
    Handler,
    int_bytes,
    raw_bytes,
    scalar,
    tagged_text,
    text_bytes,
    tracked,
)


def _loaded(kind: type, package: str) -> Any:
    """The ``package`` module when ``kind`` comes from it (it is imported then)."""
    if any(base.__module__.partition(".")[0] == package for base in kind.__mro__):
        return sys.modules.get(package)
    return None


def numpy_rule(kind: type) -> Handler | None:
    numpy = _loaded(kind, "numpy")
    if numpy is None:
        return None
    if issubclass(kind, numpy.ndarray):
        return tracked(_ndarray)
    if issubclass(kind, numpy.generic):
        return scalar(b"g", lambda value: text_bytes(value.dtype.str) + _numpy_bytes(value))
    if issubclass(kind, numpy.dtype):
        return scalar(b"#", tagged_text(b"d", lambda value: f"{value.str}{value}"))
    return None


def _numpy_bytes(value: Any) -> bytes:
    if value.dtype.kind == "f":  # one NaN for all, as for Python floats
        numpy = sys.modules["numpy"]
        nan = numpy.isnan(value)
        value = numpy.where(nan, numpy.nan, value) if nan.any() else value
    return raw_bytes(value.tobytes())


def _ndarray(enc: Encoder, value: Any) -> bytes:
    dtype = value.dtype
    head = b"#" + text_bytes(qualified_name(type(value))) + text_bytes(f"{dtype.str}{dtype}")
    head += int_bytes(value.ndim) + b"".join(int_bytes(n) for n in value.shape)
    if dtype.hasobject:
        return head + b"".join(enc.items(value.ravel().tolist()))
    return head + _numpy_bytes(value)


def pandas_rule(kind: type) -> Handler | None:
    pandas = _loaded(kind, "pandas")
    if pandas is None:
        return None
    if kind.__name__ == "NAType":
        return scalar(b"!", lambda _: b"NA")
    handlers: list[tuple[Any, Handler]] = [(pandas.DataFrame, _frame), (pandas.Series, _series)]
    handlers += [(pandas.Index, _index), (pandas.api.extensions.ExtensionArray, _extension_array)]
    return next((tracked(h) for base, h in handlers if issubclass(kind, base)), None)


def _extension_array(enc: Encoder, value: Any) -> bytes:
    head = b"J" + text_bytes(qualified_name(type(value))) + text_bytes(str(value.dtype))
    return head + enc.encode_at(value.to_numpy(dtype=object), "")


def _index(enc: Encoder, value: Any) -> bytes:
    head = b"I" + text_bytes(qualified_name(type(value))) + text_bytes(str(value.dtype))
    return head + enc.encode_at(list(value.names), ".names") + enc.encode_at(value.to_numpy(), "")


def _series(enc: Encoder, value: Any) -> bytes:
    head = b"S" + text_bytes(str(value.dtype)) + enc.encode_at(value.name, ".name")
    return head + enc.encode_at(value.index, ".index") + enc.encode_at(value.to_numpy(), "")


def _frame(enc: Encoder, value: Any) -> bytes:
    head = b"W" + enc.encode_at(value.columns, ".columns") + enc.encode_at(value.index, ".index")
    head += enc.encode([str(dtype) for dtype in value.dtypes])
    columns = [value.iloc[:, i].to_numpy() for i in range(value.shape[1])]
    return head + b"".join(enc.items(columns, ["[:, ", "]"]))
