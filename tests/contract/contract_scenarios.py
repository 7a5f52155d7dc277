"""The contract scenarios: small pipelines every execution path must run alike.

Each scenario is a function building a fresh pipeline in a workspace, registered with the
steps to call and, where the scenario is about something specific, the facts it shows
(``gives`` pins the outputs, ``raises`` the exception). The matrix adds the backend, the
cache and the callbacks to the root; nothing here sets them.

Scenarios are built to be deterministic under every mode: a failing map item is the last
item and a failing node has no independent sibling, so concurrent modes run exactly the
nodes the sequential reference runs. Retry counters live in files, so they count calls made
in worker processes too; flaky nodes sit outside maps, so items never share a counter.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
from contract_kit import (
    Step,
    Workspace,
    add,
    async_add,
    async_fail_on,
    corrupt_value,
    delete_value,
    fail_on,
    flaky,
    gil_holder,
    join,
    mapped,
    note,
    run,
    scale,
    sleepy,
    total,
)

from nestflow import (
    Limits,
    LocalBackend,
    MapInputError,
    Node,
    NodeTimeoutError,
    Pipeline,
    StepLimitError,
    node,
)
from nestflow.core.gates import Condition

cloudpickle.register_pickle_by_value(sys.modules[__name__])

Builder = Callable[[Workspace], Pipeline]


@dataclass(frozen=True)
class Outcome:
    """What one step must give: outputs, or an exception with its nestflow notes."""

    value: Any = None
    error: type[BaseException] | None = None
    message: str | None = None
    notes: tuple[str, ...] | None = ()


@dataclass(frozen=True)
class Scenario:
    """A pipeline builder, the steps to call on it and what they must show."""

    id: str
    doc: str
    build: Builder
    steps: tuple[Step, ...]
    outcomes: tuple[Outcome | None, ...]
    absent: frozenset[str] = frozenset()
    """Nodes that must never run (selection)."""
    attempts: dict[str, int] = field(default_factory=dict)
    """Attempts the report must show per node."""
    statuses: dict[str, str] = field(default_factory=dict)
    """Record status per node in the last step."""
    run_status: str = "ok"
    """The report status of the last step."""
    recomputed: dict[str, int] = field(default_factory=dict)
    """Calls per node in the last step of a cached cell (a producer run again)."""
    async_nodes: frozenset[str] = frozenset()
    """``async def`` nodes: no synchronous driver expected, and free to stay on the loop."""
    local_nodes: frozenset[str] = frozenset()
    """Nodes of a level that sets its own sequential LocalBackend: they always run here."""
    maybe_called: frozenset[str] = frozenset()
    """Nodes stopped by a timeout, which may be stopped before their body starts."""


SCENARIOS: list[Scenario] = []


def gives(value: Any) -> Outcome:
    """The step returns ``value``."""
    return Outcome(value=value)


def raises(error: type[BaseException], message: str, *notes: str) -> Outcome:
    """The step raises ``error`` with ``message`` and these nestflow notes (ids line aside)."""
    return Outcome(error=error, message=message, notes=notes)


def scenario(
    *steps: Step, outcomes: Sequence[Outcome | None] = (), **facts: Any
) -> Callable[[Builder], Builder]:
    """Register the decorated builder as a scenario with ``steps`` and ``facts``."""

    def register(build: Builder) -> Builder:
        given = tuple(outcomes) + (None,) * (len(steps) - len(outcomes))
        doc = (build.__doc__ or "").strip().splitlines()[0]
        SCENARIOS.append(Scenario(build.__name__, doc, build, steps, given, **facts))
        return build

    return register


def by_id(name: str) -> Scenario:
    """The scenario called ``name``."""
    (found,) = [s for s in SCENARIOS if s.id == name]
    return found


def chain(log: str) -> list[Node]:
    """``x -> inc -> a -> double -> b -> shift -> c``."""
    return [
        add(log, "inc", "x", "a", 1),
        scale(log, "double", "a", "b", 2),
        add(log, "shift", "b", "c", 10),
    ]


# --- flat pipelines ----------------------------------------------------------------------------


@scenario(run({"x": 1}), outcomes=[gives({"a": 2, "b": 4, "c": 14})])
def flat_chain(ws: Workspace) -> Pipeline:
    """Three nodes in a line, each feeding the next."""
    return Pipeline(chain(ws.log), name="flat")


@scenario(run({"x": 1}, output_name="c"), outcomes=[gives(14)])
def flat_bare_value(ws: Workspace) -> Pipeline:
    """`output_name="c"` returns the bare value of the last node."""
    return Pipeline(chain(ws.log), name="flat")


@scenario(run({"x": 2}), outcomes=[gives({"l": 3, "r": 6, "m": 306})])
def fan_out_fan_in(ws: Workspace) -> Pipeline:
    """Two branches from one input meet in a node that tells its inputs apart."""
    log = ws.log
    return Pipeline(
        [
            add(log, "left", "x", "l"),
            scale(log, "right", "x", "r", 3),
            join(log, "merge", "l", "r", "m"),
        ],
        name="fan",
    )


@scenario(run({"x": 1}), outcomes=[gives({"a": 2, "b": 4, "c": 5, "d": 405, "e": 406})])
def diamond(ws: Workspace) -> Pipeline:
    """A diamond whose join feeds one more node."""
    log = ws.log
    nodes = [
        add(log, "top", "x", "a"),
        scale(log, "west", "a", "b"),
        add(log, "east", "a", "c", 3),
        join(log, "bottom", "b", "c", "d"),
        add(log, "tail", "d", "e"),
    ]
    return Pipeline(nodes, name="diamond")


def bounds_node(log: str) -> Node:
    """``(low, high)`` of a list: a node with two outputs."""

    @node(output_name=("low", "high"))
    def bounds(values: list[int]) -> tuple[int, int]:
        note(log, "bounds")
        return min(values), max(values)

    return bounds


@scenario(run({"values": [3, 1, 2]}), outcomes=[gives({"low": 1, "high": 3, "spread": 301})])
def tuple_outputs(ws: Workspace) -> Pipeline:
    """A node publishing two names, both consumed by one node."""
    return Pipeline(
        [bounds_node(ws.log), join(ws.log, "spread", "high", "low", "spread")], name="tuple"
    )


@scenario(
    run({"values": [3, 1, 2]}, output_nodes=["low"]),
    outcomes=[gives({"low": 1})],
    absent=frozenset({"spread"}),
)
def tuple_outputs_selected(ws: Workspace) -> Pipeline:
    """Asking for one output of a two-output node runs that node and nothing after it."""
    return Pipeline(
        [bounds_node(ws.log), join(ws.log, "spread", "high", "low", "spread")], name="tuple"
    )


def offset_node(log: str) -> Node:
    """``y = x + k`` with ``k`` defaulting to 5."""

    @node(output_name="y")
    def offset(x: int, k: int = 5) -> int:
        note(log, "offset")
        return x + k

    return offset


@scenario(run({"x": 1}), outcomes=[gives({"y": 6, "z": 12})])
def default_used(ws: Workspace) -> Pipeline:
    """An input left out takes the function's default."""
    return Pipeline([offset_node(ws.log), scale(ws.log, "twice", "y", "z")], name="defaults")


@scenario(run({"x": 1, "k": 7}), outcomes=[gives({"y": 8, "z": 16})])
def default_overridden(ws: Workspace) -> Pipeline:
    """An input given at run time beats the function's default."""
    return Pipeline([offset_node(ws.log), scale(ws.log, "twice", "y", "z")], name="defaults")


@scenario(run({"x": 1}), outcomes=[gives({"y": 4, "z": 8})])
def bound_input(ws: Workspace) -> Pipeline:
    """A value bound on the root pipeline feeds its node."""
    return Pipeline([offset_node(ws.log), scale(ws.log, "twice", "y", "z")], name="bound").bind(k=3)


@scenario(run({"x": 1, "k": 10}), outcomes=[gives({"y": 11, "z": 22})])
def bound_input_overridden(ws: Workspace) -> Pipeline:
    """A value given at run time beats a bound one."""
    return Pipeline([offset_node(ws.log), scale(ws.log, "twice", "y", "z")], name="bound").bind(k=3)


@scenario(run({"x": 1}), outcomes=[gives({"y": 21, "z": 22})])
def bound_in_child(ws: Workspace) -> Pipeline:
    """A value bound on a nested pipeline feeds the nested node."""
    child = Pipeline([offset_node(ws.log)], name="child").bind(k=20)
    return Pipeline([child, add(ws.log, "after", "y", "z")], name="outer")


def s02(log: str) -> list[Node]:
    """``fa(x) -> a``, ``fbx(x) -> bx``, ``fb(a) -> b``."""
    return [
        add(log, "fa", "x", "a"),
        scale(log, "fbx", "x", "bx", 5),
        scale(log, "fb", "a", "b", 10),
    ]


@scenario(run({"x": 1}, output_nodes=["b"]), outcomes=[gives({"b": 20})], absent=frozenset({"fbx"}))
def selection(ws: Workspace) -> Pipeline:
    """`output_nodes=["b"]` runs only the ancestors of `b`."""
    return Pipeline(s02(ws.log), name="select")


@scenario(run({"x": 1}, output_name=["b"]), outcomes=[gives({"b": 20})], absent=frozenset({"fbx"}))
def selection_by_name_list(ws: Workspace) -> Pipeline:
    """`output_name=["b"]` selects like `output_nodes`."""
    return Pipeline(s02(ws.log), name="select")


# --- nesting -----------------------------------------------------------------------------------


@scenario(run({"x": 5}), outcomes=[gives({"doubled": 10, "incremented": 11, "result": 121})])
def nested_two_levels(ws: Workspace) -> Pipeline:
    """A pipeline placed directly in another one exposes its outputs (S07)."""
    log = ws.log

    @node(output_name="result")
    def square(incremented: int) -> int:
        note(log, "square")
        return incremented**2

    inner = Pipeline(
        [scale(log, "double", "x", "doubled"), add(log, "add_one", "doubled", "incremented")],
        name="inner",
    )
    return Pipeline([inner, square], name="outer")


def three_levels(log: str) -> Pipeline:
    """``outer > mid > inner`` with a node at every level."""
    inner = Pipeline([scale(log, "deep", "b", "c", 3)], name="inner")
    mid = Pipeline([add(log, "middle", "a", "b"), inner], name="mid")
    return Pipeline([add(log, "first", "x", "a"), mid, add(log, "last", "c", "d")], name="outer")


@scenario(run({"x": 1}), outcomes=[gives({"a": 2, "b": 3, "c": 9, "d": 10})])
def nested_three_levels(ws: Workspace) -> Pipeline:
    """Three levels, each with its own node, values crossing every boundary."""
    return three_levels(ws.log)


@scenario(run({"doc": 4}), outcomes=[gives({"w": 5, "y": 10})])
def nested_input_mapping(ws: Workspace) -> Pipeline:
    """`input_mapping={outer: inner}` feeds an inner input from a differently named value."""
    inner = Pipeline([add(ws.log, "grow", "v", "w")], name="inner")
    node_ = inner.as_node(input_mapping={"doc": "v"}, name="renamed")
    return Pipeline([node_, scale(ws.log, "twice", "w", "y")], name="outer")


@scenario(run({"x": 1}), outcomes=[gives({"vee": 4})])
def nested_output_mapping(ws: Workspace) -> Pipeline:
    """`output_mapping` publishes only the mapped output; the hidden one is still computed."""
    inner = Pipeline(
        [add(ws.log, "make_u", "x", "u"), scale(ws.log, "make_v", "u", "v")], name="inner"
    )
    return Pipeline([inner.as_node(output_mapping={"v": "vee"})], name="outer")


@scenario(run({"x": 2}), outcomes=[gives({"result_a": 3, "result_b": 6, "combined": 306})])
def nested_twins(ws: Workspace) -> Pipeline:
    """Two nested pipelines publishing the same name, told apart by output_mapping (S11)."""
    log = ws.log
    one = Pipeline([add(log, "plus", "x", "result")], name="one")
    two = Pipeline([scale(log, "times", "x", "result", 3)], name="two")
    return Pipeline(
        [
            one.as_node(output_mapping={"result": "result_a"}),
            two.as_node(output_mapping={"result": "result_b"}),
            join(log, "combine", "result_a", "result_b", "combined"),
        ],
        name="outer",
    )


def uvw(log: str) -> Pipeline:
    """``outer = [inner(u, v), w(u)]`` (S17)."""
    inner = Pipeline([add(log, "make_u", "x", "u"), scale(log, "make_v", "u", "v")], name="inner")
    return Pipeline([inner, scale(log, "make_w", "u", "w", 10)], name="outer")


@scenario(
    run({"x": 1}, output_nodes=["w"]),
    outcomes=[gives({"w": 20})],
    absent=frozenset({"make_v"}),
)
def nested_selection(ws: Workspace) -> Pipeline:
    """Selection reaches into a nested pipeline: the inner node making `v` never runs (S18)."""
    return uvw(ws.log)


@scenario(
    run({"x": 1}, output_nodes=["b"]),
    outcomes=[gives({"b": 3})],
    absent=frozenset({"deep", "last"}),
)
def nested_selection_deep(ws: Workspace) -> Pipeline:
    """A mid-level output is computed without the level below it or the nodes after it."""
    return three_levels(ws.log)


@scenario(
    run({"x": 1}),
    outcomes=[gives({"a": 2, "b": 4, "c": 14})],
    local_nodes=frozenset({"double"}),
)
def explicit_child_backend(ws: Workspace) -> Pipeline:
    """A child that sets `LocalBackend()` itself runs sequentially here, whatever its parent's."""
    log = ws.log
    child = Pipeline([scale(log, "double", "a", "b")], name="child", backend=LocalBackend())
    return Pipeline(
        [add(log, "inc", "x", "a"), child, add(log, "shift", "b", "c", 10)], name="outer"
    )


# --- map_over inside a pipeline ----------------------------------------------------------------


def pair_child(log: str) -> Pipeline:
    """``pair(a, b) = 100 a + b`` then ``+ k``: one item of a two-input map."""
    return Pipeline(
        [join(log, "pair", "a", "b", "p"), join(log, "bias", "p", "k", "q")], name="pairs"
    )


@scenario(
    run({"a": [1, 2], "b": [3, 4], "k": 5}),
    outcomes=[gives({"p": [103, 204], "q": [10305, 20405]})],
)
def map_over_zip(ws: Workspace) -> Pipeline:
    """`map_over=["a", "b"]` zips two lists; `k` is broadcast to every item."""
    return Pipeline([pair_child(ws.log).as_node(map_over=["a", "b"], name="each")], name="outer")


@scenario(
    run({"a": [1, 2], "b": [3, 4, 5], "k": 0}),
    outcomes=[
        gives(
            {"p": [103, 104, 105, 203, 204, 205], "q": [10300, 10400, 10500, 20300, 20400, 20500]}
        )
    ],
)
def map_over_product(ws: Workspace) -> Pipeline:
    """`map_mode="product"` runs every combination, the first name varying slowest."""
    node_ = pair_child(ws.log).as_node(map_over=["a", "b"], map_mode="product", name="grid")
    return Pipeline([node_], name="outer")


@scenario(
    run({"items": [1, 2, 3], "factor": 3}),
    outcomes=[gives({"scaled": [6, 9, 12], "sum": 27})],
)
def map_over_renamed(ws: Workspace) -> Pipeline:
    """A mapped node with both mappings and a broadcast input, consumed as a list."""
    log = ws.log
    child = Pipeline([add(log, "lift", "item", "lifted"), scale_by(log)], name="one")
    every = child.as_node(
        name="every",
        map_over="items",
        input_mapping={"items": "item"},
        output_mapping={"out": "scaled"},
    )
    return Pipeline([every, total(log, "summed", "scaled", "sum")], name="outer")


def scale_by(log: str) -> Node:
    """``out = lifted * factor``."""

    @node(output_name="out")
    def mul(lifted: int, factor: int) -> int:
        note(log, "mul")
        return lifted * factor

    return mul


@scenario(run({"items": [], "factor": 3}), outcomes=[gives({"scaled": [], "sum": 0})])
def map_over_empty(ws: Workspace) -> Pipeline:
    """A mapped node over an empty list publishes empty lists and runs no item."""
    return map_over_renamed(ws)


def double_map(log: str, check: Node | None = None) -> Pipeline:
    """``outer`` maps ``mid`` over ``groups``; ``mid`` maps ``inner`` over ``vs``."""
    nodes: list[Any] = [add(log, "bump", "v", "w")]
    if check is not None:
        nodes.append(check)
    inner = Pipeline(nodes, name="inner")
    mid = Pipeline(
        [inner.as_node(map_over="vs", input_mapping={"vs": "v"}, name="per_v")], name="mid"
    )
    per_group = mid.as_node(map_over="groups", input_mapping={"groups": "vs"}, name="per_group")
    return Pipeline([per_group], name="outer")


@scenario(run({"groups": [[1, 2], [3]]}), outcomes=[gives({"w": [[2, 3], [4]]})])
def map_over_double(ws: Workspace) -> Pipeline:
    """A mapped child inside a mapped child: lists of lists, in item order."""
    return double_map(ws.log)


@scenario(run({"xs": [1, 2]}), outcomes=[gives({"a": [2, 3], "b": [4, 6], "c": [14, 16]})])
def map_over_nested_child(ws: Workspace) -> Pipeline:
    """A mapped child that itself holds a plain nested pipeline."""
    log = ws.log
    leaf = Pipeline([scale(log, "double", "a", "b"), add(log, "shift", "b", "c", 10)], name="leaf")
    child = Pipeline([add(log, "inc", "x", "a"), leaf], name="child")
    return Pipeline([child.as_node(map_over="xs", input_mapping={"xs": "x"})], name="outer")


NOT_A_COLLECTION = (
    "Mapped input `vs` must be a collection of items, got int. To map over a single value, "
    "wrap it in a list: vs=[value]."
)


# --- Pipeline.map at the root ------------------------------------------------------------------


def xyk(log: str) -> Pipeline:
    """``s = 100 x + y`` then ``t = s + k``."""
    return Pipeline(
        [join(log, "xy", "x", "y", "s"), join(log, "plus_k", "s", "k", "t")], name="rows"
    )


@scenario(
    mapped({"x": [1, 2, 3], "y": [4, 5, 6], "k": 7}, map_over=["x", "y"]),
    outcomes=[gives({"s": [104, 205, 306], "t": [10407, 20507, 30607]})],
)
def root_map_zip(ws: Workspace) -> Pipeline:
    """`Pipeline.map` zips two inputs and broadcasts a third."""
    return xyk(ws.log)


@scenario(
    mapped({"x": [1, 2], "y": [4, 5, 6], "k": 0}, map_over=["x", "y"], map_mode="product"),
    outcomes=[
        gives(
            {"s": [104, 105, 106, 204, 205, 206], "t": [10400, 10500, 10600, 20400, 20500, 20600]}
        )
    ],
)
def root_map_product(ws: Workspace) -> Pipeline:
    """`Pipeline.map(map_mode="product")` runs every combination."""
    return xyk(ws.log)


@scenario(mapped({"x": [1, 2, 3]}, map_over="x", output_name="c"), outcomes=[gives([14, 16, 18])])
def root_map_bare_list(ws: Workspace) -> Pipeline:
    """`map(output_name="c")` returns a plain list."""
    return Pipeline(chain(ws.log), name="flat")


@scenario(
    mapped({"x": [1, 2]}, map_over="x", output_nodes=["b"]),
    outcomes=[gives({"b": [20, 30]})],
    absent=frozenset({"fbx"}),
)
def root_map_selection(ws: Workspace) -> Pipeline:
    """A selective map never calls the node it does not need."""
    return Pipeline(s02(ws.log), name="select")


@scenario(
    mapped({"vs": [[1], [2, 3]]}, map_over="vs"),
    outcomes=[gives({"w": [[2], [3, 4]]})],
)
def root_map_over_mapped_node(ws: Workspace) -> Pipeline:
    """`Pipeline.map` over a pipeline whose node maps a child: a double map from the root."""
    inner = Pipeline([add(ws.log, "bump", "v", "w")], name="inner")
    return Pipeline(
        [inner.as_node(map_over="vs", input_mapping={"vs": "v"}, name="per_v")], name="outer"
    )


@scenario(
    mapped({"groups": [[[1]], [2]]}, map_over="groups"),
    outcomes=[Outcome(error=MapInputError, message=NOT_A_COLLECTION, notes=None)],
    run_status="failed",
)
def nested_map_input_error(ws: Workspace) -> Pipeline:
    """A nested map handed a number instead of a list raises MapInputError from its level."""
    return double_map(ws.log)


# --- async nodes -------------------------------------------------------------------------------


@scenario(
    run({"x": 1}),
    outcomes=[gives({"a": 2, "b": 4, "c": 14})],
    async_nodes=frozenset({"inc", "shift"}),
)
def async_chain(ws: Workspace) -> Pipeline:
    """Async and sync nodes alternating in one chain."""
    log = ws.log
    return Pipeline(
        [
            async_add(log, "inc", "x", "a"),
            scale(log, "double", "a", "b"),
            async_add(log, "shift", "b", "c", 10),
        ],
        name="mixed",
    )


@scenario(
    run({"x": 2}),
    outcomes=[gives({"l": 3, "r": 12, "m": 312})],
    async_nodes=frozenset({"left", "right"}),
)
def async_fan_in(ws: Workspace) -> Pipeline:
    """Two independent async nodes joined by a sync node."""
    log = ws.log
    return Pipeline(
        [
            async_add(log, "left", "x", "l"),
            async_add(log, "right", "x", "r", 10),
            join(log, "merge", "l", "r", "m"),
        ],
        name="fan",
    )


@scenario(
    run({"xs": [1, 2, 3]}),
    outcomes=[gives({"a": [2, 3, 4], "b": [4, 6, 8]})],
    async_nodes=frozenset({"inc"}),
)
def async_in_mapped_child(ws: Workspace) -> Pipeline:
    """Async nodes inside a mapped child."""
    log = ws.log
    child = Pipeline(
        [async_add(log, "inc", "x", "a"), scale(log, "double", "a", "b")], name="child"
    )
    return Pipeline([child.as_node(map_over="xs", input_mapping={"xs": "x"})], name="outer")


# --- caching -----------------------------------------------------------------------------------


@scenario(
    run({"x": 1}).cached(hits=0, misses=4),
    run({"x": 1}).cached(hits=4, misses=0),
    outcomes=[gives({"a": 2, "b": 3, "c": 9, "d": 10})] * 2,
)
def cache_warm(ws: Workspace) -> Pipeline:
    """The same run twice: every node at every level hits the second time."""
    return three_levels(ws.log)


@scenario(
    run({"x": 1}).cached(hits=0, misses=3),
    run({"x": 1}, output_name="c").cached(hits=3, misses=0),
    outcomes=[gives({"a": 2, "b": 4, "c": 14}), gives(14)],
)
def cache_warm_bare_value(ws: Workspace) -> Pipeline:
    """A warm run asking for one bare value resolves it from the store."""
    return Pipeline(chain(ws.log), name="flat")


def foo_bar(log: str) -> Pipeline:
    """``foo(a, b) -> foo_out``, ``bar(foo_out, c) -> final`` (SPEC 8.8)."""
    return Pipeline(
        [join(log, "foo", "a", "b", "foo_out"), join(log, "bar", "foo_out", "c", "final")],
        name="foobar",
    )


@scenario(
    run({"a": 1, "b": 2, "c": 3}).cached(hits=0, misses=2),
    run({"a": 1, "b": 2, "c": 4}).cached(hits=1, misses=1),
    outcomes=[gives({"foo_out": 102, "final": 10203}), gives({"foo_out": 102, "final": 10204})],
)
def cache_partly_warm(ws: Workspace) -> Pipeline:
    """Changing only `c` keeps `foo` a hit and makes `bar` run (SPEC 8.8)."""
    return foo_bar(ws.log)


@scenario(
    mapped({"x": [1, 2, 3]}, map_over="x").cached(hits=0, misses=6),
    mapped({"x": [2, 3, 4]}, map_over="x").cached(hits=4, misses=2),
    outcomes=[gives({"a": [2, 3, 4], "b": [4, 6, 8]}), gives({"a": [3, 4, 5], "b": [6, 8, 10]})],
)
def cache_partly_warm_map(ws: Workspace) -> Pipeline:
    """A map over partly new items runs only the new item (A8.3)."""
    return Pipeline([add(ws.log, "inc", "x", "a"), scale(ws.log, "double", "a", "b")], name="items")


@scenario(
    run({"groups": [[1, 2], [3]]}).cached(hits=0, misses=3),
    run({"groups": [[1, 2], [3]]}).reopened().cached(hits=3, misses=0),
    outcomes=[gives({"w": [[2, 3], [4]]})] * 2,
)
def cache_warm_double_map(ws: Workspace) -> Pipeline:
    """A warm double map on a reopened cache resolves every item from the store."""
    return double_map(ws.log)


@scenario(
    run({"x": 1}).cached(hits=0, misses=3),
    run({"x": 1}).after(delete_value("flat > inc")).cached(hits=2, misses=1, warnings=1),
    outcomes=[gives({"a": 2, "b": 4, "c": 14})] * 2,
    recomputed={"inc": 1},
)
def cache_value_deleted(ws: Workspace) -> Pipeline:
    """A deleted stored value is a miss with one warning: its producer runs again."""
    return Pipeline(chain(ws.log), name="flat")


@scenario(
    run({"x": 1}).cached(hits=0, misses=4),
    run({"x": 1})
    .after(corrupt_value("outer > mid > inner > deep"))
    .cached(hits=3, misses=1, warnings=1),
    outcomes=[gives({"a": 2, "b": 3, "c": 9, "d": 10})] * 2,
    recomputed={"deep": 1},
)
def cache_value_corrupt(ws: Workspace) -> Pipeline:
    """A corrupt stored value two levels down is recomputed by running its producer again."""
    return three_levels(ws.log)


@scenario(
    run({"x": 1}).cached(hits=0, misses=1),
    run({"x": 1}).cached(hits=1, misses=0),
    outcomes=[gives({"a": 2, "b": 4})] * 2,
    recomputed={"inc": 1},
)
def cache_off_node(ws: Workspace) -> Pipeline:
    """A `cache=False` node runs every time; its consumer still hits."""
    log = ws.log
    return Pipeline(
        [add(log, "inc", "x", "a", cache=False), scale(log, "double", "a", "b")], name="partial"
    )


# --- retries and timeouts ----------------------------------------------------------------------


@scenario(run({"x": 4}), outcomes=[gives({"y": 40, "z": 41})], attempts={"flaky": 3})
def retry_then_succeed(ws: Workspace) -> Pipeline:
    """A node failing twice succeeds on its third attempt with `retries=2`."""
    log = ws.log
    shaky = flaky(log, "flaky", "x", "y", ws.counter("flaky"), failures=2, retries=2)
    return Pipeline([shaky, add(log, "after", "y", "z")], name="retrying")


@scenario(run({"x": 1}), outcomes=[gives({"y": 10, "z": 11})], attempts={"flaky": 2})
def retry_inherited(ws: Workspace) -> Pipeline:
    """Retries set on a nested pipeline reach its node."""
    log = ws.log
    shaky = flaky(log, "flaky", "x", "y", ws.counter("flaky"), failures=1)
    inner = Pipeline([shaky], name="inner", retries=1)
    return Pipeline([inner, add(log, "after", "y", "z")], name="outer")


@scenario(
    run({"x": 1}),
    outcomes=[
        raises(
            ConnectionError,
            "flaky call 2 failed",
            "nestflow: node retrying > flaky (depth 0)",
        )
    ],
    attempts={"flaky": 2},
    run_status="failed",
    absent=frozenset({"after"}),
)
def retry_exhausted(ws: Workspace) -> Pipeline:
    """A node failing more often than it may retry raises its last error after every attempt."""
    log = ws.log
    shaky = flaky(log, "flaky", "x", "y", ws.counter("flaky"), failures=5, retries=1)
    return Pipeline([shaky, add(log, "after", "y", "z")], name="retrying")


TIMEOUT_MESSAGE = (
    "Node `outer > inner > stall` ran longer than its timeout of 0.2 s (set on node `stall`); "
    "<stopped>. Raise the limit with timeout=..., or set timeout=None on the node to lift it."
)


@scenario(
    run({"x": 1}),
    outcomes=[
        raises(NodeTimeoutError, TIMEOUT_MESSAGE, "nestflow: node outer > inner > stall (depth 1)")
    ],
    run_status="failed",
    statuses={"inc": "executed", "stall": "failed"},
    maybe_called=frozenset({"stall"}),
)
def timeout_nested(ws: Workspace) -> Pipeline:
    """A node sleeping 2 s under `timeout=0.2` one level down raises NodeTimeoutError.

    The 0.2 s include reaching the node's worker: a process worker replaced after an
    earlier timeout may still be starting, so whether the body began is left open.
    """
    log = ws.log
    inner = Pipeline([sleepy(log, "stall", "a", "s", 2.0, timeout=0.2)], name="inner")
    return Pipeline([add(log, "inc", "x", "a"), inner], name="outer")


LATE_MESSAGE = (
    "Node `late > busy` ran longer than its timeout of 0.005 s (set on node `busy`); "
    "<stopped>. Raise the limit with timeout=..., or set timeout=None on the node to lift it."
)


@scenario(
    run({"x": 1}),
    outcomes=[raises(NodeTimeoutError, LATE_MESSAGE, "nestflow: node late > busy (depth 0)")],
    run_status="failed",
    statuses={"inc": "executed", "busy": "failed"},
    maybe_called=frozenset({"busy"}),
)
def timeout_returned_late(ws: Workspace) -> Pipeline:
    """A node that holds the GIL past its timeout fails in every mode: stopped (a worker
    process), abandoned, or returned late with its result discarded."""
    log = ws.log
    return Pipeline(
        [add(log, "inc", "x", "a"), gil_holder(log, "busy", "a", "b", timeout=0.005)],
        name="late",
    )


# --- on_error="continue" -----------------------------------------------------------------------


@scenario(
    run({"x": 1}),
    outcomes=[gives({"a": 2, "b": None, "c": None, "d": 100})],
    statuses={"make_a": "executed", "b": "failed", "c": "skipped", "make_d": "executed"},
    run_status="partial",
    absent=frozenset({"c"}),
)
def continue_node(ws: Workspace) -> Pipeline:
    """A failing `on_error="continue"` node: outputs None, dependants skipped (A7.9)."""
    log = ws.log
    return Pipeline(
        [
            add(log, "make_a", "x", "a"),
            fail_on(log, "b", "a", "b", bad=2, on_error="continue"),
            scale(log, "c", "b", "c"),
            scale(log, "make_d", "x", "d", 100),
        ],
        name="cont",
    )


@scenario(
    run({"x": 1}),
    outcomes=[gives({"u": None, "v": None, "w": None, "d": 100})],
    statuses={"make_u": "executed", "fail_v": "failed", "after": "skipped", "make_d": "executed"},
    run_status="partial",
    absent=frozenset({"after"}),
)
def continue_nested(ws: Workspace) -> Pipeline:
    """`as_node(on_error="continue")`: the nested node's outputs are None, dependants skipped."""
    log = ws.log
    inner = Pipeline(
        [add(log, "make_u", "x", "u"), fail_on(log, "fail_v", "u", "v", bad=2, error=RuntimeError)],
        name="inner",
    )
    return Pipeline(
        [
            inner.as_node(on_error="continue"),
            add(log, "after", "u", "w"),
            scale(log, "make_d", "x", "d", 100),
        ],
        name="outer",
    )


def count_none(log: str) -> Node:
    """``nones = how many items of w are None`` (None when w itself is)."""

    @node(output_name="nones")
    def nones(w: list[int | None]) -> int:
        note(log, "nones")
        return sum(1 for item in w if item is None)

    return nones


@scenario(
    run({"vs": [1, 2, 3]}),
    outcomes=[gives({"w": [1, None, 3], "nones": 1})],
    run_status="partial",
)
def continue_mapped_node(ws: Workspace) -> Pipeline:
    """`on_error="continue"` on a mapped node applies per item (SPEC 5.2): every item runs,
    the failed one gives None at its position, and the consumer runs on the list."""
    log = ws.log
    inner = Pipeline([fail_on(log, "check", "v", "w", bad=2)], name="inner")
    each = inner.as_node(map_over="vs", input_mapping={"vs": "v"}, on_error="continue", name="each")
    return Pipeline([each, count_none(log)], name="outer")


@scenario(
    mapped({"v": [2, 1, 3, 2]}, map_over="v", on_error="continue"),
    outcomes=[gives({"u": [None, 1, 3, None], "w": [None, 2, 4, None]})],
    run_status="partial",
)
def continue_root_map(ws: Workspace) -> Pipeline:
    """`Pipeline.map(..., on_error="continue")`: failed items are None, the others computed."""
    log = ws.log
    return Pipeline(
        [fail_on(log, "check", "v", "u", bad=2), add(log, "after", "u", "w")], name="items"
    )


@scenario(
    run({"groups": [[1, 2], [3]]}),
    outcomes=[gives({"u": [[1, None], [3]], "w": [[2, None], [4]]})],
    run_status="partial",
)
def continue_inner_map_of_a_double_map(ws: Workspace) -> Pipeline:
    """Per-item continue in the inner map of a double map: the outer items both succeed."""
    log = ws.log
    inner = Pipeline(
        [fail_on(log, "check", "v", "u", bad=2), add(log, "bump", "u", "w")], name="inner"
    )
    mid = Pipeline(
        [
            inner.as_node(
                map_over="vs", input_mapping={"vs": "v"}, name="per_v", on_error="continue"
            )
        ],
        name="mid",
    )
    per_group = mid.as_node(map_over="groups", input_mapping={"groups": "vs"}, name="per_group")
    return Pipeline([per_group], name="outer")


# --- conditions and outcomes (when=, outcome=, tolerates=) -------------------------------------


def over_five(value: int) -> bool:
    """The condition of the scenarios below."""
    return value > 5


def failed_status(outcome: dict[str, Any]) -> bool:
    """True when an outcome says its node failed."""
    return bool(outcome["status"] == "failed")


def gated_chain(log: str) -> list[Node]:
    """``x -> make_a -> a -> b (when a > 5) -> c``, and ``make_d`` beside them."""
    return [
        add(log, "make_a", "x", "a"),
        scale(log, "b", "a", "b", when=Condition(over_five, ("a",), "a > 5")),
        scale(log, "c", "b", "c"),
        scale(log, "make_d", "x", "d", 100),
    ]


@scenario(
    run({"x": 1}),
    outcomes=[gives({"a": 2, "b": None, "c": None, "d": 100})],
    statuses={"make_a": "executed", "b": "skipped", "c": "skipped", "make_d": "executed"},
    absent=frozenset({"b", "c"}),
)
def condition_false(ws: Workspace) -> Pipeline:
    """A node whose condition is false is skipped with its consumers; the rest runs."""
    return Pipeline(gated_chain(ws.log), name="gated")


@scenario(
    run({"x": 1}),
    run({"x": 5}),
    outcomes=[
        gives({"a": 2, "b": None, "c": None, "d": 100}),
        gives({"a": 6, "b": 12, "c": 24, "d": 500}),
    ],
    statuses={"make_a": "executed", "b": "executed", "c": "executed", "make_d": "executed"},
)
def condition_true(ws: Workspace) -> Pipeline:
    """The same pipeline runs the node once its condition holds."""
    return Pipeline(gated_chain(ws.log), name="gated")


def pick(log: str) -> Node:
    """``final = w if w is not None else fb``, run even when either producer did not run."""

    def first_present(w: int | None, fb: str | None) -> int | str | None:
        note(log, "final")
        return w if w is not None else fb

    return node(first_present, output_name="final", name="final", tolerates=("w", "fb"))


def fallback(log: str) -> Node:
    """``fb``: the failed node's message, run only when the outcome says it failed."""

    def from_error(outcome: dict[str, Any]) -> str:
        note(log, "fallback")
        return f"fallback after {outcome['error']['type']}: {outcome['error']['message']}"

    return node(
        from_error,
        output_name="fb",
        name="fallback",
        when=Condition(failed_status, ("w_outcome",)),
    ).with_inputs({"outcome": "w_outcome"})


@scenario(
    run({"x": 1}),
    run({"x": 2}),
    outcomes=[
        gives({"w": 1, "fb": None, "final": 1}),
        gives(
            {
                "w": None,
                "fb": "fallback after ValueError: check rejects 2",
                "final": "fallback after ValueError: check rejects 2",
            }
        ),
    ],
    statuses={"check": "failed", "fallback": "executed", "final": "executed"},
    run_status="partial",
)
def outcome_fallback(ws: Workspace) -> Pipeline:
    """A continued failure publishes its outcome; a fallback runs on it, and a tolerant
    node takes whichever value exists."""
    log = ws.log
    return Pipeline(
        [
            fail_on(log, "check", "x", "w", bad=2, on_error="continue", outcome="w_outcome"),
            fallback(log),
            pick(log),
        ],
        name="fallback",
    )


@scenario(
    run({"x": 1, "go": False}),
    run({"x": 1, "go": True}),
    outcomes=[
        gives({"u": None, "v": None, "alt": -1}),
        gives({"u": 2, "v": 4, "alt": None}),
    ],
    statuses={"make_u": "executed", "make_v": "executed", "alt": "skipped"},
)
def condition_nested(ws: Workspace) -> Pipeline:
    """A nested pipeline gated by an input; a node on its outcome runs when it did not."""
    log = ws.log
    inner = Pipeline([add(log, "make_u", "x", "u"), scale(log, "make_v", "u", "v")], name="inner")

    def negated(value: int) -> int:
        note(log, "alt")
        return -value

    def not_ok(outcome: dict[str, Any]) -> bool:
        return bool(outcome["status"] != "ok")

    alt = node(negated, output_name="alt", name="alt", when=Condition(not_ok, ("inner_outcome",)))
    return Pipeline(
        [inner.as_node(when="go", outcome="inner_outcome"), alt.with_inputs({"value": "x"})],
        name="outer",
    )


# --- run guards ---------------------------------------------------------------------------------

STEP_LIMIT_MESSAGE = (
    "The run reached its limit of 2 node executions (max_total_steps): node `limited > shift` "
    "would be execution 3. Raise the limit (Limits(max_total_steps=...), or max_total_steps: "
    "in the workflow's config), or run on fewer items."
)


@scenario(
    run({"x": 1}),
    outcomes=[raises(StepLimitError, STEP_LIMIT_MESSAGE)],
    statuses={"inc": "executed", "double": "executed"},
    absent=frozenset({"shift"}),
    run_status="failed",
)
def step_limit_chain(ws: Workspace) -> Pipeline:
    """The execution that would pass max_total_steps is not started, in every driver."""
    return Pipeline(chain(ws.log), name="limited", limits=Limits(max_total_steps=2))


@scenario(
    run({"x": 1}),
    outcomes=[gives({"a": 2, "b": 4, "c": 14})],
)
def step_limit_not_reached(ws: Workspace) -> Pipeline:
    """A run within its limit is counted and otherwise unchanged."""
    return Pipeline(chain(ws.log), name="limited", limits=Limits(max_total_steps=3))


# --- failures ----------------------------------------------------------------------------------


@scenario(
    run({"x": 1}),
    outcomes=[raises(ValueError, "check rejects 4", "nestflow: node flat > check (depth 0)")],
    run_status="failed",
)
def failure_flat(ws: Workspace) -> Pipeline:
    """A failing last node raises the user's own exception with the node's path."""
    log = ws.log
    return Pipeline(
        [
            add(log, "inc", "x", "a"),
            scale(log, "double", "a", "b"),
            fail_on(log, "check", "b", "c", bad=4),
        ],
        name="flat",
    )


@scenario(
    run({"vs": [1, 3]}),
    outcomes=[
        raises(
            ValueError,
            "check rejects 4",
            "nestflow: node outer > mid > inner > check (depth 2)",
            "nestflow: map item 1 of 2",
        )
    ],
    run_status="failed",
)
def failure_in_nested_map(ws: Workspace) -> Pipeline:
    """A ValueError two levels down inside a mapped child names path, depth and item.

    Two items, so that a pool of two workers (processes, dask) starts both at once and
    every mode runs the same items before the failure ends the map.
    """
    log = ws.log
    inner = Pipeline(
        [add(log, "inc", "v", "a"), fail_on(log, "check", "a", "b", bad=4)], name="inner"
    )
    mid = Pipeline([inner], name="mid")
    return Pipeline([mid.as_node(map_over="vs", input_mapping={"vs": "v"})], name="outer")


@scenario(
    run({"vs": [3]}),
    outcomes=[
        raises(
            ValueError,
            "check rejects 4",
            "nestflow: node outer > mid > inner > check (depth 2)",
            "nestflow: map item 0 of 1",
        )
    ],
    run_status="failed",
)
def failure_in_one_item_map(ws: Workspace) -> Pipeline:
    """The same failure in a map of one item: no other item can race it, on any scheduler."""
    return failure_in_nested_map(ws)


@scenario(
    run({"groups": [[1, 5], [2, 3]]}),
    outcomes=[
        raises(
            ValueError,
            "check rejects 4",
            "nestflow: node outer > per_group > per_v > check (depth 2)",
            "nestflow: map item 1 of 2 (item path 1 > 1)",
        )
    ],
    run_status="failed",
)
def failure_in_double_map(ws: Workspace) -> Pipeline:
    """A failure in the last inner item of the last outer item gives the whole item path."""
    return double_map(ws.log, check=fail_on(ws.log, "check", "w", "ok", bad=4))


@scenario(
    mapped({"x": [5, 6, 1]}, map_over="x"),
    outcomes=[
        raises(
            ValueError,
            "check rejects 4",
            "nestflow: node flat > check (depth 0)",
            "nestflow: map item 2 of 3",
        )
    ],
    run_status="failed",
)
def failure_in_root_map(ws: Workspace) -> Pipeline:
    """A root map whose last item fails raises that item's exception with its index."""
    log = ws.log
    return Pipeline(
        [scale(log, "double", "x", "a", 4), fail_on(log, "check", "a", "b", bad=4)], name="flat"
    )


@scenario(
    run({"x": 1}),
    outcomes=[
        raises(ValueError, "check rejects 2", "nestflow: node outer > inner > check (depth 1)")
    ],
    run_status="failed",
    async_nodes=frozenset({"check"}),
)
def failure_in_async_node(ws: Workspace) -> Pipeline:
    """An async node failing one level down keeps its exception and its path."""
    log = ws.log
    inner = Pipeline([async_fail_on(log, "check", "a", "b", bad=2)], name="inner")
    return Pipeline([add(log, "inc", "x", "a"), inner], name="outer")
