"""The naming rule shared by node ids, inputs and outputs."""

from __future__ import annotations

import keyword

RULE = "names must be Python identifiers that are not keywords and do not start with '__'"


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid node, input or output name, or ``None`` when it is."""
    if not isinstance(name, str):
        return f"{name!r} is a {type(name).__name__}, not a str"
    if not name.isidentifier():
        return f"`{name}` is not a Python identifier"
    if keyword.iskeyword(name):
        return f"`{name}` is a Python keyword"
    if name.startswith("__"):
        return f"`{name}` starts with '__'"
    return None
