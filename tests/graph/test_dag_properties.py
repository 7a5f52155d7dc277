"""Property tests of graph analysis: orders respect edges, cycles are cycles, selection is minimal.

Graphs are generated as lists of nodes with generated identifier names. Node ``k`` publishes
one output and consumes outputs of other nodes (and, in the acyclic case, external inputs).
Checks run both on ``nestflow.graph.dag.analyse`` over plain shapes and through ``Pipeline``.
"""

from __future__ import annotations

import graphlib
import inspect
import itertools
import keyword
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nestflow import CycleError, Node, Pipeline, node
from nestflow.graph.dag import Shape, analyse

SETTINGS = settings(max_examples=60, deadline=None, database=None)

identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True).filter(
    lambda name: not keyword.iskeyword(name)
)


@dataclass(frozen=True)
class Spec:
    """A generated graph: node ``k`` is ``ids[k]``, publishes ``outs[k]``, consumes ``deps[k]``."""

    ids: tuple[str, ...]
    outs: tuple[str, ...]
    deps: tuple[tuple[int, ...], ...]
    externals: tuple[tuple[str, ...], ...]

    def inputs_of(self, k: int) -> tuple[str, ...]:
        return tuple(self.outs[d] for d in self.deps[k]) + self.externals[k]

    def shapes(self) -> list[Shape]:
        return [Shape(self.ids[k], self.inputs_of(k), (self.outs[k],)) for k in range(self.size)]

    @property
    def size(self) -> int:
        return len(self.ids)

    def edges(self) -> set[tuple[int, int]]:
        """(producer, consumer) index pairs."""
        return {(d, k) for k in range(self.size) for d in self.deps[k]}


@st.composite
def graphs(draw: st.DrawFn, *, acyclic: bool, max_nodes: int = 8) -> Spec:
    size = draw(st.integers(1, max_nodes))
    names = draw(st.lists(identifiers, min_size=2 * size + 3, max_size=2 * size + 3, unique=True))
    ids, outs, pool = names[:size], names[size : 2 * size], names[2 * size :]
    # In the acyclic case node k only consumes from earlier "ranks"; a random permutation of
    # the list then hides that rank order from the implementation.
    rank = draw(st.permutations(range(size)))
    deps = []
    for k in range(size):
        allowed = [j for j in range(size) if rank[j] < rank[k]] if acyclic else list(range(size))
        chosen = draw(st.lists(st.sampled_from(allowed), unique=True)) if allowed else []
        deps.append(tuple(chosen))
    externals = tuple(
        tuple(draw(st.lists(st.sampled_from(pool), unique=True, max_size=2))) if acyclic else ()
        for _ in range(size)
    )
    return Spec(tuple(ids), tuple(outs), tuple(deps), externals)


@st.composite
def cyclic_graphs(draw: st.DrawFn) -> Spec:
    """A random graph with at least one cycle planted in it."""
    spec = draw(graphs(acyclic=False))
    loop = draw(st.lists(st.integers(0, spec.size - 1), min_size=1, unique=True))
    deps = [set(d) for d in spec.deps]
    for producer, consumer in zip(loop, [*loop[1:], loop[0]], strict=True):
        deps[consumer].add(producer)
    return Spec(spec.ids, spec.outs, tuple(tuple(sorted(d)) for d in deps), spec.externals)


def has_cycle(spec: Spec) -> bool:
    """Reference answer from the standard library."""
    sorter = graphlib.TopologicalSorter({k: spec.deps[k] for k in range(spec.size)})
    try:
        sorter.prepare()
    except graphlib.CycleError:
        return True
    return False


def reference_ancestors(spec: Spec, target: int) -> set[int]:
    seen, stack = set(), [target]
    while stack:
        k = stack.pop()
        if k not in seen:
            seen.add(k)
            stack.extend(spec.deps[k])
    return seen


def reference_values(spec: Spec, inputs: dict[str, int]) -> dict[str, int]:
    """What every output should be: 1 + the sum of the node's inputs."""
    values = dict(inputs)
    done: set[int] = set()
    while len(done) < spec.size:
        for k in range(spec.size):
            if k not in done and all(d in done for d in spec.deps[k]):
                values[spec.outs[k]] = 1 + sum(values[n] for n in spec.inputs_of(k))
                done.add(k)
    return {spec.outs[k]: values[spec.outs[k]] for k in range(spec.size)}


def assert_is_a_cycle(spec: Spec, cycle: tuple[int, ...]) -> None:
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1, "a cycle visits each node once"
    for producer, consumer in itertools.pairwise(cycle):
        assert (producer, consumer) in spec.edges()


class Recorded:
    """A callable whose parameters are generated names; appends its node id to ``calls``."""

    def __init__(self, node_id: str, params: tuple[str, ...], calls: list[str]) -> None:
        self.node_id = node_id
        self.calls = calls
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        self.__signature__ = inspect.Signature([inspect.Parameter(p, kind) for p in params])

    def __call__(self, *args: int) -> int:
        self.calls.append(self.node_id)
        return 1 + sum(args)


def build(spec: Spec, calls: list[str]) -> Pipeline:
    nodes: list[Node] = [
        node(
            Recorded(spec.ids[k], spec.inputs_of(k), calls),
            name=spec.ids[k],
            output_name=spec.outs[k],
        )
        for k in range(spec.size)
    ]
    return Pipeline(nodes)


def external_values(names: set[str]) -> dict[str, Any]:
    return {name: len(name) for name in sorted(names)}


# --- topological order --------------------------------------------------------------------------


@SETTINGS
@given(graphs(acyclic=True))
def test_topological_order_respects_every_edge(spec: Spec) -> None:
    graph = analyse(spec.shapes())
    assert graph.order is not None
    assert sorted(graph.order) == list(range(spec.size))
    position = {k: i for i, k in enumerate(graph.order)}
    for producer, consumer in spec.edges():
        assert position[producer] < position[consumer]
    assert graph.cycle == ()


@SETTINGS
@given(graphs(acyclic=True))
def test_topological_order_breaks_ties_by_list_order(spec: Spec) -> None:
    graph = analyse(spec.shapes())
    assert graph.order is not None
    done: set[int] = set()
    for chosen in graph.order:
        ready = [k for k in range(spec.size) if k not in done and set(spec.deps[k]) <= done]
        assert chosen == min(ready)
        done.add(chosen)


@SETTINGS
@given(graphs(acyclic=True))
def test_pipeline_execution_order_respects_every_edge_and_is_the_run_order(spec: Spec) -> None:
    calls: list[str] = []
    pipeline = build(spec, calls)
    order = pipeline.execution_order()
    position = {node_id: i for i, node_id in enumerate(order)}
    for producer, consumer in spec.edges():
        assert position[spec.ids[producer]] < position[spec.ids[consumer]]
    needed = {name for names in spec.externals for name in names}
    result = pipeline.run(external_values(needed))
    assert tuple(calls) == order
    assert result == reference_values(spec, external_values(needed))


# --- selection ----------------------------------------------------------------------------------


@SETTINGS
@given(graphs(acyclic=True), st.data())
def test_selection_runs_exactly_the_ancestors_of_the_requested_output(
    spec: Spec, data: Any
) -> None:
    target = data.draw(st.integers(0, spec.size - 1))
    selected = reference_ancestors(spec, target)
    # Only the inputs of selected nodes are given: the others must not be required.
    needed = {name for k in selected for name in spec.externals[k]}
    calls: list[str] = []
    result = build(spec, calls).run(external_values(needed), output_nodes=[spec.outs[target]])
    assert sorted(calls) == sorted(spec.ids[k] for k in selected)
    expected = reference_values(spec, external_values(set().union(*spec.externals)))
    assert result == {spec.outs[target]: expected[spec.outs[target]]}


@SETTINGS
@given(graphs(acyclic=True), st.data())
def test_selection_of_several_outputs_runs_the_union_of_their_ancestors(
    spec: Spec, data: Any
) -> None:
    targets = data.draw(st.lists(st.integers(0, spec.size - 1), min_size=1, unique=True))
    selected = set().union(*(reference_ancestors(spec, t) for t in targets))
    needed = {name for k in selected for name in spec.externals[k]}
    calls: list[str] = []
    wanted = [spec.outs[t] for t in targets]
    result = build(spec, calls).run(external_values(needed), output_nodes=wanted)
    assert sorted(calls) == sorted(spec.ids[k] for k in selected)
    assert set(result) == set(wanted)


# --- cycles -------------------------------------------------------------------------------------


@SETTINGS
@given(graphs(acyclic=False))
def test_order_exists_exactly_when_the_graph_has_no_cycle(spec: Spec) -> None:
    graph = analyse(spec.shapes())
    assert (graph.order is None) == has_cycle(spec)
    assert bool(graph.cycle) == has_cycle(spec)


@SETTINGS
@given(cyclic_graphs())
def test_reported_cycle_is_a_real_cycle(spec: Spec) -> None:
    graph = analyse(spec.shapes())
    assert graph.order is None
    assert_is_a_cycle(spec, graph.cycle)


@SETTINGS
@given(cyclic_graphs())
def test_pipeline_cycle_error_names_a_real_cycle_of_node_ids(spec: Spec) -> None:
    with pytest.raises(CycleError) as info:
        build(spec, [])
    cycle = info.value.cycle
    index = {node_id: k for k, node_id in enumerate(spec.ids)}
    assert all(node_id in index for node_id in cycle)
    assert_is_a_cycle(spec, tuple(index[node_id] for node_id in cycle))
    assert " -> ".join(cycle) in str(info.value)
