"""The call styles of run/map and the input checks made before any node starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nestflow.core import calls
from nestflow.core.calls import MAP_KEYWORDS, RUN_KEYWORDS
from nestflow.core.contracts import type_problems
from nestflow.errors import InputError, InvalidCallError, MissingInputError, UnknownInputError

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline
    from nestflow.runtime.plan import LevelPlan


def _names(names: Any) -> str:
    return ", ".join(f"`{n}`" for n in names) or "(none)"


def split_call(
    pipeline: Pipeline,
    method: str,
    positional: Mapping[str, Any] | None,
    kwargs: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge the positional mapping, ``inputs=`` and keyword inputs; split off the
    call's own keywords (``calls.RUN_KEYWORDS``, ``calls.MAP_KEYWORDS``)."""
    keywords = MAP_KEYWORDS if method in ("map", "amap") else RUN_KEYWORDS
    opts = {key: kwargs.pop(key) for key in keywords if key in kwargs}
    given_as_keyword = "inputs" in kwargs and "inputs" not in pipeline.inputs
    if given_as_keyword and isinstance(kwargs["inputs"], Mapping):
        if positional is not None:
            raise InvalidCallError(calls.inputs_twice(method))
        positional = kwargs.pop("inputs")
    if positional is None:
        return dict(kwargs), opts
    if not isinstance(positional, Mapping):
        raise InvalidCallError(calls.not_a_mapping(pipeline, method, positional))
    twice = [name for name in kwargs if name in positional]
    if twice:
        raise InvalidCallError(calls.given_twice(method, twice))
    return {**positional, **kwargs}, opts


def requested_outputs(opts: Mapping[str, Any]) -> tuple[tuple[str, ...] | None, bool]:
    """The requested output names (``None`` for all) and whether a bare value is wanted."""
    output_name = opts.get("output_name")
    output_nodes = opts.get("output_nodes")
    if output_name is not None and output_nodes is not None:
        raise InvalidCallError(
            "Give output_name or output_nodes, not both: output_name='out' returns the "
            "bare value, output_name=[...] or output_nodes=[...] a mapping of those outputs."
        )
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
        raise InvalidCallError(
            f"output_name/output_nodes take a name or a list of names, got {chosen!r}."
        ) from None
    bad = [n for n in names if not isinstance(n, str)]
    if bad or not names:
        raise InvalidCallError(f"output names must be a non-empty list of str, got {chosen!r}.")
    return tuple(dict.fromkeys(names)), False


def check_inputs(
    pipeline: Pipeline, method: str, plan: LevelPlan, values: Mapping[str, Any]
) -> None:
    """Reject published names, unknown names and missing required inputs, all levels at once."""
    published = [n for n in values if n in pipeline.graph.producers]
    if published:
        lines = [
            f"`{n}` is published by node `{pipeline.node_ids[pipeline.graph.producers[n][0]]}`; "
            "it cannot also be given as an input."
            for n in published
        ]
        raise InputError("\n".join(lines))
    unknown = [n for n in values if n not in pipeline.inputs and n not in pipeline.input_types]
    if unknown:
        elsewhere = calls.misplaced(pipeline, method, unknown)
        if elsewhere is not None:
            raise InvalidCallError(elsewhere)
        raise UnknownInputError(
            f"No node of pipeline `{pipeline.name}` consumes {_names(unknown)}. "
            f"Its inputs are: {_names(pipeline.inputs)}. Check the spelling."
        )
    if pipeline.input_types:
        wrong = type_problems(pipeline.input_types, values)
        if wrong:
            raise InputError(
                f"Pipeline `{pipeline.name}` was given inputs of the wrong type:\n  "
                + "\n  ".join(wrong)
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
        raise InvalidCallError(
            f"on_error must be 'raise' (fail fast at the first failed item) or 'continue' (every "
            f"item runs; a failed item gives None at its position), got {value!r}."
        )
    return str(value)
