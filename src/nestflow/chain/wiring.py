"""Which value feeds which parameter of a step: the carry rules (SPEC 13, 13.1).

Pure decisions over names, made while a chain is built; nothing here makes a node. A
step's *carry* parameter receives the previous step's value:

1. the parameter named by ``input=``;
2. else a parameter named like the previous output;
3. else the only parameter not supplied by the chain's inputs, bound values, defaults or
   an earlier step's output (by name).

Every other parameter is wired by name. A problem is returned as a sentence that names
what was found and what to write instead; the builder gathers them all before raising.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from nestflow.chain.steps import Step
from nestflow.core.node import Node


@dataclass(frozen=True, slots=True)
class Reads:
    """What a step's target reads, as the chain sees it."""

    names: tuple[str, ...]
    """Every name it reads (a node's parameters as wired, its condition's values)."""
    params: tuple[str, ...]
    """The names a value can be routed to (parameters as wired; a pipeline's inputs)."""
    optional: frozenset[str]
    """Names it may go without: a default, or a pipeline's bound value."""
    defaults: Mapping[str, Any]
    """The defaults the chain can hand on (a node's; a pipeline's stay inside it)."""


def reads_of(target: Node | Any) -> Reads:
    """The ``Reads`` of a ``Node`` or a ``Pipeline``."""
    if isinstance(target, Node):
        params = tuple(dict.fromkeys(target.input_sources.values()))
        optional = target.optional_inputs
        defaults = {name: target.default_for(name)[1] for name in optional}
        return Reads(target.inputs, params, optional, defaults)
    optional = frozenset(target.inputs) - frozenset(target.required_inputs)
    return Reads(target.inputs, target.inputs, optional, {})


def _listed(names: Collection[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) or "(none)"


def _unsupplied(reads: Reads, supplied: Collection[str], carry: str | None) -> list[str]:
    return [n for n in reads.names if n != carry and n not in supplied and n not in reads.optional]


def carry_param(
    step: Step, reads: Reads, previous: str, supplied: Collection[str]
) -> tuple[str | None, list[str]]:
    """The parameter of ``step`` that receives ``previous`` (the name holding the previous
    step's value), by the three rules; and the problems found wiring the step."""
    if step.input is not None:
        if step.input not in reads.params:
            return None, [_no_such_param(step, reads)]
        carry = step.input
    elif previous in reads.params:
        carry = previous
    else:
        candidates = [n for n in _unsupplied(reads, supplied, None) if n in reads.params]
        if len(candidates) != 1:
            return None, [_no_single_carry(step, reads, previous, candidates)]
        carry = candidates[0]
    return carry, missing(step, reads, supplied, carry)


def _no_such_param(step: Step, reads: Reads) -> str:
    return (
        f"step({step.id}, input={step.input!r}): `{step.id}` has no parameter "
        f"`{step.input}`; its parameters are {_listed(reads.params)}."
    )


def _no_single_carry(step: Step, reads: Reads, previous: str, candidates: list[str]) -> str:
    if candidates:
        return (
            f"Step `{step.id}`: which parameter receives the previous value `{previous}`? "
            f"{_listed(candidates)} are all unsupplied (no chain input, bound value, default "
            f"or earlier output provides them). Name it: step({step.id}, "
            f"input='{candidates[0]}')."
        )
    return (
        f"Step `{step.id}` has no parameter to receive the previous value `{previous}`: "
        f"each of its parameters ({_listed(reads.params)}) is supplied by a chain input, a "
        f"bound value, a default or an earlier output, and none is named `{previous}`. Name "
        f"the one that takes it: step({step.id}, input='...')."
    )


def missing(
    step: Step, reads: Reads, supplied: Collection[str], carry: str | None = None
) -> list[str]:
    """Problems for the names ``step`` reads that nothing provides (besides its carry)."""
    return [
        f"Step `{step.id}` needs `{name}`, which no chain input, bound value or earlier "
        f"output provides{_carried(carry)}. Declare it, Chain(..., '{name}'), bind it, "
        f"Chain(..., {name}=...), or add a step that publishes it."
        for name in _unsupplied(reads, supplied, carry)
    ]


def _carried(carry: str | None) -> str:
    return f" (the previous value goes to `{carry}`)" if carry is not None else ""


def custom_params(
    step: Step, reads: Reads, supplied: Collection[str], custom: str
) -> tuple[tuple[str, ...], list[str]]:
    """The parameters of ``step`` fed by the keyword arguments of step ``custom``'s function:
    those nothing supplies by name (with ``input=``, that one too)."""
    taken = [
        n
        for n in reads.params
        if n not in supplied and (n not in reads.optional or n in reads.defaults)
    ]
    problems = []
    if step.input is not None and step.input not in taken:
        if step.input in reads.params:
            taken.append(step.input)
        else:
            problems.append(_no_such_param(step, reads))
    if not taken and not problems:
        problems.append(
            f"Step `{step.id}` follows the custom function of `{custom}`, but every parameter "
            f"of it ({_listed(reads.params)}) is supplied by name, so the keyword arguments "
            f"the function returns have nowhere to go. Name the parameter that takes them: "
            f"step({step.id}, input='...')."
        )
    return tuple(taken), problems + missing(step, reads, [*supplied, *taken])


def carry_out(step: Step, following: Step | None) -> tuple[str | None, list[str]]:
    """The output of ``step`` that is its value for the next step: its only output, or the
    one the next step names with ``input=``."""
    outputs = step.outputs
    custom = step.fan is not None and step.fan.kind == "custom"
    if len(outputs) == 1:
        return outputs[0], []
    if custom:
        problem = (
            f"Step `{step.id}` publishes {_listed(outputs)}, but .custom(fn) hands fn one "
            "value: give it a step of one output (wrap a pipeline in one of its own that "
            "publishes one, with as_node(output_mapping=...))."
        )
        return None, [problem]
    if following is None:
        return None, []
    if following.input in outputs:
        return following.input, []
    if not outputs:
        return None, [f"Step `{step.id}` publishes no output, so no value follows it."]
    problem = (
        f"Step `{step.id}` publishes several outputs ({_listed(outputs)}); the step after it "
        f"must name the one it takes: step({following.id}, input='{outputs[0]}')."
    )
    return None, [problem]
