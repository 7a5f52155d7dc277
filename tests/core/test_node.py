"""Nodes: SPEC section 1 (acceptance A1.1 to A1.9) and the node rules."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

import nestflow
from nestflow import (
    UNSET,
    DefinitionError,
    InvalidNameError,
    InvalidNodeError,
    Node,
    NodeOutputError,
    Pipeline,
    capture,
    node,
)
from nestflow.testing import RecordingCallback

# --- the forms of SPEC section 1 ---------------------------------------------------------------


@node(output_name="cleaned")
def normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


@node
def tokens(cleaned: str) -> list[str]:
    return [t for t in cleaned.split(" ") if t]


@node(output_name=("low", "high"))
def bounds(values: list[float], margin: float = 0.0) -> tuple[float, float]:
    return min(values) - margin, max(values) + margin


@node(output_name="r")
def f(x: int) -> int:
    return x + 1


# --- A1.1 decorated function, direct calls ------------------------------------------------------


def test_a1_1_decorated_function_exposes_inputs_outputs_and_name() -> None:
    assert isinstance(f, Node)
    assert f.inputs == ("x",)
    assert f.outputs == ("r",)
    assert f.name == "f"


def test_a1_1_direct_call_returns_the_function_result() -> None:
    assert f(2) == 3
    assert f(x=2) == 3


def test_a1_1_direct_call_fires_no_callback_and_leaves_no_report(
    recorder: RecordingCallback,
) -> None:
    Pipeline([f], callbacks=[recorder])
    with capture() as cap:
        assert f(2) == 3
    assert recorder.events == []
    assert cap.reports == []


def test_a1_1_direct_call_returns_exactly_the_returned_object() -> None:
    returned = {"a": [1, 2]}

    @node(output_name="same")
    def identity(value: Any) -> Any:
        return value

    assert identity(returned) is returned


def test_a1_1_direct_call_does_no_output_validation() -> None:
    @node(output_name=("low", "high"))
    def single(x: int) -> int:
        return x

    # A run would raise NodeOutputError; a direct call is the plain function.
    assert single(5) == 5


def test_a1_1_direct_call_forwards_arguments_unchanged() -> None:
    @node(output_name="parts")
    def parts(a: int, b: int = 10, *, c: int = 100) -> tuple[int, int, int]:
        return a, b, c

    assert parts(1) == (1, 10, 100)
    assert parts(1, 2, c=3) == (1, 2, 3)
    with pytest.raises(TypeError):
        parts()


# --- A1.2 bare decorator ------------------------------------------------------------------------


def test_a1_2_bare_decorator_uses_function_name_for_name_and_output() -> None:
    assert tokens.name == "tokens"
    assert tokens.outputs == ("tokens",)
    assert tokens.output_name == "tokens"
    assert tokens.inputs == ("cleaned",)


def test_a1_2_bare_node_publishes_under_function_name_in_a_run() -> None:
    result = Pipeline([normalise, tokens]).run(text="  Hello   World ")
    assert result == {"cleaned": "hello world", "tokens": ["hello", "world"]}


# --- A1.3 tuple outputs -------------------------------------------------------------------------


def test_a1_3_tuple_output_node_publishes_each_value_under_its_name() -> None:
    @node(output_name=("low", "high"))
    def pair(x: int) -> tuple[int, int]:
        return 1, 5

    assert pair.outputs == ("low", "high")
    assert Pipeline([pair]).run(x=0) == {"low": 1, "high": 5}


def test_a1_3_tuple_output_node_may_return_a_list_of_the_right_length() -> None:
    @node(output_name=("low", "high"))
    def pair(x: int) -> list[int]:
        return [x, x + 4]

    assert Pipeline([pair]).run(x=1) == {"low": 1, "high": 5}


def test_a1_3_three_values_for_two_outputs_raise_node_output_error() -> None:
    @node(output_name=("low", "high"))
    def triple(x: int) -> tuple[int, int, int]:
        return 1, 5, 9

    with pytest.raises(NodeOutputError) as info:
        Pipeline([triple]).run(x=0)
    message = str(info.value)
    assert "low" in message
    assert "high" in message
    assert "3" in message
    assert "triple" in message


def test_a1_3_node_output_error_is_a_type_error() -> None:
    @node(output_name=("low", "high"))
    def triple(x: int) -> tuple[int, int, int]:
        return 1, 5, 9

    with pytest.raises(TypeError):
        Pipeline([triple]).run(x=0)


def test_tuple_output_node_returning_a_non_sequence_raises_node_output_error() -> None:
    @node(output_name=("low", "high"))
    def scalar(x: int) -> int:
        return 7

    with pytest.raises(NodeOutputError) as info:
        Pipeline([scalar]).run(x=0)
    message = str(info.value)
    assert "scalar" in message
    assert "low" in message
    assert "high" in message
    assert "int" in message


def test_tuple_output_error_runs_no_downstream_node() -> None:
    calls: list[str] = []

    @node(output_name=("low", "high"))
    def scalar(x: int) -> int:
        return 7

    @node(output_name="width")
    def width(low: int, high: int) -> int:
        calls.append("width")
        return high - low

    with pytest.raises(NodeOutputError):
        Pipeline([scalar, width]).run(x=0)
    assert calls == []


def test_output_name_keeps_the_tuple_as_given_and_outputs_is_always_a_tuple() -> None:
    assert bounds.output_name == ("low", "high")
    assert bounds.outputs == ("low", "high")
    assert normalise.output_name == "cleaned"
    assert normalise.outputs == ("cleaned",)


# --- A1.4 defaults --------------------------------------------------------------------------


def test_a1_4_parameter_with_default_is_optional_and_default_is_used() -> None:
    assert bounds.defaults == {"margin": 0.0}
    result = Pipeline([bounds]).run(values=[1.0, 5.0])
    assert result == {"low": 1.0, "high": 5.0}


def test_a1_4_supplied_value_overrides_the_default() -> None:
    result = Pipeline([bounds]).run(values=[1.0, 5.0], margin=1.0)
    assert result == {"low": 0.0, "high": 6.0}


def test_a1_4_defaulted_parameter_is_an_input_but_not_required() -> None:
    pipeline = Pipeline([bounds])
    assert pipeline.inputs == ("values", "margin")
    assert pipeline.required_inputs == ("values",)


# --- A1.5 variadic parameters -------------------------------------------------------------------


def test_a1_5_var_positional_parameter_is_rejected_at_decoration() -> None:
    def spread(*args: int) -> int:
        return sum(args)

    with pytest.raises(InvalidNodeError, match="args"):
        node(spread, output_name="total")


def test_a1_5_var_keyword_parameter_is_rejected_at_decoration() -> None:
    def options(**kw: int) -> int:
        return len(kw)

    with pytest.raises(InvalidNodeError, match="kw"):
        node(options, output_name="count")


def test_a1_5_decorator_form_rejects_variadics_too() -> None:
    with pytest.raises(InvalidNodeError):

        @node(output_name="mixed")
        def mixed(a: int, *rest: int, **extra: int) -> int:
            return a


# --- A1.6 lambdas and names ---------------------------------------------------------------------


def test_a1_6_lambda_without_name_raises_invalid_name_error_mentioning_name() -> None:
    with pytest.raises(InvalidNameError, match="name="):
        node(lambda x: x)


def test_a1_6_lambda_with_name_but_no_output_name_raises_invalid_name_error() -> None:
    with pytest.raises(InvalidNameError, match="output_name="):
        node(lambda x: x, name="first")


def test_a1_6_lambda_with_name_and_output_name_is_a_node() -> None:
    first = node(lambda xs: xs[0], output_name="first", name="first")
    assert first.name == "first"
    assert first.inputs == ("xs",)
    assert first.outputs == ("first",)
    assert Pipeline([first]).run(xs=[4, 5]) == {"first": 4}


@pytest.mark.parametrize("bad", ["bad-name", "class", "__dunder", "1st", ""])
def test_invalid_node_name_raises_invalid_name_error_naming_it(bad: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        node(f.func, name=bad, output_name="r")
    if bad:
        assert bad in str(info.value)


@pytest.mark.parametrize("bad", ["bad-name", "class", "__dunder", "1st"])
def test_invalid_output_name_raises_invalid_name_error_naming_it(bad: str) -> None:
    with pytest.raises(InvalidNameError, match=bad):
        node(f.func, output_name=bad)


def test_invalid_name_in_tuple_output_raises_invalid_name_error() -> None:
    with pytest.raises(InvalidNameError, match="for"):
        node(bounds.func, output_name=("low", "for"))


def test_invalid_name_error_states_the_naming_rule() -> None:
    with pytest.raises(InvalidNameError) as info:
        node(f.func, name="bad-name", output_name="r")
    assert "identifier" in str(info.value)


def test_invalid_name_error_is_a_definition_error_and_value_error() -> None:
    with pytest.raises(DefinitionError):
        node(lambda x: x)
    with pytest.raises(ValueError):
        node(lambda x: x)


# --- A1.7 async nodes ---------------------------------------------------------------------------


@node(output_name="page")
async def fetch(url: str) -> str:
    return f"<{url}>"


@node(output_name="size")
def measure(page: str) -> int:
    if inspect.isawaitable(page):
        raise AssertionError("a downstream node received an awaitable, not the value")
    return len(page)


def test_a1_7_async_node_is_marked_async() -> None:
    assert fetch.is_async is True
    assert normalise.is_async is False


def test_a1_7_async_node_called_directly_returns_a_coroutine() -> None:
    result = fetch("a")
    assert inspect.iscoroutine(result)
    assert asyncio.run(result) == "<a>"


def test_a1_7_downstream_node_receives_the_awaited_value() -> None:
    result = Pipeline([fetch, measure]).run(url="abc")
    assert result == {"page": "<abc>", "size": 5}


def test_a1_7_async_node_output_is_the_awaited_value() -> None:
    value = Pipeline([fetch]).run(url="x", output_name="page")
    assert value == "<x>"


def test_a1_7_async_callable_object_is_marked_async_and_awaited() -> None:
    class Fetcher:
        async def __call__(self, url: str) -> str:
            return url.upper()

    loud = node(Fetcher(), name="loud", output_name="page")
    assert loud.is_async is True
    assert Pipeline([loud, measure]).run(url="ab") == {"page": "AB", "size": 2}


# --- A1.8 with_options --------------------------------------------------------------------------


def test_a1_8_with_options_returns_a_new_node_and_keeps_the_original() -> None:
    uncached = normalise.with_options(cache=False)
    assert uncached is not normalise
    assert uncached.cache is False
    assert normalise.cache is True


def test_a1_8_with_options_keeps_the_other_attributes() -> None:
    changed = bounds.with_options(timeout=3.0, retries=2, on_error="continue")
    assert changed.func is bounds.func
    assert changed.name == "bounds"
    assert changed.inputs == bounds.inputs
    assert changed.outputs == bounds.outputs
    assert changed.defaults == bounds.defaults
    assert (changed.timeout, changed.retries, changed.on_error) == (3.0, 2, "continue")
    assert (bounds.timeout, bounds.retries, bounds.on_error) == (UNSET, UNSET, "raise")


def test_with_options_can_change_output_name_and_name() -> None:
    renamed = f.with_options(output_name="plus_one", name="inc")
    assert renamed.outputs == ("plus_one",)
    assert renamed.name == "inc"
    assert f.outputs == ("r",)
    assert f.name == "f"


def test_with_options_keeps_an_explicit_name() -> None:
    first = node(lambda xs: xs[0], output_name="first", name="first")
    assert first.with_options(cache=False).name == "first"


def test_with_options_rejects_an_unknown_option() -> None:
    with pytest.raises(TypeError, match="colour"):
        f.with_options(colour="red")


def test_with_options_validates_the_new_values() -> None:
    with pytest.raises(ValueError, match="timeout"):
        f.with_options(timeout=-1)


# --- A1.9 with_inputs ---------------------------------------------------------------------------


def test_a1_9_with_inputs_feeds_the_parameter_from_another_name() -> None:
    from_body = normalise.with_inputs({"text": "body"})
    assert from_body.inputs == ("body",)
    assert from_body.input_sources == {"text": "body"}
    assert Pipeline([from_body]).run(body="  A  B ") == {"cleaned": "a b"}


def test_a1_9_with_inputs_pipeline_needs_the_new_name_not_the_parameter() -> None:
    pipeline = Pipeline([normalise.with_inputs({"text": "body"})])
    assert pipeline.inputs == ("body",)
    assert pipeline.required_inputs == ("body",)


def test_a1_9_with_inputs_leaves_the_original_and_wraps_the_same_function() -> None:
    from_body = normalise.with_inputs({"text": "body"})
    assert from_body is not normalise
    assert normalise.inputs == ("text",)
    assert normalise.input_sources == {"text": "text"}
    # The code fingerprint is computed from the function; the rewired node keeps it.
    assert from_body.func is normalise.func
    assert from_body.cache_version == normalise.cache_version
    assert from_body.name == normalise.name
    assert from_body.outputs == normalise.outputs


def test_with_inputs_keeps_defaults_of_rewired_parameters() -> None:
    rewired = bounds.with_inputs({"margin": "pad"})
    assert rewired.inputs == ("values", "pad")
    assert Pipeline([rewired]).run(values=[2.0]) == {"low": 2.0, "high": 2.0}
    assert Pipeline([rewired]).run(values=[2.0], pad=1.0) == {"low": 1.0, "high": 3.0}


def test_with_inputs_rejects_an_unknown_parameter_naming_it() -> None:
    with pytest.raises(DefinitionError, match="nope"):
        normalise.with_inputs({"nope": "body"})


def test_with_inputs_rejects_an_invalid_source_name() -> None:
    with pytest.raises(InvalidNameError, match="bad-name"):
        normalise.with_inputs({"text": "bad-name"})


def test_with_inputs_survives_with_options() -> None:
    rewired = normalise.with_inputs({"text": "body"}).with_options(cache=False)
    assert rewired.inputs == ("body",)
    assert rewired.cache is False


# --- rule 1: positional-only and keyword-only parameters ------------------------------------------


def test_positional_only_parameters_are_inputs_and_passed_positionally() -> None:
    def combine(a: int, /, b: int) -> tuple[int, int]:
        return a, b

    combined = node(combine, output_name="pair")
    assert combined.inputs == ("a", "b")
    # Passing `a` by keyword would raise TypeError inside the function.
    assert Pipeline([combined]).run(a=1, b=2) == {"pair": (1, 2)}


def test_positional_only_parameter_with_default_is_optional() -> None:
    def scale(x: int, factor: int = 3, /) -> int:
        return x * factor

    scaled = node(scale, output_name="scaled")
    assert Pipeline([scaled]).required_inputs == ("x",)
    assert Pipeline([scaled]).run(x=2) == {"scaled": 6}


def test_keyword_only_parameters_are_inputs_and_passed_by_keyword() -> None:
    def label(x: int, *, prefix: str, suffix: str = "!") -> str:
        return f"{prefix}{x}{suffix}"

    labelled = node(label, output_name="label")
    assert labelled.inputs == ("x", "prefix", "suffix")
    assert labelled.defaults == {"suffix": "!"}
    assert Pipeline([labelled]).run(x=1, prefix="#") == {"label": "#1!"}


def test_keyword_only_parameter_rewired_with_with_inputs() -> None:
    def label(x: int, *, prefix: str) -> str:
        return f"{prefix}{x}"

    labelled = node(label, output_name="label").with_inputs({"prefix": "tag"})
    assert Pipeline([labelled]).run(x=1, tag="@") == {"label": "@1"}


# --- rule 5: bound methods and callable objects ---------------------------------------------------


class Scaler:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    def scale(self, x: int) -> int:
        return x * self.factor

    def __call__(self, x: int, offset: int = 0) -> int:
        return x * self.factor + offset


def test_bound_method_signature_excludes_self() -> None:
    scaled = node(Scaler(3).scale, output_name="scaled")
    assert scaled.inputs == ("x",)
    assert scaled.name == "scale"


def test_bound_method_node_runs_with_its_instance() -> None:
    scaled = node(Scaler(3).scale, output_name="scaled")
    assert Pipeline([scaled]).run(x=2) == {"scaled": 6}


def test_callable_object_signature_excludes_self() -> None:
    scaled = node(Scaler(4), name="scaler", output_name="scaled")
    assert scaled.inputs == ("x", "offset")
    assert scaled.defaults == {"offset": 0}
    assert scaled.is_async is False


def test_callable_object_node_runs_in_a_pipeline() -> None:
    scaled = node(Scaler(4), name="scaler", output_name="scaled")
    assert Pipeline([scaled]).run(x=2) == {"scaled": 8}
    assert Pipeline([scaled]).run(x=2, offset=1) == {"scaled": 9}


# --- rule 7: immutability -----------------------------------------------------------------------


def test_node_attributes_cannot_be_assigned() -> None:
    with pytest.raises(AttributeError):
        f.name = "g"
    with pytest.raises(AttributeError):
        f.cache = False
    assert f.name == "f"
    assert f.cache is True


def test_node_attributes_cannot_be_deleted() -> None:
    with pytest.raises(AttributeError):
        del f.name
    assert f.name == "f"


def test_with_name_returns_a_renamed_copy() -> None:
    renamed = f.with_name("increment")
    assert renamed is not f
    assert renamed.name == "increment"
    assert renamed.outputs == ("r",)
    assert renamed.func is f.func
    assert f.name == "f"


def test_with_name_rejects_an_invalid_name() -> None:
    with pytest.raises(InvalidNameError, match="bad-name"):
        f.with_name("bad-name")


def test_with_name_id_is_used_by_the_pipeline() -> None:
    pipeline = Pipeline([f.with_name("increment")])
    assert pipeline.execution_order() == ("increment",)


# --- rule 8: introspection ----------------------------------------------------------------------


def test_node_introspection_defaults() -> None:
    assert bounds.func(values=[1.0], margin=0.0) == (1.0, 1.0)
    assert bounds.name == "bounds"
    assert bounds.inputs == ("values", "margin")
    assert isinstance(bounds.inputs, tuple)
    assert bounds.input_sources == {"values": "values", "margin": "margin"}
    assert bounds.is_async is False
    assert bounds.cache is True
    assert bounds.timeout is UNSET
    assert bounds.retries is UNSET
    assert bounds.on_error == "raise"
    assert bounds.cache_version is None


def test_node_keeps_explicit_none_timeout_and_zero_retries() -> None:
    strict = node(f.func, output_name="r", timeout=None, retries=0, cache_version="v2")
    assert strict.timeout is None
    assert strict.retries == 0
    assert strict.cache_version == "v2"


def test_node_accepts_positive_timeout_and_retries() -> None:
    patient = node(f.func, output_name="r", timeout=0.5, retries=3, on_error="continue")
    assert (patient.timeout, patient.retries, patient.on_error) == (0.5, 3, "continue")


def test_node_call_style_without_decorator_sugar() -> None:
    direct = nestflow.node(f.func, output_name="r")
    assert direct.inputs == ("x",)
    assert direct(1) == 2


# --- invalid options ----------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0, -1, -0.5])
def test_non_positive_timeout_is_rejected_naming_the_option(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout") as info:
        node(f.func, output_name="r", timeout=timeout)
    assert str(timeout) in str(info.value)


def test_non_numeric_timeout_is_rejected() -> None:
    with pytest.raises((TypeError, ValueError), match="timeout"):
        node(f.func, output_name="r", timeout="soon")


def test_negative_retries_are_rejected_naming_the_option() -> None:
    with pytest.raises(ValueError, match="retries") as info:
        node(f.func, output_name="r", retries=-1)
    assert "-1" in str(info.value)


@pytest.mark.parametrize("on_error", ["ignore", "Raise", None])
def test_unknown_on_error_is_rejected_listing_the_choices(on_error: Any) -> None:
    with pytest.raises(ValueError, match="on_error") as info:
        node(f.func, output_name="r", on_error=on_error)
    message = str(info.value)
    assert "raise" in message
    assert "continue" in message


def test_non_callable_is_rejected() -> None:
    with pytest.raises(TypeError):
        node(42, output_name="r")
