"""Declared input types: the vocabulary YAML workflows (and HTTP contracts) use.

``string``, ``integer``, ``number``, ``boolean``, ``array``, ``object`` and ``any``, checked
against the values a run is given, all problems reported together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean", "array", "object", "any")


def _matches(kind: str, value: Any) -> bool:
    if kind == "any":
        return True
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):  # a bool is an int to Python, never a number here
        return False
    if kind == "integer":
        return isinstance(value, int)
    if kind == "number":
        return isinstance(value, (int, float))
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, (list, tuple))
    return isinstance(value, Mapping)  # object


def type_problems(types: Mapping[str, str], values: Mapping[str, Any]) -> list[str]:
    """One line per given value that is not of its declared type."""
    return [
        f"input `{name}` must be of type {kind}, got {type(values[name]).__name__} "
        f"{values[name]!r:.60}"
        for name, kind in types.items()
        if name in values and not _matches(kind, values[name])
    ]
