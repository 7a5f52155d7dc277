"""Mistakes users make when building and calling pipelines, each met by one clear error.

Every error is nestflow's own (SPEC 10.1) and keeps the built-in a caller would catch;
its message says what was expected, what was found and what to write instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from nestflow import (
    InputError,
    InvalidNameError,
    InvalidNodeError,
    LocalBackend,
    NestflowError,
    Pipeline,
    RecursionDepthError,
    node,
)
from nestflow.core.options import LOCAL_MODES
from nestflow.engines.backends import MODES
from nestflow.errors import InvalidCallError, InvalidOptionError
from nestflow.runtime.plan import MAX_NESTING_DEPTH


@node(output_name="doubled")
def double(x: int) -> int:
    return 2 * x


PIPELINE = Pipeline([double], name="doubling")


# --- run and map called with arguments of the wrong shape --------------------------------------


@pytest.mark.parametrize("method", ["run", "map"])
def test_a_positional_value_that_is_not_a_mapping_names_the_inputs_and_the_fix(
    method: str,
) -> None:
    with pytest.raises(InvalidCallError) as caught:
        getattr(PIPELINE, method)(3)

    message = str(caught.value)
    assert "mapping" in message
    assert "got int 3" in message
    assert "`x`" in message
    assert f"{method}(x=" in message


def test_a_positional_value_is_a_type_error_and_an_input_error() -> None:
    with pytest.raises(TypeError):
        PIPELINE.run(3)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        PIPELINE.run(3)  # type: ignore[arg-type]


def test_arun_rejects_a_positional_value_that_is_not_a_mapping() -> None:
    with pytest.raises(InvalidCallError, match="got int 3"):
        asyncio.run(PIPELINE.arun(3))  # type: ignore[arg-type]


def test_an_input_given_in_the_mapping_and_as_keyword_is_an_invalid_call_naming_it() -> None:
    with pytest.raises(InvalidCallError) as caught:
        PIPELINE.run({"x": 1}, x=2)

    assert isinstance(caught.value, TypeError)
    assert "`x` given twice" in str(caught.value)
    assert "once" in str(caught.value)


def test_inputs_given_positionally_and_as_inputs_keyword_is_an_invalid_call() -> None:
    with pytest.raises(InvalidCallError, match="twice"):
        PIPELINE.run({"x": 1}, inputs={"x": 1})


def test_the_three_call_styles_still_work() -> None:
    expected = {"doubled": 2}
    assert PIPELINE.run({"x": 1}) == PIPELINE.run(x=1) == PIPELINE.run(inputs={"x": 1}) == expected


# --- configuration keywords of the wrong type or value -----------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: node(double.func, output_name="r", timeout=-1),
        lambda: Pipeline([double], timeout=-1),
        lambda: PIPELINE.with_timeout(-1),
    ],
    ids=["node", "Pipeline", "with_timeout"],
)
def test_a_negative_timeout_says_what_is_expected_and_how_to_write_it(
    make: Callable[[], Any],
) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        make()

    message = str(caught.value)
    assert "timeout=" in message
    assert "positive number of seconds" in message
    assert "got -1" in message
    assert "timeout=None" in message
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, TypeError)


def test_as_node_has_no_timeout_and_says_where_it_is_set() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        PIPELINE.as_node(timeout=-1)  # type: ignore[call-arg]

    message = str(caught.value)
    assert "as_node() has no timeout=" in message
    assert "with_timeout(" in message
    assert isinstance(caught.value, TypeError)


def test_a_cache_path_says_to_use_disk_cache() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        Pipeline([double], cache="path")  # type: ignore[arg-type]

    assert "DiskCache('path')" in str(caught.value)
    assert isinstance(caught.value, TypeError)


def test_a_node_cache_that_is_a_store_says_the_store_belongs_to_the_pipeline() -> None:
    with pytest.raises(InvalidOptionError, match=r"Pipeline\(\[\.\.\.\], cache=DiskCache"):
        node(double.func, output_name="r", cache="path")  # type: ignore[call-overload]


def test_a_mode_name_as_backend_says_to_use_local_backend_listing_the_modes() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        Pipeline([double], backend="threaded")  # type: ignore[arg-type]

    message = str(caught.value)
    assert "LocalBackend('threaded')" in message
    for mode in MODES:
        assert f"'{mode}'" in message
    assert isinstance(caught.value, TypeError)


def test_core_knows_the_same_local_modes_as_the_backend() -> None:
    assert LOCAL_MODES == MODES


def test_every_bad_option_of_a_pipeline_is_reported_at_once() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        Pipeline([double], cache=True, timeout="soon")  # type: ignore[arg-type]

    message = str(caught.value)
    assert "cache=" in message
    assert "timeout=" in message
    assert "'soon'" in message


def test_an_unknown_local_backend_mode_is_an_invalid_option_listing_the_modes() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        LocalBackend("threads")  # type: ignore[arg-type]

    for mode in MODES:
        assert mode in str(caught.value)
    assert isinstance(caught.value, ValueError)


# --- on_error given where it does not belong ----------------------------------------------------


def _says_where_on_error_is_set(message: str) -> None:
    assert "@node(on_error=" in message
    assert "as_node(..., on_error=" in message
    assert "map(..., on_error=" in message


def test_pipeline_on_error_says_it_is_set_on_a_node_as_node_or_map() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        Pipeline([double], on_error="continue")  # type: ignore[call-arg]

    assert "Pipeline() has no on_error=" in str(caught.value)
    _says_where_on_error_is_set(str(caught.value))
    assert isinstance(caught.value, TypeError)


def test_run_on_error_says_it_is_set_on_a_node_as_node_or_map() -> None:
    with pytest.raises(InvalidCallError) as caught:
        PIPELINE.run(x=1, on_error="continue")

    assert "run() has no on_error=" in str(caught.value)
    _says_where_on_error_is_set(str(caught.value))


def test_run_passes_on_error_when_it_is_an_input_of_the_pipeline() -> None:
    @node(output_name="policy")
    def choose(on_error: str) -> str:
        return on_error.upper()

    assert Pipeline([choose]).run(on_error="continue") == {"policy": "CONTINUE"}


def test_run_with_a_configuration_keyword_says_to_configure_the_pipeline() -> None:
    with pytest.raises(InvalidCallError, match=r"with_timeout\(\.\.\.\)\.run"):
        PIPELINE.run(x=1, timeout=5)


def test_an_unexpected_pipeline_keyword_lists_the_accepted_ones() -> None:
    with pytest.raises(InvalidOptionError, match="unexpected keyword `colour`") as caught:
        Pipeline([double], colour="red")  # type: ignore[call-arg]

    assert "timeout" in str(caught.value)


# --- functions and names a node cannot have -----------------------------------------------------


def test_an_async_generator_function_is_rejected_at_decoration() -> None:
    async def stream(x: int) -> AsyncIterator[int]:
        yield x

    with pytest.raises(InvalidNodeError) as caught:
        node(stream, output_name="items")

    message = str(caught.value)
    assert "`stream`" in message
    assert "async generator" in message
    assert "return" in message


def _hidden(__secret: int) -> int:
    return __secret


@pytest.mark.parametrize(
    "make",
    [lambda: node(_hidden, output_name="r"), lambda: double.with_inputs({"x": "__secret"})],
    ids=["parameter", "with_inputs"],
)
def test_an_input_name_starting_with_double_underscore_is_an_invalid_name(
    make: Callable[[], Any],
) -> None:
    with pytest.raises(InvalidNameError, match="__secret") as caught:
        make()

    assert "'__'" in str(caught.value)


def test_an_input_named_output_name_is_rejected_at_construction() -> None:
    def pick(output_name: str) -> str:
        return output_name

    with pytest.raises(InvalidNameError) as caught:
        node(pick, output_name="picked")

    message = str(caught.value)
    assert "`output_name`" in message
    assert "keyword of run()/map()" in message


def test_an_outer_name_output_name_in_input_mapping_is_rejected() -> None:
    with pytest.raises(NestflowError, match="output_name"):
        PIPELINE.as_node(input_mapping={"output_name": "x"})


# --- nesting too deep ---------------------------------------------------------------------------


def _nested(levels: int) -> Pipeline:
    pipeline = Pipeline([double], name="p0")
    for level in range(1, levels):
        pipeline = Pipeline([pipeline], name=f"p{level}")
    return pipeline


def test_400_nesting_levels_raise_a_recursion_depth_error_naming_the_limit() -> None:
    calls: list[int] = []

    @node(output_name="doubled")
    def counted(x: int) -> int:
        calls.append(x)
        return 2 * x

    pipeline = Pipeline([counted], name="p0")
    for level in range(1, 400):
        pipeline = Pipeline([pipeline], name=f"p{level}")

    with pytest.raises(RecursionDepthError) as caught:
        pipeline.run(x=1)

    message = str(caught.value)
    assert "`p399`" in message
    assert "399 levels deep" in message
    assert f"depth {MAX_NESTING_DEPTH}" in message
    assert "p399 > p398" in message
    assert "p1 > p0" in message
    assert calls == []


def test_nesting_down_to_the_limit_runs() -> None:
    assert _nested(MAX_NESTING_DEPTH + 1).run(x=2) == {"doubled": 4}


def test_one_level_past_the_limit_is_rejected_even_when_the_inside_was_compiled_before() -> None:
    inner = _nested(MAX_NESTING_DEPTH + 1)
    assert inner.run(x=1) == {"doubled": 2}

    with pytest.raises(RecursionDepthError, match="101 levels deep"):
        Pipeline([inner], name="top").run(x=1)
