"""A plain function's parameters are read from its code object; the result is the one
``inspect.signature`` gives, for every shape of ``def`` a node can take."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

from nestflow import node
from nestflow.core.node import Node, _Function, _function_of, _plain_function
from nestflow.errors import InvalidNameError, InvalidNodeError


def positional(a, b):  # type: ignore[no-untyped-def]
    return a + b


def with_defaults(a: int, b: int = 2, c: str = "x") -> int:
    return a + b


def keyword_only(a, *, b, c=3):  # type: ignore[no-untyped-def]
    return a + b + c


def positional_only(a, b=1, /, c=2, *, d=4):  # type: ignore[no-untyped-def]
    return a + b + c + d


def many_locals(a, b=1):  # type: ignore[no-untyped-def]
    total = a + b
    scratch = [total]
    return scratch[0]


async def coroutine(a, b=1):  # type: ignore[no-untyped-def]
    return a + b


def closure() -> Any:
    offset = 3

    def inner(x, y=offset):  # type: ignore[no-untyped-def]
        return x + y + offset

    return inner


def no_parameters():  # type: ignore[no-untyped-def]
    return 1


SHAPES = {
    "positional": positional,
    "with_defaults": with_defaults,
    "keyword_only": keyword_only,
    "positional_only": positional_only,
    "many_locals": many_locals,
    "coroutine": coroutine,
    "closure": closure(),
    "lambda": lambda v, w=2: v + w,
    "no_parameters": no_parameters,
}


def _by_inspect(func: Any) -> _Function:
    parameters = inspect.signature(func).parameters
    return _Function(
        func,
        func.__name__,
        tuple(parameters),
        {p: v.default for p, v in parameters.items() if v.default is not inspect.Parameter.empty},
        frozenset(p for p, v in parameters.items() if v.kind is v.KEYWORD_ONLY),
        inspect.iscoroutinefunction(func),
    )


@pytest.mark.parametrize("func", SHAPES.values(), ids=SHAPES.keys())
def test_the_code_object_says_what_inspect_says(func: Any) -> None:
    read = _plain_function(func)
    assert read == _by_inspect(func)
    assert _function_of(func) == read


def test_wrappers_and_declared_signatures_are_read_by_inspect() -> None:
    @functools.wraps(with_defaults)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return with_defaults(*args, **kwargs)

    assert _plain_function(wrapper) is None
    assert _function_of(wrapper).params == ("a", "b", "c")  # through __wrapped__

    def declared(*args: Any) -> Any:
        return args

    declared.__signature__ = inspect.signature(positional)  # type: ignore[attr-defined]
    assert _plain_function(declared) is None
    assert _function_of(declared).params == ("a", "b")


def test_variadic_and_async_generators_still_get_their_explanations() -> None:
    def variadic(a, *rest):  # type: ignore[no-untyped-def]
        return a

    async def stream(a):  # type: ignore[no-untyped-def]
        yield a

    with pytest.raises(InvalidNodeError, match="variadic"):
        node(variadic, output_name="x")
    with pytest.raises(InvalidNodeError, match="async generator"):
        node(stream, output_name="x")


def test_a_node_of_a_plain_function_runs_with_its_defaults() -> None:
    from nestflow import Pipeline

    made = node(positional_only, output_name="total")
    assert made.params == ("a", "b", "c", "d")
    assert made.defaults == {"b": 1, "c": 2, "d": 4}
    assert Pipeline([made]).run(a=1)["total"] == 8


def test_a_bad_name_fails_every_time_it_is_written_even_though_checks_are_remembered() -> None:
    def f(x: int) -> int:
        return x

    for _ in range(2):
        with pytest.raises(InvalidNameError, match="output name"):
            node(f, output_name="bad name")
    assert node(f, output_name="good").outputs == ("good",)
    for _ in range(2):
        with pytest.raises(InvalidNodeError, match="has no parameter y"):
            Node(f, output_name="good", input_sources={"y": "z"})
