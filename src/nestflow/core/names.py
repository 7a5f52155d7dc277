"""The naming rule shared by node ids, inputs and outputs."""

from __future__ import annotations

import keyword
from typing import Final

RULE = "names must be Python identifiers that are not keywords and do not start with '__'"

CALL_KEYWORDS: Final = ("output_name", "output_nodes", "map_over", "map_mode")
"""Keywords of ``run``/``map`` themselves; an input so named could never be passed by keyword."""


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


def input_name_problem(name: object) -> str | None:
    """``name_problem`` for an input, which also may not be a keyword of ``run``/``map``."""
    if name in CALL_KEYWORDS:
        return (
            f"`{name}` is a keyword of run()/map() themselves ({', '.join(CALL_KEYWORDS)}), "
            f"so run({name}=...) could never pass it as an input; rename it"
        )
    return name_problem(name)
