"""Where template expressions run: lookups, step states and the Jinja sandbox with its filters.

Everything a template reads goes through ``lookup``: a mapping key first, then a public
field of a dataclass, named tuple or pydantic model, and nothing else (no methods, no
attributes starting with ``_``, no ``__class__``). A segment that leads nowhere raises
``Absent``, which the sandbox turns into Jinja's ``StrictUndefined`` so that ``| default``
can replace it and any other use fails with the reason.

``ENV`` is a ``SandboxedEnvironment`` that yields native values, holds only SPEC 11.3's
filters (plus two internal ones that the expression checker inserts and that cannot be
written in a workflow), has no globals and no tests, and bounds ``*`` and ``%``.
"""

from __future__ import annotations

import dataclasses
import json
import reprlib
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Final

from jinja2.environment import Template
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.runtime import Context, StrictUndefined, Undefined
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import pass_context

FILTERS: Final = {
    "default": (1, 1), "length": (0, 0), "tojson": (0, 0), "join": (0, 1), "lower": (0, 0),
    "upper": (0, 0), "trim": (0, 0), "round": (0, 1), "int": (0, 0), "float": (0, 0),
    "string": (0, 0), "first": (0, 0), "last": (0, 0), "keys": (0, 0), "values": (0, 0),
}  # fmt: skip
"""The filters of SPEC 11.3, each with its least and most number of arguments."""

DEFINED: Final = "nestflow_defined"
"""Internal filter: its argument, failing if it is a missing value."""
STEP_FIELD: Final = "nestflow_step"
"""Internal filter: ``steps.<step>.<field>`` read through ``step_field``."""

MAX_REPEAT: Final = 1_000_000
"""The longest string or list ``*`` may build: a template may not exhaust memory."""


class Absent(LookupError):
    """A path segment that leads nowhere; ``str()`` says why."""

    def __init__(self, segment: object, reason: str) -> None:
        super().__init__(reason)
        self.segment = segment


def lookup(obj: Any, key: Any) -> Any:
    """``obj``'s value at ``key``: a mapping key first, then a public field."""
    if type(obj) is dict:  # the common case, first and fast
        try:
            return obj[key]
        except (KeyError, TypeError):
            raise Absent(key, _absence(obj, key)) from None
    if isinstance(obj, Mapping):
        try:
            return obj[key]
        except (KeyError, TypeError):
            pass
    elif type(key) is int and isinstance(obj, Sequence):
        try:
            return obj[key]
        except IndexError:
            raise Absent(key, _absence(obj, key)) from None
    if isinstance(key, str) and not key.startswith("_") and key in _fields(obj):
        return getattr(obj, key)
    raise Absent(key, _absence(obj, key))


def step_field(steps: Any, step: Any, field: Any) -> Any:
    """``steps.<step>.<field>``: a step that did not succeed has no result to read.

    A step's state is a mapping with ``result``, ``status`` (``"ok"`` when absent),
    ``error`` (``None`` when absent) and, optionally, each published name (else looked up
    in ``result``).
    """
    try:
        state = steps[step]
    except (KeyError, TypeError):
        raise Absent(step, f"the context holds no state for step `{step}`") from None
    if field in ("status", "error"):
        return state.get(field, "ok" if field == "status" else None)
    status = state.get("status", "ok")
    if status != "ok":
        happened = "was skipped" if status == "skipped" else "failed"
        raise Absent(field, f"step `{step}` {happened}, so its `{field}` has no value")
    return state[field] if field in state else lookup(state.get("result"), field)


def _fields(obj: Any) -> Collection[str]:
    """The fields of a dataclass, named tuple or pydantic model; nothing for other objects."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [f.name for f in dataclasses.fields(obj)]
    if isinstance(obj, tuple):
        return getattr(type(obj), "_fields", ())
    pydantic = sys.modules.get("pydantic")  # never imported here: a model implies it is loaded
    if pydantic is not None and isinstance(obj, pydantic.BaseModel):
        return [*type(obj).model_fields, *type(obj).model_computed_fields]
    return ()


def _absence(obj: Any, key: Any) -> str:
    kind = type(obj).__name__
    if isinstance(obj, Mapping):
        keys = ", ".join(f"`{k}`" for k in list(obj)[:10]) + (", ..." if len(obj) > 10 else "")
        return f"`{key}` is not a key of this {kind}; its keys: {keys or 'none'}"
    if type(key) is int and isinstance(obj, Sequence):
        return f"index {key} is out of range for this {kind} of {len(obj)} item(s)"
    fields = [name for name in _fields(obj) if not name.startswith("_")]
    if fields:
        return f"`{key}` is not a field of this {kind}; its fields: " + ", ".join(
            f"`{name}`" for name in fields
        )
    return f"the {kind} {reprlib.repr(obj)} has no key or field `{key}`"


def to_text(value: Any) -> str:
    """A value as it reads inside text: scalars by ``str``, containers as compact JSON."""
    if type(value) in _SCALARS:  # the common case, decided without isinstance on ABCs
        return str(value)
    if isinstance(value, dict | list | tuple | Mapping):
        return _to_json(value)
    return str(value)


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_REPEATABLE: Final = (str, bytes, list, tuple)


def _to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox with our lookup rules, native values and bounded ``*`` and ``%``."""

    code_generator_class = NativeCodeGenerator
    intercepted_binops = frozenset({"*", "%"})

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Undefined):
            return obj
        try:
            return lookup(obj, argument)
        except Absent as absent:
            return self.undefined(hint=str(absent), name=str(absent.segment))

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self.getitem(obj, attribute)  # ``a.b`` reads as ``a['b']``: a key, then a field

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            if isinstance(left, str | bytes):
                raise TypeError("`%` is arithmetic here: a string cannot be formatted with it")
            return left % right
        if isinstance(left, _REPEATABLE) or isinstance(right, _REPEATABLE):
            sequence, count = (left, right) if isinstance(left, _REPEATABLE) else (right, left)
            if isinstance(count, int) and len(sequence) * count > MAX_REPEAT:
                raise ValueError(f"`*` would build more than {MAX_REPEAT:,} items")
        return left * right


def evaluate(template: Template, variables: dict[str, Any]) -> Any:
    """The value of a compiled expression (``expressions.analyse``) for ``variables``.

    The context is built as ``Template.new_context`` builds it, minus copying in globals
    (this environment has none): that copy took half the time of a whole evaluation.
    """
    return next(template.root_render_func(ENV.context_class(ENV, variables, None, {})))


def _defined(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def _filter(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` as a filter that takes the context, which it ignores.

    A filter taking the context is never folded into a constant when Jinja compiles:
    nothing a template says is evaluated before it is rendered. Its arguments are never
    missing values: the expression checker wraps every reference outside ``| default`` in
    the ``DEFINED`` filter, which fails on them.
    """

    @pass_context
    def apply(context: Context, *args: Any) -> Any:
        return function(*args)

    return apply


@pass_context
def _default(context: Context, value: Any, fallback: Any) -> Any:
    return fallback if isinstance(value, Undefined) else value


@pass_context
def _step(context: Context, steps: Any, step: str, field: str) -> Any:
    if isinstance(steps, Undefined):
        return steps
    try:
        return step_field(steps, step, field)
    except Absent as absent:
        return context.environment.undefined(hint=str(absent), name=str(absent.segment))


def _string_method(name: str, method: Callable[[str], str]) -> Callable[[Any], str]:
    def apply(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"the filter `{name}` needs a string, not a {type(value).__name__}")
        return method(value)

    return apply


def _join(value: Any, separator: str = "") -> str:
    if not isinstance(separator, str):
        raise TypeError(f"`join` needs a string separator, not a {type(separator).__name__}")
    return separator.join(to_text(item) for item in value)


def _round(value: Any, digits: int | None = None) -> Any:
    return round(value) if digits is None else round(value, digits)


def _first(value: Any) -> Any:
    for item in value:
        return item
    raise ValueError("`first` of an empty collection")


def _last(value: Any) -> Any:
    items = list(value)
    if not items:
        raise ValueError("`last` of an empty collection")
    return items[-1]


def _mapping(name: str, read: Callable[[Mapping[Any, Any]], Any]) -> Callable[[Any], list[Any]]:
    def apply(value: Any) -> list[Any]:
        if not isinstance(value, Mapping):
            raise TypeError(f"the filter `{name}` needs a mapping, not a {type(value).__name__}")
        return list(read(value))

    return apply


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "length": len,
    "tojson": _to_json,
    "join": _join,
    "lower": _string_method("lower", str.lower),
    "upper": _string_method("upper", str.upper),
    "trim": _string_method("trim", str.strip),
    "round": _round,
    "int": int,
    "float": float,
    "string": to_text,
    "first": _first,
    "last": _last,
    "keys": _mapping("keys", Mapping.keys),
    "values": _mapping("values", Mapping.values),
}

ENV: Final = _Sandbox(undefined=StrictUndefined, optimized=False, keep_trailing_newline=True)
ENV.globals.clear()
ENV.tests.clear()
ENV.filters = {
    "default": _default,
    DEFINED: _filter(_defined),
    STEP_FIELD: _step,
    **{name: _filter(function) for name, function in _FUNCTIONS.items()},
}
