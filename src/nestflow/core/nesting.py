"""PipelineNode: a pipeline used as a node, with renamed inputs and outputs and an optional map.

Both mappings read in the direction the data travels: ``input_mapping`` is
``{outer: inner}`` (values flow in), ``output_mapping`` is ``{inner: outer}``
(values flow out). In both, the key is the source and the value the destination.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from nestflow.core.gates import (
    Condition,
    condition_of,
    member_name_problem,
    outcome_of,
    tolerated,
    wired_name_problem,
)
from nestflow.core.names import RULE
from nestflow.core.node import OnError
from nestflow.core.options import on_error_problem
from nestflow.core.workspaces import Workspace, workspace_of
from nestflow.errors import InvalidNameError, InvalidOptionError, MappingError

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline

MapMode = Literal["zip", "product"]
MAP_MODES = ("zip", "product")


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) or "(none)"


class PipelineNode:
    """A nested pipeline as seen from its parent: inputs and outputs under outer names."""

    pipeline: Pipeline
    name: str
    name_is_explicit: bool
    input_mapping: dict[str, str]
    output_mapping: dict[str, str] | None
    map_over: tuple[str, ...]
    map_mode: MapMode
    on_error: OnError
    when: Condition | None
    outcome: str | None
    tolerates: frozenset[str]
    workspace: Workspace | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    to_inner: dict[str, str]
    to_outer: dict[str, str]
    is_async = False
    cache = False

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        input_mapping: Mapping[str, str] | None = None,
        output_mapping: Mapping[str, str] | None = None,
        map_over: str | Sequence[str] | None = None,
        map_mode: MapMode = "zip",
        name: str | None = None,
        on_error: OnError = "raise",
        when: str | Condition | None = None,
        outcome: str | None = None,
        tolerates: Sequence[str] = (),
        workspace: str | Workspace | None = None,
    ) -> None:
        node_name = name if name is not None else pipeline.name
        if (problem := member_name_problem(node_name)) is not None:
            raise InvalidNameError(f"Invalid nested node name ({RULE}): {problem}.")
        in_map = dict(input_mapping or {})
        out_map = None if output_mapping is None else dict(output_mapping)
        _check_input_mapping(node_name, pipeline, in_map)
        _check_output_mapping(node_name, pipeline, out_map)
        to_outer_in = {inner: outer for outer, inner in in_map.items()}
        inputs = tuple(to_outer_in.get(inner, inner) for inner in pipeline.inputs)
        _check_input_collisions(node_name, inputs)
        visible = out_map if out_map is not None else {o: o for o in pipeline.outputs}
        mapped = _map_over_names(map_over)
        _check_map_over(node_name, mapped, inputs, map_mode)
        if (problem := on_error_problem(on_error)) is not None:
            raise InvalidOptionError(f"Invalid on_error= of nested node `{node_name}`: {problem}")
        condition = condition_of(node_name, when)
        outputs = tuple(visible[o] for o in pipeline.outputs if o in visible)
        wired = inputs + tuple(
            n for n in dict.fromkeys(condition.inputs if condition else ()) if n not in inputs
        )
        self.__dict__.update(
            pipeline=pipeline,
            name=node_name,
            name_is_explicit=name is not None,
            input_mapping=in_map,
            output_mapping=out_map,
            map_over=mapped,
            map_mode=map_mode,
            on_error=on_error,
            when=condition,
            outcome=outcome_of(node_name, outcome, outputs),
            tolerates=tolerated(node_name, tolerates, wired),
            workspace=workspace_of(node_name, workspace),
            inputs=wired,
            outputs=outputs,
            to_inner=dict(zip(inputs, pipeline.inputs, strict=True)),
            to_outer={o: visible[o] for o in pipeline.outputs if o in visible},
        )

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"PipelineNode `{self.name}` is immutable; call as_node(...) again.")

    def __repr__(self) -> str:
        extra = f", map_over={self.map_over!r}" if self.map_over else ""
        return (
            f"PipelineNode(name={self.name!r}, inputs={self.inputs!r}, "
            f"outputs={self.outputs!r}{extra})"
        )

    @property
    def optional_inputs(self) -> frozenset[str]:
        """Outer input names whose inner input has a default or a bound value."""
        required = set(self.pipeline.required_inputs)
        return frozenset(o for o, i in self.to_inner.items() if i not in required)

    def with_name(self, name: str) -> PipelineNode:
        """A copy with another node id."""
        return self.with_options(name=name)

    def with_options(self, **changes: Any) -> PipelineNode:
        """A copy with some ``as_node`` options changed (same keywords)."""
        options: dict[str, Any] = {
            "input_mapping": self.input_mapping,
            "output_mapping": self.output_mapping,
            "map_over": self.map_over or None,
            "map_mode": self.map_mode,
            "name": self.name if self.name_is_explicit else None,
            "on_error": self.on_error,
            "when": self.when,
            "outcome": self.outcome,
            "tolerates": tuple(self.tolerates),
            "workspace": self.workspace,
        }
        unknown = sorted(set(changes) - set(options))
        if unknown:
            raise InvalidOptionError(
                f"with_options() of nested node `{self.name}` got unknown option(s) "
                f"{', '.join(unknown)}; it takes the keywords of as_node: {', '.join(options)}."
            )
        options.update(changes)
        return PipelineNode(self.pipeline, **options)


def _map_over_names(map_over: str | Sequence[str] | None) -> tuple[str, ...]:
    if map_over is None:
        return ()
    if isinstance(map_over, str):
        return (map_over,)
    return tuple(map_over)


def _check_input_mapping(node_name: str, pipeline: Pipeline, mapping: dict[str, str]) -> None:
    inner_inputs = pipeline.inputs
    problems = []
    for outer, inner in mapping.items():
        if (problem := wired_name_problem(outer)) is not None:
            problems.append(f"outer name {problem}")
        if inner not in inner_inputs:
            line = (
                f"`{inner}` is not an input of pipeline `{pipeline.name}` "
                f"(mapped from outer `{outer}`); its inputs are: {_names(inner_inputs)}."
            )
            if outer in inner_inputs:
                line += " input_mapping is {outer_name: inner_name}; did you reverse it?"
            problems.append(line)
    doubled = sorted({i for i in mapping.values() if list(mapping.values()).count(i) > 1})
    problems += [
        f"inner input `{i}` is fed by two outer names: "
        f"{_names([o for o, x in mapping.items() if x == i])}."
        for i in doubled
    ]
    _raise_if(node_name, "input_mapping", problems)


def _check_output_mapping(
    node_name: str, pipeline: Pipeline, mapping: dict[str, str] | None
) -> None:
    if mapping is None:
        return
    inner_outputs = pipeline.outputs
    problems = []
    for inner, outer in mapping.items():
        if (problem := member_name_problem(outer)) is not None:
            problems.append(f"outer name {problem}")
        if inner not in inner_outputs:
            line = (
                f"`{inner}` is not an output of pipeline `{pipeline.name}`; "
                f"its outputs are: {_names(inner_outputs)}."
            )
            if outer in inner_outputs:
                line += " output_mapping is {inner_name: outer_name}; did you reverse it?"
            problems.append(line)
    doubled = sorted({o for o in mapping.values() if list(mapping.values()).count(o) > 1})
    problems += [
        f"outer name `{o}` receives two inner outputs: "
        f"{_names([i for i, x in mapping.items() if x == o])}."
        for o in doubled
    ]
    _raise_if(node_name, "output_mapping", problems)


def _check_input_collisions(node_name: str, inputs: tuple[str, ...]) -> None:
    doubled = sorted({n for n in inputs if inputs.count(n) > 1})
    _raise_if(
        node_name,
        "input_mapping",
        [f"outer name `{n}` would feed two inner inputs; map them apart." for n in doubled],
    )


def _check_map_over(
    node_name: str, mapped: tuple[str, ...], inputs: tuple[str, ...], map_mode: str
) -> None:
    problems = [
        f"`{m}` is not an input of node `{node_name}`; its inputs (after input_mapping) are: "
        f"{_names(inputs)}."
        for m in mapped
        if m not in inputs
    ]
    if len(set(mapped)) != len(mapped):
        problems.append(f"map_over repeats a name: {mapped!r}.")
    if map_mode not in MAP_MODES:
        problems.append(f"map_mode must be 'zip' or 'product', got {map_mode!r}.")
    _raise_if(node_name, "map_over", problems)


def _raise_if(node_name: str, what: str, problems: list[str]) -> None:
    if problems:
        raise MappingError(
            f"Invalid {what} for nested node `{node_name}`:\n  " + "\n  ".join(problems)
        )
