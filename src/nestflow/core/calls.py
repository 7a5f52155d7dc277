"""What a ``run``/``map`` call takes besides inputs, and what to say when it is misused.

Python reports a wrong argument type or a keyword given twice as ``TypeError``; the
runtime's call checks (``runtime/inputs.py``) say it in nestflow's words with these
messages, raising ``InvalidCallError``: both that ``TypeError`` and an ``InputError``.
"""

from __future__ import annotations

import reprlib
from typing import TYPE_CHECKING, Any, Final

from nestflow.core.config import ASPECTS
from nestflow.core.options import ON_ERROR_PLACES

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline

RUN_KEYWORDS: Final = ("output_name", "output_nodes")
"""The keywords of ``run``/``arun`` that are not inputs."""

MAP_KEYWORDS: Final = (*RUN_KEYWORDS, "map_over", "map_mode", "on_error")
"""The keywords of ``map``/``amap`` that are not inputs."""


def _names(names: Any) -> str:
    return ", ".join(f"`{n}`" for n in names) or "(none)"


def not_a_mapping(pipeline: Pipeline, method: str, value: object) -> str:
    """The message for a positional argument that is not a mapping of inputs."""
    names = pipeline.required_inputs or pipeline.inputs or ("name",)
    if method in ("map", "amap"):
        example = f"{method}({names[0]}=[...], map_over='{names[0]}')"
    elif len(names) == 1:
        example = f"{method}({names[0]}={reprlib.repr(value)})"
    else:
        example = f"{method}({', '.join(f'{n}=...' for n in names)})"
    return (
        f"{method}() takes its inputs as a mapping of input names to values, or as keywords; "
        f"got {type(value).__name__} {reprlib.repr(value)} as its positional argument. "
        f"Pipeline `{pipeline.name}` has the inputs {_names(pipeline.inputs)}: "
        f"write {example}, or pass a mapping such as {{'{names[0]}': ...}}."
    )


def given_twice(method: str, names: list[str]) -> str:
    """The message for inputs given both in the mapping and as keywords."""
    return (
        f"Input(s) {_names(names)} given twice to {method}(): in the mapping and as "
        f"keywords. Give each input once, either in the mapping or as {names[0]}=..."
    )


def inputs_twice(method: str) -> str:
    """The message for a positional mapping together with ``inputs=``."""
    return (
        f"{method}() got its inputs twice: as a positional mapping and as inputs=. "
        f"Pass one mapping: {method}({{...}}) or {method}(inputs={{...}})."
    )


def misplaced(pipeline: Pipeline, method: str, unknown: list[str]) -> str | None:
    """What to say when names given to a call, but consumed by no node, are keywords that
    set configuration or failure handling elsewhere; ``None`` when none of them is."""
    settable = (*ASPECTS, "on_error")
    found = [k for k in unknown if k in settable]
    if not found:
        return None
    lines = []
    for option in found:
        if option == "on_error":
            lines.append(f"{method}() has no on_error=. {ON_ERROR_PLACES}")
        else:
            lines.append(
                f"{method}() has no {option}= (and no node of pipeline `{pipeline.name}` "
                f"takes an input `{option}`); it is set on the pipeline: "
                f"pipeline.with_{option}(...).{method}(...), or Pipeline([...], {option}=...)."
            )
    return "\n".join(lines)
