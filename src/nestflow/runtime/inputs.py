"""The call styles of run/map and the input checks made before any node starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nestflow.errors import InputError, MissingInputError, UnknownInputError

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline
    from nestflow.runtime.plan import LevelPlan

RUN_OPTIONS = ("output_name", "output_nodes")
MAP_OPTIONS = (*RUN_OPTIONS, "map_over", "map_mode", "on_error")


def _names(names: Any) -> str:
    return ", ".join(f"`{n}`" for n in names) or "(none)"


def split_call(
    pipeline: Pipeline,
    positional: Mapping[str, Any] | None,
    kwargs: dict[str, Any],
    options: tuple[str, ...],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge the positional mapping, ``inputs=`` and keyword inputs; split off the options."""
    opts = {key: kwargs.pop(key) for key in options if key in kwargs}
    given_as_keyword = "inputs" in kwargs and "inputs" not in pipeline.inputs
    if given_as_keyword and isinstance(kwargs["inputs"], Mapping):
        if positional is not None:
            raise TypeError("Inputs given twice: as a positional mapping and as inputs=.")
        positional = kwargs.pop("inputs")
    if positional is None:
        return dict(kwargs), opts
    if not isinstance(positional, Mapping):
        raise TypeError(
            f"Inputs must be a mapping of names to values, got {type(positional).__name__}. "
            "Call run({'x': 1}), run(x=1) or run(inputs={'x': 1})."
        )
    twice = sorted(set(positional) & set(kwargs))
    if twice:
        raise TypeError(f"Input(s) {_names(twice)} given twice: in the mapping and as keywords.")
    return {**positional, **kwargs}, opts


def requested_outputs(opts: Mapping[str, Any]) -> tuple[tuple[str, ...] | None, bool]:
    """The requested output names (``None`` for all) and whether a bare value is wanted."""
    output_name = opts.get("output_name")
    output_nodes = opts.get("output_nodes")
    if output_name is not None and output_nodes is not None:
        raise TypeError("Give output_name or output_nodes, not both.")
    if isinstance(output_name, str):
        return (output_name,), True
    chosen = output_name if output_name is not None else output_nodes
    if chosen is None:
        return None, False
    if isinstance(chosen, str):
        return (chosen,), False
    try:
        names = tuple(chosen)
    except TypeError:
        raise TypeError(
            f"output_name/output_nodes take a name or a list of names, got {chosen!r}."
        ) from None
    bad = [n for n in names if not isinstance(n, str)]
    if bad or not names:
        raise TypeError(f"output names must be a non-empty list of str, got {chosen!r}.")
    return tuple(dict.fromkeys(names)), False


def check_inputs(pipeline: Pipeline, plan: LevelPlan, values: Mapping[str, Any]) -> None:
    """Reject published names, unknown names and missing required inputs, all levels at once."""
    published = [n for n in values if n in pipeline.graph.producers]
    if published:
        lines = [
            f"`{n}` is published by node `{pipeline.node_ids[pipeline.graph.producers[n][0]]}`; "
            "it cannot also be given as an input."
            for n in published
        ]
        raise InputError("\n".join(lines))
    unknown = [n for n in values if n not in pipeline.inputs]
    if unknown:
        raise UnknownInputError(
            f"No node of pipeline `{pipeline.name}` consumes {_names(unknown)}. "
            f"Its inputs are: {_names(pipeline.inputs)}. Check the spelling."
        )
    missing = {n: paths for n, paths in plan.needs.items() if n not in values}
    if missing:
        parts = [
            f"`{n}` (needed by {', '.join(' > '.join(p) for p in paths)})"
            for n, paths in missing.items()
        ]
        raise MissingInputError(
            f"Pipeline `{pipeline.name}` is missing inputs: {', '.join(parts)}. "
            f"Pass them, for example run({', '.join(f'{n}=...' for n in missing)}), "
            "or bind defaults with pipeline.bind(...).",
            missing={n: [" > ".join(p) for p in paths] for n, paths in missing.items()},
        )


def on_error_option(value: Any) -> str:
    """``map(on_error=...)``: ``"raise"`` or ``"continue"``."""
    if value not in ("raise", "continue"):
        raise ValueError(
            f"on_error must be 'raise' (fail fast at the first failed item) or 'continue' (every "
            f"item runs; a failed item gives None at its position), got {value!r}."
        )
    return str(value)
