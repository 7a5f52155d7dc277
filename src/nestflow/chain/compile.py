"""Compiling a chain into core pipelines (SPEC 13 and 13.1).

The steps are read in order, one *frame* per open segment. A step becomes its node rewired
with ``with_inputs`` (a pipeline step: ``as_node(input_mapping=...)``) and joins the
innermost frame. A fan-out opens a frame; a gather (``aggregate``, ``custom``, the end of
the chain) closes the innermost one into a nested pipeline ``<step>_each`` used through
``as_node(map_over=...)``, whose outputs the parent sees as lists, element order kept.

Every problem is gathered before ``ChainError`` is raised, so a chain with three wiring
mistakes reports three.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nestflow.chain.custom import Arguments, custom_node, spread_node
from nestflow.chain.replicas import REPLICA, keyed, replicas_node
from nestflow.chain.steps import Step
from nestflow.chain.wiring import Reads, carry_out, carry_param, custom_params, missing, reads_of
from nestflow.core.gates import is_private
from nestflow.core.nesting import PipelineNode
from nestflow.core.node import Node
from nestflow.core.pipeline import Pipeline
from nestflow.errors import ChainError, DefinitionError

Member = Node | PipelineNode


@dataclass(frozen=True, slots=True)
class _Opening:
    """How a segment's nested pipeline is mapped by its parent."""

    name: str
    map_over: tuple[str, ...]
    input_mapping: dict[str, str]


@dataclass(slots=True)
class _Frame:
    """The top level, or one open segment, while the chain is read."""

    names: set[str]
    """What its steps can read by name: chain inputs, bound values, earlier outputs."""
    replica: bool
    """Inside a broadcast segment (at any depth): its function nodes read ``replica``."""
    opening: _Opening | None = None
    members: list[Member] = field(default_factory=list)


class _Compiler:
    """One build of one chain: frames, the previous step's value, and the problems found."""

    def __init__(self, names: set[str], problems: list[str]) -> None:
        self.frames = [_Frame(set(names), replica=False)]
        self.problems = problems
        self.read: set[str] = set()
        self.carry: str | None = None
        """The name holding the previous step's value in the innermost frame."""
        self.custom: tuple[Step, str] | None = None
        """A custom step waiting for the next step's parameters, and its value's name."""

    def compile(self, steps: Sequence[Step]) -> list[Member]:
        for index, made in enumerate(steps):
            following = steps[index + 1] if index + 1 < len(steps) else None
            self._add(made, following, first=index == 0)
        while len(self.frames) > 1:
            self._close()
        return self.frames[0].members

    def _add(self, made: Step, following: Step | None, first: bool) -> None:
        reads = reads_of(made.target)
        mapping, problems = self._wiring(made, reads, first)
        self.problems += problems
        self.read.update(n for n in reads.names if n not in mapping)
        frame = self.frames[-1]
        member = self._member(made, mapping)
        if member is not None:
            frame.members.append(keyed(member) if frame.replica else member)
        frame.names.update(made.outputs)
        out, problems = carry_out(made, following)
        self.problems += problems
        self._then(made, out or (made.outputs or (made.id,))[0], following)

    def _wiring(self, made: Step, reads: Reads, first: bool) -> tuple[dict[str, str], list[str]]:
        """``{name read: name it is fed from}`` for the carry (or the custom arguments)."""
        supplied = self.frames[-1].names
        if first:
            problems = missing(made, reads, supplied)
            if made.input is not None:
                problems.append(
                    f"step({made.id}, input={made.input!r}) is the first step, which has no "
                    "previous value: its parameters are wired by name to the chain's inputs "
                    "and bound values. Drop input=."
                )
            return {}, problems
        if self.custom is not None:
            (custom, source), self.custom = self.custom, None
            return self._arguments(made, reads, custom, source)
        assert self.carry is not None
        carry, problems = carry_param(made, reads, self.carry, supplied)
        return ({carry: self.carry} if carry not in (None, self.carry) else {}), problems

    def _arguments(
        self, made: Step, reads: Reads, custom: Step, source: str
    ) -> tuple[dict[str, str], list[str]]:
        """Wire ``made`` to the custom function of step ``custom`` (applied to the value
        ``source``): its two nodes, and a segment when it fans out."""
        frame = self.frames[-1]
        names, problems = custom_params(made, reads, frame.names, custom.id)
        fan = custom.fan
        if not names or fan is None or fan.fn is None:
            return {}, problems
        defaults = {n: reads.defaults[n] for n in names if n in reads.defaults}
        arguments = Arguments(custom.id, made.id, names, defaults, fan.fan_out)
        called = custom_node(fan.fn, source, arguments)
        frame.members += [keyed(called) if frame.replica else called, spread_node(arguments)]
        if fan.fan_out:
            self._open(_Opening(f"{custom.id}_each", arguments.private, {}), arguments.private)
        else:
            frame.names.update(arguments.private)
        return dict(zip(names, arguments.private, strict=True)), problems

    def _member(self, made: Step, mapping: Mapping[str, str]) -> Member | None:
        try:
            return _rewired(made, mapping)
        except DefinitionError as exc:
            self.problems.append(f"Step `{made.id}`: {exc}")
            return None

    def _then(self, made: Step, out: str, following: Step | None) -> None:
        """Open or close a segment after ``made`` as its transition says."""
        fan = made.fan
        self.carry = out
        if fan is None:
            return
        if following is None and fan.kind != "aggregate":
            self.problems.append(
                f"Step `{made.id}` ends the chain with {fan.shown()}: nothing follows to run "
                f"on what it hands on. Add the steps it feeds after it, or drop {fan.shown()}."
            )
        if fan.kind == "scatter":
            self._open(_Opening(f"{made.id}_each", (out,), {}), ())
        elif fan.kind == "broadcast":
            self._broadcast(made, fan.replicas, out)
        elif fan.kind == "aggregate":
            self._gather(made)
        else:  # custom: gathers the segment it ends; the next step is wired to it
            if len(self.frames) > 1:
                self._close()
            self.custom, self.carry = (made, out), None

    def _broadcast(self, made: Step, replicas: int, out: str) -> None:
        helper = replicas_node(made.id, replicas, out)
        self.frames[-1].members.append(helper)
        opening = _Opening(f"{made.id}_each", (helper.name,), {helper.name: REPLICA})
        self._open(opening, (REPLICA,), replica=True)

    def _gather(self, made: Step) -> None:
        if len(self.frames) > 1:
            self._close()
            return
        self.problems.append(
            f"Step `{made.id}` calls .aggregate(), but no segment is open there: aggregate() "
            "gathers the per-element values of a segment opened by an earlier .scatter(), "
            ".broadcast(n) or .custom(fn, fan_out=True). Drop .aggregate(), or open a "
            "segment before it."
        )

    def _open(self, opening: _Opening, names: Sequence[str], replica: bool = False) -> None:
        parent = self.frames[-1]
        inner = _Frame(parent.names | set(names), parent.replica or replica, opening)
        self.frames.append(inner)

    def _close(self) -> None:
        """Make the innermost segment a mapped nested node of its parent."""
        frame = self.frames.pop()
        parent = self.frames[-1]
        opening = frame.opening
        assert opening is not None
        if self.problems:  # its members may be incomplete: keep reading names only
            parent.names.update(o for m in frame.members for o in m.outputs if not is_private(o))
            return
        each = Pipeline(frame.members, name=opening.name).as_node(
            name=opening.name,
            map_over=list(opening.map_over),
            input_mapping=opening.input_mapping or None,
        )
        parent.members.append(each)
        parent.names.update(each.outputs)


def _rewired(made: Step, mapping: Mapping[str, str]) -> Member:
    """The step's node with ``{name read: source}`` applied."""
    target = made.target
    if isinstance(target, Pipeline):
        renamed = {source: name for name, source in mapping.items()}
        return target.as_node(name=made.id, input_mapping=renamed or None)
    sources = {p: mapping[w] for p, w in target.input_sources.items() if w in mapping}
    return target.with_inputs(sources) if sources else target


def clashes(inputs: Sequence[str], bound: Mapping[str, Any], steps: Sequence[Step]) -> list[str]:
    """Names given twice: an output published by two steps or shadowing an input, a node id
    or segment name used twice."""
    owner = dict.fromkeys(inputs, "a chain input") | dict.fromkeys(bound, "a bound value")
    problems = []
    for made in steps:
        for out in made.outputs:
            if out in owner:
                problems.append(
                    f"`{out}` is published by step `{made.id}` and is also {owner[out]}. Give "
                    f"the step another output name, e.g. step(node(fn, output_name='...'))."
                )
            owner.setdefault(out, f"the output of step `{made.id}`")
    ids = [made.id for made in steps]
    ids += [f"{made.id}_each" for made in steps if made.fan is not None and made.fan.opens]
    problems += [
        f"Two steps would both be named `{i}`; give one of them another: step(..., name='...')."
        for i in sorted({i for i in ids if ids.count(i) > 1})
    ]
    return problems


def build(
    inputs: Sequence[str],
    bound: Mapping[str, Any],
    steps: Sequence[Step],
    name: str | None,
    options: Mapping[str, Any],
) -> Pipeline:
    """The pipeline a chain compiles to; ``ChainError`` listing every problem found."""
    if not steps:
        raise ChainError(
            "Chain.build() needs at least one step; add them with chain << step(fn) << step(...)."
        )
    compiler = _Compiler({*inputs, *bound}, clashes(inputs, bound, steps))
    members = compiler.compile(steps)
    unused = [n for n in (*inputs, *bound) if n not in compiler.read]
    compiler.problems += [
        f"`{n}` is given to the chain but no step reads it; remove it, or check its spelling "
        "against the steps' parameters."
        for n in unused
    ]
    if compiler.problems:
        listed = compiler.problems
        raise ChainError(
            listed[0] if len(listed) == 1 else "The chain has problems:\n  " + "\n  ".join(listed)
        )
    pipeline = Pipeline(members, name=name, **options)
    return pipeline.bind(**bound) if bound else pipeline
