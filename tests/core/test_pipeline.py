"""Pipelines: SPEC section 2 (acceptance A2.1 to A2.9), introspection and immutability."""

from __future__ import annotations

import itertools
import types
from typing import Any

import pytest

from nestflow import (
    UNSET,
    CycleError,
    DefinitionError,
    DependencyError,
    InputError,
    InvalidNameError,
    LocalBackend,
    Node,
    Pipeline,
    PipelineNode,
    node,
)
from nestflow.testing import RecordingCallback


@node(output_name="doubled")
def double(x: int) -> int:
    return 2 * x


@node(output_name="tripled")
def triple(x: int) -> int:
    return 3 * x


@node(output_name="result")
def add(doubled: int, tripled: int) -> int:
    return doubled + tripled


@node(output_name="p")
def make_p(q: int) -> int:
    return q


@node(output_name="q")
def make_q(p: int) -> int:
    return p


def _function_named(name: str, module: str, output_name: str) -> Node:
    """A node wrapping a function called ``name`` defined in its own module ``module``."""
    namespace = types.ModuleType(module)
    exec(f"def {name}(x):\n    return x\n", namespace.__dict__)
    function = namespace.__dict__[name]
    assert function.__module__ == module
    return node(function, output_name=output_name)


# --- A2.1 graph inference -----------------------------------------------------------------------


def test_a2_1_edges_follow_names_and_run_returns_every_output() -> None:
    result = Pipeline(nodes=[double, triple, add]).run(inputs={"x": 3})
    assert result == {"doubled": 6, "tripled": 9, "result": 15}


def test_a2_1_node_order_in_the_list_does_not_change_results() -> None:
    result = Pipeline(nodes=[add, triple, double]).run(inputs={"x": 3})
    assert result == {"doubled": 6, "tripled": 9, "result": 15}


def test_a2_1_unpublished_names_are_the_pipeline_inputs() -> None:
    pipeline = Pipeline([double, triple, add])
    assert pipeline.inputs == ("x",)
    assert pipeline.outputs == ("doubled", "tripled", "result")


# --- A2.2 cycles --------------------------------------------------------------------------------


def test_a2_2_two_node_cycle_raises_cycle_error_from_the_constructor() -> None:
    nodes = [make_p, make_q]  # building the nodes is fine; the pipeline is not
    with pytest.raises(CycleError) as info:
        Pipeline(nodes)
    message = str(info.value)
    assert "->" in message
    assert "make_p" in message
    assert "make_q" in message


def test_a2_2_cycle_error_holds_the_closed_cycle_of_node_ids() -> None:
    with pytest.raises(CycleError) as info:
        Pipeline([make_p, make_q])
    cycle = info.value.cycle
    assert isinstance(cycle, tuple)
    assert cycle[0] == cycle[-1]
    assert len(cycle) == 3
    assert set(cycle) == {"make_p", "make_q"}


def test_a2_2_cycle_is_written_in_the_message_as_an_arrow_path() -> None:
    with pytest.raises(CycleError) as info:
        Pipeline([make_p, make_q])
    assert " -> ".join(info.value.cycle) in str(info.value)


def test_a2_2_cycle_follows_the_direction_data_flows() -> None:
    @node(output_name="b")
    def fb(a: int) -> int:
        return a

    @node(output_name="c")
    def fc(b: int) -> int:
        return b

    @node(output_name="a")
    def fa(c: int) -> int:
        return c

    with pytest.raises(CycleError) as info:
        Pipeline([fa, fb, fc])
    cycle = info.value.cycle
    # fa publishes `a`, consumed by fb; fb publishes `b`, consumed by fc; fc feeds fa.
    successor = {"fa": "fb", "fb": "fc", "fc": "fa"}
    assert all(successor[u] == v for u, v in itertools.pairwise(cycle))
    assert set(cycle) == {"fa", "fb", "fc"}


def test_self_loop_is_a_cycle_of_one_node() -> None:
    @node(output_name="state")
    def step(state: int) -> int:
        return state + 1

    with pytest.raises(CycleError) as info:
        Pipeline([step])
    assert info.value.cycle == ("step", "step")
    assert "step -> step" in str(info.value)


def test_cycle_error_is_a_definition_error_and_value_error() -> None:
    with pytest.raises(DefinitionError):
        Pipeline([make_p, make_q])
    with pytest.raises(ValueError):
        Pipeline([make_p, make_q])


def test_cycle_outside_the_requested_part_still_fails_construction() -> None:
    with pytest.raises(CycleError):
        Pipeline([double, make_p, make_q])


# --- A2.3 duplicate producers -------------------------------------------------------------------


def test_a2_3_duplicate_producer_names_the_output_and_both_nodes() -> None:
    @node(output_name="r")
    def first(x: int) -> int:
        return x

    @node(output_name="r")
    def second(x: int) -> int:
        return x

    with pytest.raises(DependencyError) as info:
        Pipeline([first, second])
    message = str(info.value)
    assert "`r`" in message
    assert "first" in message
    assert "second" in message


def test_a2_3_duplicate_producer_message_hints_at_output_mapping_or_renaming() -> None:
    with pytest.raises(DependencyError) as info:
        Pipeline([double, double.with_name("double_again")])
    message = str(info.value)
    assert "output_mapping" in message
    assert "rename" in message.lower()


def test_a2_3_duplicate_producer_from_a_tuple_output_is_detected() -> None:
    @node(output_name=("low", "doubled"))
    def both(x: int) -> tuple[int, int]:
        return x, x

    with pytest.raises(DependencyError, match="doubled"):
        Pipeline([double, both])


def test_dependency_error_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError):
        Pipeline([double, double.with_name("double_again")])


# --- A2.4 invalid names -------------------------------------------------------------------------


def test_a2_4_node_named_bad_name_raises_invalid_name_error() -> None:
    with pytest.raises(InvalidNameError, match="bad-name"):
        Pipeline([node(double.func, name="bad-name", output_name="doubled")])


def test_a2_4_output_called_class_raises_invalid_name_error() -> None:
    with pytest.raises(InvalidNameError, match="class"):
        Pipeline([node(double.func, output_name="class")])


def test_a2_4_invalid_name_error_states_the_rule() -> None:
    with pytest.raises(InvalidNameError) as info:
        Pipeline([node(double.func, output_name="class")])
    assert "keyword" in str(info.value)


def test_invalid_pipeline_name_raises_invalid_name_error() -> None:
    with pytest.raises(InvalidNameError, match="bad-name"):
        Pipeline([double], name="bad-name")


# --- A2.5 every problem in one message ---------------------------------------------------------


def test_a2_5_cycle_and_duplicate_producer_reported_in_one_message() -> None:
    @node(output_name="q")
    def other_q(x: int) -> int:
        return x

    with pytest.raises(CycleError) as info:
        Pipeline([make_p, make_q, other_q])
    message = str(info.value)
    assert "->" in message
    assert "make_p" in message
    assert "`q`" in message
    assert "other_q" in message
    assert info.value.cycle[0] == info.value.cycle[-1]


def test_a2_5_two_duplicate_producers_reported_in_one_message() -> None:
    @node(output_name=("doubled", "tripled"))
    def both(x: int) -> tuple[int, int]:
        return x, x

    with pytest.raises(DependencyError) as info:
        Pipeline([double, triple, both])
    message = str(info.value)
    assert "doubled" in message
    assert "tripled" in message


# --- A2.6 inputs, required inputs and bind -----------------------------------------------------


@node(output_name="fx")
def fk(x: int, k: int = 1) -> int:
    return x + k


@node(output_name="gx")
def gx(x: int) -> int:
    return x


def test_a2_6_inputs_include_optional_ones_in_order_of_first_use() -> None:
    pipeline = Pipeline([fk, gx])
    assert pipeline.inputs == ("x", "k")
    assert pipeline.required_inputs == ("x",)


def test_a2_6_bind_makes_an_input_optional_on_the_copy_only() -> None:
    pipeline = Pipeline([fk, gx])
    bound = pipeline.bind(x=3)
    assert bound.required_inputs == ()
    assert bound.inputs == ("x", "k")
    assert bound.bound_inputs == {"x": 3}
    assert pipeline.required_inputs == ("x",)
    assert pipeline.bound_inputs == {}


def test_a2_6_run_uses_bound_value_and_run_time_value_wins() -> None:
    bound = Pipeline([fk, gx]).bind(x=3)
    assert bound.run() == {"fx": 4, "gx": 3}
    assert bound.run(x=4) == {"fx": 5, "gx": 4}
    assert bound.bound_inputs == {"x": 3}


def test_a2_6_name_is_optional_only_when_every_consumer_has_a_default() -> None:
    @node(output_name="hx")
    def hk(k: int) -> int:
        return k

    pipeline = Pipeline([fk, hk])
    assert pipeline.inputs == ("x", "k")
    assert pipeline.required_inputs == ("x", "k")


def test_a2_6_optional_input_when_all_consumers_have_defaults() -> None:
    @node(output_name="hx")
    def hk(k: int = 5) -> int:
        return k

    pipeline = Pipeline([fk, hk])
    assert pipeline.required_inputs == ("x",)
    assert pipeline.run(x=1) == {"fx": 2, "hx": 5}


def test_unbind_restores_the_requirement() -> None:
    bound = Pipeline([fk, gx]).bind(x=3, k=2)
    unbound = bound.unbind("x")
    assert unbound.bound_inputs == {"k": 2}
    assert unbound.required_inputs == ("x",)
    assert bound.bound_inputs == {"x": 3, "k": 2}
    assert unbound.run(x=10) == {"fx": 12, "gx": 10}


def test_bind_accumulates_across_calls() -> None:
    bound = Pipeline([fk, gx]).bind(x=3).bind(k=10)
    assert bound.bound_inputs == {"x": 3, "k": 10}
    assert bound.run() == {"fx": 13, "gx": 3}


def test_bind_of_a_published_name_raises_input_error_naming_it() -> None:
    with pytest.raises(InputError, match="doubled"):
        Pipeline([double, triple, add]).bind(doubled=1)


def test_bind_of_an_unknown_name_raises_input_error_listing_inputs() -> None:
    with pytest.raises(InputError) as info:
        Pipeline([fk, gx]).bind(y=1)
    message = str(info.value)
    assert "y" in message
    assert "`x`" in message
    assert "`k`" in message


def test_unbind_of_a_name_that_is_not_bound_raises_naming_it() -> None:
    bound = Pipeline([fk, gx]).bind(k=2)
    with pytest.raises((KeyError, InputError), match="x"):
        bound.unbind("x")


# --- A2.7 (configuration copies; DiskCache is covered in the cache tests) ----------------------


@pytest.mark.parametrize(
    ("method", "aspect", "value"),
    [
        ("with_backend", "backend", LocalBackend(node_execution="threaded")),
        ("with_cache", "cache", None),
        ("with_timeout", "timeout", None),
        ("with_timeout", "timeout", 2.5),
        ("with_retries", "retries", 0),
        ("with_retries", "retries", 3),
    ],
)
def test_a2_7_with_config_returns_a_new_pipeline_and_leaves_original_unset(
    method: str, aspect: str, value: Any
) -> None:
    pipeline = Pipeline([double])
    changed = getattr(pipeline, method)(value)
    assert changed is not pipeline
    assert getattr(changed, aspect) == value
    assert getattr(pipeline, aspect) is UNSET


def test_a2_7_with_callbacks_returns_a_new_pipeline_and_leaves_original_unset() -> None:
    recorder = RecordingCallback()
    pipeline = Pipeline([double])
    changed = pipeline.with_callbacks([recorder])
    assert changed is not pipeline
    assert list(changed.callbacks) == [recorder]
    assert pipeline.callbacks is UNSET
    assert list(pipeline.with_callbacks([]).callbacks) == []


@pytest.mark.parametrize(
    ("method", "value"),
    [
        ("with_backend", LocalBackend()),
        ("with_cache", None),
        ("with_callbacks", []),
        ("with_timeout", 1.0),
        ("with_retries", 2),
    ],
)
def test_a2_7_with_config_accepts_unset_to_return_to_inheritance(method: str, value: Any) -> None:
    explicit = getattr(Pipeline([double]), method)(value)
    inherited = getattr(explicit, method)(UNSET)
    aspect = method.removeprefix("with_")
    assert getattr(inherited, aspect) is UNSET
    assert getattr(explicit, aspect) is not UNSET


def test_a2_7_config_given_to_the_constructor_is_kept_as_given() -> None:
    backend = LocalBackend(node_execution="threaded")
    pipeline = Pipeline([double], backend=backend, cache=None, timeout=3.0, retries=1)
    assert pipeline.backend is backend
    assert pipeline.cache is None
    assert pipeline.timeout == 3.0
    assert pipeline.retries == 1
    assert pipeline.callbacks is UNSET


def test_a2_7_config_copies_keep_the_graph_and_the_name() -> None:
    pipeline = Pipeline([double, triple, add], name="sums")
    changed = pipeline.with_timeout(1.0).with_backend(LocalBackend())
    assert changed.name == "sums"
    assert changed.nodes == pipeline.nodes
    assert changed.run(x=1) == {"doubled": 2, "tripled": 3, "result": 5}


def test_with_name_returns_a_renamed_copy() -> None:
    pipeline = Pipeline([double])
    renamed = pipeline.with_name("doubling")
    assert renamed.name == "doubling"
    assert pipeline.name == "pipeline"


@pytest.mark.parametrize(
    ("method", "value"),
    [
        ("with_timeout", 0),
        ("with_timeout", -1.0),
        ("with_retries", -1),
        ("with_backend", "threads"),
    ],
)
def test_invalid_config_values_are_rejected(method: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        getattr(Pipeline([double]), method)(value)


# --- A2.8 node ids ------------------------------------------------------------------------------


def test_a2_8_implicit_duplicate_ids_are_suffixed_in_order_of_appearance() -> None:
    clean_a = _function_named("clean", "module_a", "cleaned_a")
    clean_b = _function_named("clean", "module_b", "cleaned_b")
    clean_c = _function_named("clean", "module_c", "cleaned_c")
    pipeline = Pipeline([clean_a, clean_b, clean_c])
    assert pipeline.execution_order() == ("clean", "clean_2", "clean_3")
    assert pipeline.run(x=1) == {"cleaned_a": 1, "cleaned_b": 1, "cleaned_c": 1}


def test_a2_8_two_explicit_equal_names_raise_invalid_name_error() -> None:
    first = node(double.func, name="a", output_name="one")
    second = node(triple.func, name="a", output_name="two")
    with pytest.raises(InvalidNameError, match="`a`"):
        Pipeline([first, second])


def test_a2_8_explicit_name_keeps_its_id_and_the_implicit_one_is_suffixed() -> None:
    implicit = _function_named("clean", "module_a", "cleaned_a")
    explicit = node(double.func, name="clean", output_name="doubled")
    pipeline = Pipeline([implicit, explicit])
    order = pipeline.execution_order()
    assert sorted(order) == ["clean", "clean_2"]
    assert pipeline.node("clean") is explicit
    assert pipeline.node("clean_2") is implicit


def test_a2_8_default_pipeline_names_are_deduplicated() -> None:
    pipeline = Pipeline([Pipeline([double]), Pipeline([triple])])
    assert pipeline.execution_order() == ("pipeline", "pipeline_2")


# --- A2.9 plain functions -----------------------------------------------------------------------


def test_a2_9_plain_function_in_nodes_raises_type_error_mentioning_node() -> None:
    def plain(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="@node"):
        Pipeline([double, plain])


def test_a2_9_plain_function_message_names_the_function() -> None:
    def plain(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="plain"):
        Pipeline([plain])


def test_non_callable_in_nodes_raises_type_error() -> None:
    with pytest.raises(TypeError):
        Pipeline([double, 42])


def test_single_node_instead_of_a_list_raises_type_error() -> None:
    with pytest.raises(TypeError):
        Pipeline(double)  # type: ignore[arg-type]


# --- introspection ------------------------------------------------------------------------------


def test_nodes_is_a_tuple_of_the_given_objects() -> None:
    pipeline = Pipeline([double, triple, add])
    assert isinstance(pipeline.nodes, tuple)
    assert pipeline.nodes[0] is double
    assert pipeline.nodes[1] is triple
    assert pipeline.nodes[2] is add


def test_nested_pipeline_is_wrapped_as_pipeline_node() -> None:
    inner = Pipeline([double], name="inner")
    outer = Pipeline([inner, triple])
    assert isinstance(outer.nodes[0], PipelineNode)
    assert outer.nodes[0].pipeline is inner
    assert outer.nodes[1] is triple
    assert outer.execution_order() == ("inner", "triple")


def test_outputs_include_names_exposed_by_nested_pipelines() -> None:
    inner = Pipeline([double], name="inner")
    outer = Pipeline([add, inner, triple])
    assert outer.outputs == ("doubled", "tripled", "result")
    assert outer.inputs == ("x",)


def test_default_name_is_pipeline() -> None:
    assert Pipeline([double]).name == "pipeline"
    assert Pipeline([double], name="doubling").name == "doubling"


def test_default_configuration_is_unset() -> None:
    pipeline = Pipeline([double])
    assert pipeline.backend is UNSET
    assert pipeline.cache is UNSET
    assert pipeline.callbacks is UNSET
    assert pipeline.timeout is UNSET
    assert pipeline.retries is UNSET
    assert pipeline.bound_inputs == {}


def test_execution_order_breaks_ties_by_list_order() -> None:
    @node(output_name="c")
    def consumer(a: int, b: int) -> int:
        return a + b

    @node(output_name="b")
    def pb(x: int) -> int:
        return x

    @node(output_name="a")
    def pa(x: int) -> int:
        return x

    pipeline = Pipeline([consumer, pb, pa])
    assert pipeline.execution_order() == ("pb", "pa", "consumer")
    assert pipeline.outputs == ("b", "a", "c")


def test_execution_order_prefers_earlier_ready_nodes() -> None:
    @node(output_name="z")
    def fz(x: int) -> int:
        return x

    @node(output_name="y")
    def fy(x: int) -> int:
        return x

    @node(output_name="w")
    def fw(z: int) -> int:
        return z

    pipeline = Pipeline([fz, fy, fw])
    assert pipeline.execution_order() == ("fz", "fy", "fw")
    reordered = Pipeline([fy, fw, fz])
    assert reordered.execution_order() == ("fy", "fz", "fw")


def test_execution_order_is_what_a_sequential_run_uses() -> None:
    calls: list[str] = []

    @node(output_name="c")
    def consumer(a: int, b: int) -> int:
        calls.append("consumer")
        return a + b

    @node(output_name="b")
    def pb(x: int) -> int:
        calls.append("pb")
        return x

    @node(output_name="a")
    def pa(x: int) -> int:
        calls.append("pa")
        return x

    pipeline = Pipeline([consumer, pb, pa])
    pipeline.run(x=1)
    assert tuple(calls) == pipeline.execution_order()


def test_inputs_are_listed_in_order_of_first_use() -> None:
    @node(output_name="m")
    def first(beta: int, alpha: int) -> int:
        return beta + alpha

    @node(output_name="n")
    def second(m: int, gamma: int, alpha: int) -> int:
        return m + gamma + alpha

    assert Pipeline([second, first]).inputs == ("beta", "alpha", "gamma")


# --- inputs cannot override outputs -------------------------------------------------------------


def test_run_input_naming_a_published_output_raises_input_error() -> None:
    with pytest.raises(InputError) as info:
        Pipeline([double, triple, add]).run(x=1, doubled=5)
    message = str(info.value)
    assert "`doubled`" in message
    assert "`double`" in message
    assert "cannot also be given as an input" in message


def test_run_input_naming_a_published_output_runs_no_node() -> None:
    calls: list[str] = []

    @node(output_name="doubled")
    def counted(x: int) -> int:
        calls.append("counted")
        return 2 * x

    with pytest.raises(InputError):
        Pipeline([counted, add, triple]).run({"x": 1, "doubled": 5})
    assert calls == []


# --- immutability -------------------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["name", "nodes", "inputs", "backend", "bound_inputs"])
def test_pipeline_attributes_cannot_be_assigned(attribute: str) -> None:
    pipeline = Pipeline([double], name="doubling")
    before = getattr(pipeline, attribute)
    with pytest.raises(AttributeError):
        setattr(pipeline, attribute, "changed")
    assert getattr(pipeline, attribute) == before


def test_running_leaves_the_pipeline_unchanged() -> None:
    pipeline = Pipeline([fk, gx]).bind(x=3)
    pipeline.run(x=4, k=2)
    assert pipeline.bound_inputs == {"x": 3}
    assert pipeline.required_inputs == ()
    assert pipeline.run() == {"fx": 4, "gx": 3}


def test_one_pipeline_can_be_nested_in_two_parents() -> None:
    inner = Pipeline([double], name="inner")
    first = Pipeline([inner, triple], name="first")
    second = Pipeline([inner, add, triple], name="second")
    assert first.run(x=1) == {"doubled": 2, "tripled": 3}
    assert second.run(x=1) == {"doubled": 2, "tripled": 3, "result": 5}
    assert inner.run(x=2) == {"doubled": 4}


def test_adding_callbacks_keeps_the_ones_a_pipeline_sets_itself() -> None:
    from nestflow import PipelineCallback

    class Seen(PipelineCallback):
        def __init__(self) -> None:
            self.ended: list[str] = []

        def on_node_end(self, node_id: str, outputs: Any, duration: float, ctx: Any) -> None:
            self.ended.append(node_id)

    @node(output_name="y")
    def inc(x: int) -> int:
        return x + 1

    own, added, more = Seen(), Seen(), Seen()
    pipeline = Pipeline([inc], callbacks=[own]).with_callbacks([added], add=True)
    pipeline.with_callbacks([more], add=True).run(x=1)
    assert (own.ended, added.ended, more.ended) == (["inc"], ["inc"], ["inc"])
    inherited = Pipeline([Pipeline([inc], name="inner").with_callbacks([added], add=True)])
    inherited.with_callbacks([own]).run(x=1)
    assert (own.ended, added.ended) == (["inc", "inc"], ["inc", "inc"])
