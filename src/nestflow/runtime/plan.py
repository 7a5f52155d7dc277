"""ExecutionPlan: compiled once per pipeline structure and requested outputs.

A plan depends only on a pipeline's structure: its name, its members (by identity: nodes are
immutable) and their ids. Pipeline objects of the same structure share their plans, so a
script or notebook cell that builds its pipeline again from the same nodes (with another
cache object, say) does not plan again; pipelines with bound inputs or nested pipelines
keep theirs to themselves (``_shared``). The shared plans
of a structure are kept on its first member (``Shared``), living as long as the nodes do; a
plan's ``pipeline`` is a copy with no configuration, so nothing a run configures (cache,
callbacks, backend) is kept alive by it, and the configuration is always read from the
pipeline a run was asked of.

Selection is minimal and reaches into nested pipelines: walking the nodes in reverse
execution order, a node is kept only when it publishes a name that is still wanted,
and a nested pipeline is asked only for the outputs wanted from it, so its own plan
pulls in only their ancestors.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from nestflow.core.gates import produced
from nestflow.core.nesting import PipelineNode
from nestflow.core.node import SHARED_PLANS, Node
from nestflow.errors import RecursionDepthError, UnknownOutputError

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline

MAX_NESTING_DEPTH = 100
"""The deepest nested level a run may have (the root is depth 0). Compiling a level for a
run (``runtime/step.py``) and running it still recurse once per level, so far deeper
nesting would exhaust the interpreter's recursion limit mid-run."""


class Step:
    """One selected node of a level, with everything a run needs precomputed.

    Plan classes are plain slotted classes, not dataclasses: creating a frozen slotted
    dataclass costs about 0.7 ms at import, which a process pays before its first run.
    """

    __slots__ = ("args", "child", "child_inputs", "child_outputs", "id", "node", "outs")

    def __init__(
        self,
        *,
        id: str,
        node: Node | PipelineNode,
        args: tuple[str, ...],
        outs: tuple[str, ...],
        child: LevelPlan | None = None,
        child_inputs: tuple[tuple[str, str], ...] = (),
        child_outputs: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.id, self.node, self.args, self.outs = id, node, args, outs
        self.child = child
        self.child_inputs = child_inputs
        """(outer name, inner name) pairs fed to the child."""
        self.child_outputs = child_outputs
        """(inner name, outer name) pairs published by the child."""

    def __repr__(self) -> str:
        return f"Step(id={self.id!r}, args={self.args!r}, outs={self.outs!r})"

    @property
    def is_function(self) -> bool:
        """A function node (not a nested pipeline)."""
        return self.child is None

    @property
    def inner(self) -> Pipeline:
        """The pipeline a nested step runs: its settings are the child level's own."""
        assert isinstance(self.node, PipelineNode)
        return self.node.pipeline


class LevelPlan:
    """The selected steps of one pipeline level, in execution order."""

    __slots__ = (
        "function_count", "inputs", "memo", "needs", "nesting", "outputs", "pipeline", "steps",
    )  # fmt: skip

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        steps: tuple[Step, ...],
        outputs: tuple[str, ...],
        inputs: tuple[str, ...],
        needs: dict[str, tuple[tuple[str, ...], ...]],
        function_count: int,
        nesting: int = 0,
    ) -> None:
        self.pipeline = pipeline
        """A pipeline of this structure without configuration (``bare``): read its
        structure (name, nodes, bound inputs), never its settings, which belong to the
        pipeline run."""
        self.steps, self.outputs, self.inputs = steps, outputs, inputs
        self.needs = needs
        """Required external input -> node paths (pipeline names then node id) that need it."""
        self.function_count = function_count
        self.nesting = nesting
        """Levels of nested pipelines below this one, along its deepest chain (0: none)."""
        self.memo: dict[Any, Any] = {}
        """Derived data shared by every run of the plan (never run-time state)."""

    def __repr__(self) -> str:
        return f"LevelPlan(name={self.name!r}, steps={[s.id for s in self.steps]!r})"

    @property
    def name(self) -> str:
        """The pipeline's name."""
        return self.pipeline.name


def plan_for(pipeline: Pipeline, requested: tuple[str, ...] | None = None) -> LevelPlan:
    """The plan computing ``requested`` (``None``: every output), memoised per structure."""
    found = _memoised(pipeline, requested)
    if found is not None:
        return found
    # A level's plan needs the plans of its nested pipelines first. They are compiled with
    # an explicit stack of suspended compilations rather than by recursion, so that the
    # depth of nesting is bounded by memory, not by the interpreter's recursion limit.
    stack = [(pipeline, requested, _compile(pipeline, requested))]
    reply: LevelPlan | None = None
    while stack:
        level, wanted, compiling = stack[-1]
        try:
            child, child_wanted = compiling.send(reply)
        except StopIteration as finished:
            stack.pop()
            if finished.value.nesting > MAX_NESTING_DEPTH:
                raise _too_deep([p for p, _, _ in stack], finished.value) from None
            reply = level.memo[("plan", wanted)] = finished.value
            shared = _shared(level)
            if shared is not None:
                shared.keep((*_structure(level), wanted), reply)
            continue
        reply = _memoised(child, child_wanted)
        if reply is None:
            stack.append((child, child_wanted, _compile(child, child_wanted)))
    assert reply is not None
    return reply


def _memoised(pipeline: Pipeline, requested: tuple[str, ...] | None) -> LevelPlan | None:
    memo = pipeline.memo
    found = memo.get(("plan", requested))
    if found is None:
        shared = _shared(pipeline)
        if shared is not None:
            found = shared.plans.get((*_structure(pipeline), requested))
            if found is not None:
                memo[("plan", requested)] = found
    assert found is None or isinstance(found, LevelPlan)
    return found


class Shared:
    """The plans of the pipeline structures whose first member is one node.

    Kept in the node's ``__dict__`` under ``SHARED_PLANS`` (never pickled, never copied): a
    plan refers to its nodes, so a table outside them would keep them alive for ever, where
    this cycle goes with them. At most ``KEPT`` plans per node; past that, they start over.
    """

    __slots__ = ("plans",)
    KEPT = 16

    def __init__(self) -> None:
        self.plans: dict[tuple[Any, ...], LevelPlan] = {}

    def keep(self, key: tuple[Any, ...], plan: LevelPlan) -> None:
        """Share ``plan`` under ``key``."""
        plans = self.plans
        if len(plans) >= self.KEPT:
            plans.clear()  # one step, safe while another thread plans the same structure
        plans[key] = plan


def _shared(pipeline: Pipeline) -> Shared | None:
    """Where plans of ``pipeline``'s structure are shared; ``None``: not shared.

    A pipeline with bound inputs keeps its plans to itself (values are no part of a
    structure), and so does one with nested pipelines: their plans' steps hold the nested
    pipelines, whose memos hold the settings of the runs that used them, which a plan kept
    as long as its first node must not keep alive. A nested pipeline is mostly wrapped anew
    for each parent anyway (``as_node`` makes a new member), so this shares little less.
    """
    if not pipeline.nodes or pipeline.bound_inputs:
        return None
    if any(type(member) is not Node for member in pipeline.nodes):
        return None
    members = pipeline.nodes[0].__dict__
    found = members.get(SHARED_PLANS)
    if found is None:
        found = members[SHARED_PLANS] = Shared()
    assert isinstance(found, Shared)
    return found


def _structure(pipeline: Pipeline) -> tuple[Any, ...]:
    """What a plan depends on besides the outputs asked for (members compared by identity)."""
    return (pipeline.name, pipeline.nodes, pipeline.node_ids)


def check_outputs(pipeline: Pipeline, requested: tuple[str, ...]) -> None:
    """Raise ``UnknownOutputError`` for names the pipeline does not publish."""
    unknown = [n for n in requested if n not in pipeline.outputs]
    if not unknown:
        return
    lines = []
    for name in unknown:
        if name in pipeline.node_ids:
            outs = pipeline.node(name).outputs
            listed = ", ".join(f"`{o}`" for o in outs)
            lines.append(f"`{name}` is a node id, not an output: node `{name}` publishes {listed}.")
        else:
            lines.append(f"`{name}` is not an output of pipeline `{pipeline.name}`.")
    available = ", ".join(f"`{o}`" for o in pipeline.outputs)
    raise UnknownOutputError("\n".join(lines) + f"\nAvailable outputs: {available}.")


Compiling = Generator[tuple["Pipeline", tuple[str, ...]], "LevelPlan | None", "LevelPlan"]
"""A level's compilation: it yields each nested (pipeline, outputs) it needs a plan for, is
sent that plan back, and returns its own plan."""


def _compile(pipeline: Pipeline, requested: tuple[str, ...] | None) -> Compiling:
    outputs = pipeline.outputs if requested is None else requested
    check_outputs(pipeline, outputs)
    assert pipeline.graph.order is not None
    wanted = set(outputs)
    steps: list[Step] = []
    for index in reversed(pipeline.graph.order):
        member, node_id = pipeline.nodes[index], pipeline.node_ids[index]
        if not wanted.intersection(produced(member)):
            continue
        if isinstance(member, Node):
            step = Step(id=node_id, node=member, args=member.inputs, outs=member.outputs)
        else:
            child_outputs = tuple((i, o) for i, o in member.to_outer.items() if o in wanted)
            child = yield member.pipeline, tuple(i for i, _ in child_outputs)
            assert child is not None
            step = _nested_step(node_id, member, child, child_outputs)
        wanted.update(step.args)
        steps.append(step)
    steps.reverse()
    return _level(pipeline, tuple(steps), tuple(outputs))


def _nested_step(
    node_id: str,
    member: PipelineNode,
    child: LevelPlan,
    child_outputs: tuple[tuple[str, str], ...],
) -> Step:
    to_outer = {inner: outer for outer, inner in member.to_inner.items()}
    child_inputs = tuple((to_outer[i], i) for i in child.inputs)
    # A mapped name is always consumed: it decides how many items there are.
    mapped = tuple(m for m in member.map_over if m not in {o for o, _ in child_inputs})
    child_inputs += tuple((m, member.to_inner[m]) for m in mapped)
    args = tuple(o for o, _ in child_inputs)
    if member.when is not None:
        args += tuple(n for n in member.when.inputs if n not in args)
    return Step(
        id=node_id,
        node=member,
        args=args,
        outs=tuple(o for _, o in child_outputs),
        child=child,
        child_inputs=child_inputs,
        child_outputs=child_outputs,
    )


def _level(pipeline: Pipeline, steps: tuple[Step, ...], outputs: tuple[str, ...]) -> LevelPlan:
    produced = pipeline.graph.producers
    inputs: dict[str, None] = {}
    needs: dict[str, list[tuple[str, ...]]] = {}
    for step in steps:
        for name in step.args:
            if name not in produced:
                inputs[name] = None
        for name, paths in _step_needs(pipeline, step).items():
            if name not in produced and name not in pipeline.bound_inputs:
                needs.setdefault(name, []).extend(paths)
    return LevelPlan(
        pipeline=pipeline.bare(),
        steps=steps,
        outputs=outputs,
        inputs=tuple(inputs),
        needs={name: tuple(paths) for name, paths in needs.items()},
        function_count=sum(1 for s in steps if s.is_function),
        nesting=max((s.child.nesting + 1 for s in steps if s.child is not None), default=0),
    )


def _too_deep(outer: list[Pipeline], plan: LevelPlan) -> RecursionDepthError:
    """The error for ``plan``, nested under the ``outer`` pipelines, being nested too deeply."""
    chain = [p.name for p in outer]
    level: LevelPlan | None = plan
    while level is not None:
        chain.append(level.name)
        deepest = max(
            (s.child for s in level.steps if s.child is not None),
            key=lambda child: child.nesting,
            default=None,
        )
        level = deepest
    shown = chain if len(chain) <= 7 else [*chain[:3], "...", *chain[-3:]]
    return RecursionDepthError(
        f"Pipeline `{chain[0]}` nests pipelines {len(chain) - 1} levels deep "
        f"({' > '.join(shown)}); a run supports nesting down to depth {MAX_NESTING_DEPTH} "
        "(the root is depth 0). Flatten the structure: put the nodes of an inner pipeline "
        "directly in its parent, Pipeline([*inner.nodes, ...]), instead of wrapping "
        "pipelines in pipelines."
    )


def _step_needs(pipeline: Pipeline, step: Step) -> dict[str, list[tuple[str, ...]]]:
    if isinstance(step.node, Node):
        optional = step.node.optional_inputs
        here = (pipeline.name, step.id)
        return {name: [here] for name in step.args if name not in optional}
    assert step.child is not None
    to_outer = {i: o for o, i in step.child_inputs}
    needs = {
        to_outer[inner]: [(pipeline.name, *path) for path in paths]
        for inner, paths in step.child.needs.items()
    }
    for name in step.node.map_over:
        needs.setdefault(name, [(pipeline.name, step.id)])
    if step.node.when is not None:
        for name in step.node.when.inputs:
            needs.setdefault(name, [(pipeline.name, step.id)])
    return needs
