"""Copies of a node (with_inputs, with_options, with_name) equal a node built directly.

A copy reuses the function analysis of the node it copies instead of reading the
signature again; these tests pin that the result is the very node ``Node(func, ...)``
gives, attribute by attribute, and that the changed options are still checked.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from nestflow import InvalidNameError, InvalidNodeError, InvalidOptionError, Node, node
from nestflow.cache.fingerprint import code_fingerprint

ATTRIBUTES = {
    "func", "name", "name_is_explicit", "params", "inputs", "outputs", "output_name",
    "defaults", "input_sources", "keyword_params", "is_async", "cache", "timeout", "retries",
    "on_error", "cache_version", "when", "outcome", "tolerates", "__wrapped__", "__doc__",
    "__name__",
}  # fmt: skip


def plain(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


async def fetched(url: str, tries: int = 3) -> str:
    return f"{url}:{tries}"


def scaled(
    x: float, factor: float = 2.0, *, offset: float = 0.0, clip: float | None = None
) -> float:
    return x * factor + offset


@dataclass(frozen=True)
class Adder:
    """A callable object whose ``__call__`` holds the parameters; equal by value, so a
    pickled copy equals it."""

    shift: int = 0

    def __call__(self, x: int, y: int = 1) -> int:
        return x + y + self.shift


ADDER = Adder()

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "plain function": plain,
    "async function": fetched,
    "keyword-only parameters and defaults": scaled,
    "callable object": ADDER,
}
CASES = pytest.mark.parametrize("func", list(FUNCTIONS.values()), ids=list(FUNCTIONS))


def assert_same_node(copy: Node, direct: Node) -> None:
    """Every attribute equal, in the same order (so both pickle and fingerprint alike)."""
    assert set(vars(direct)) == ATTRIBUTES
    assert list(vars(copy)) == list(vars(direct))
    for attribute, value in vars(direct).items():
        assert vars(copy)[attribute] == value, attribute
    assert code_fingerprint(copy) == code_fingerprint(direct)


def first_param(func: Callable[..., Any]) -> str:
    return node(func, output_name="out").params[0]


@CASES
def test_with_inputs_equals_a_node_built_with_those_input_sources(func: Callable[..., Any]) -> None:
    sources = {first_param(func): "fed"}
    copy = node(func, output_name="out").with_inputs(sources)
    assert_same_node(copy, Node(func, output_name="out", input_sources=sources))


@CASES
def test_with_options_equals_a_node_built_with_those_options(func: Callable[..., Any]) -> None:
    options: dict[str, Any] = {
        "name": "renamed",
        "output_name": ("low", "high"),
        "cache": False,
        "timeout": 5.0,
        "retries": 2,
        "on_error": "continue",
        "cache_version": "v2",
        "when": "ready",
        "outcome": "how",
        "tolerates": ("ready",),
    }
    copy = node(func, output_name="out").with_options(**options)
    assert_same_node(copy, Node(func, **options))


@CASES
def test_with_name_equals_a_node_built_with_that_name(func: Callable[..., Any]) -> None:
    copy = node(func, output_name="out", cache_version="v1").with_name("other")
    assert_same_node(copy, Node(func, output_name="out", cache_version="v1", name="other"))


@CASES
def test_copy_of_a_copy_equals_a_node_built_with_all_its_options(func: Callable[..., Any]) -> None:
    """The chain a workflow file's step makes: wire the inputs, then name the step."""
    sources = {first_param(func): "fed"}
    copy = (
        node(func, output_name="step")
        .with_inputs(sources)
        .with_options(name="step", output_name="result", timeout=1.0)
    )
    direct = Node(func, name="step", output_name="result", timeout=1.0, input_sources=sources)
    assert_same_node(copy, direct)
    assert_same_node(pickle.loads(pickle.dumps(copy)), direct)


@CASES
def test_copy_keeps_its_own_defaults_mapping(func: Callable[..., Any]) -> None:
    original = node(func, output_name="out")
    copy = original.with_name("other")
    assert copy.defaults == original.defaults
    assert copy.defaults is not original.defaults


def test_with_options_still_checks_a_changed_name() -> None:
    with pytest.raises(InvalidNameError, match="class"):
        node(plain, output_name="out").with_options(name="class")


def test_with_options_still_checks_a_changed_option_value() -> None:
    with pytest.raises(InvalidOptionError, match="timeout"):
        node(scaled, output_name="out").with_options(timeout=-1)


def test_with_options_still_checks_a_changed_output_name() -> None:
    with pytest.raises(InvalidNameError, match="output name"):
        node(fetched, output_name="out").with_options(output_name=("a", "a"))


def test_with_inputs_still_checks_a_changed_source_name() -> None:
    with pytest.raises(InvalidNameError, match="input name"):
        node(ADDER, output_name="out").with_inputs({"x": "not a name"})


def test_with_inputs_still_refuses_an_unknown_parameter() -> None:
    with pytest.raises(InvalidNodeError, match="no parameter `z`"):
        node(plain, output_name="out").with_inputs({"z": "fed"})
