"""Typed contracts of the definitions: config annotations, the run/map overloads, UNSET.

mypy checks ``src/`` only, so these tests pin what the annotations declare and show that
the behaviour matches them.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import pickle
import typing
from collections.abc import Callable
from typing import Any

import pytest

from nestflow import (
    UNSET,
    DaskBackend,
    LocalBackend,
    Node,
    Outputs,
    Pipeline,
    PipelineNode,
    node,
)


@node(output_name="doubled")
def double(x: int) -> int:
    return 2 * x


PIPELINE = Pipeline([double], name="typed")

CONFIGURED: list[tuple[Callable[..., Any], tuple[str, ...]]] = [
    (Pipeline.__init__, ("backend", "cache", "callbacks", "timeout", "retries")),
    (Pipeline.with_backend, ("backend",)),
    (Pipeline.with_cache, ("cache",)),
    (Pipeline.with_callbacks, ("callbacks",)),
    (Pipeline.with_timeout, ("timeout",)),
    (Pipeline.with_retries, ("retries",)),
    (Pipeline.as_node, ("input_mapping", "output_mapping", "map_over", "map_mode", "on_error")),
    (PipelineNode.__init__, ("map_over", "map_mode", "on_error")),
    (Node.__init__, ("output_name", "cache", "timeout", "retries", "on_error")),
    (node, ("output_name", "cache", "timeout", "retries", "on_error")),
    (LocalBackend.__init__, ("node_execution", "map_execution", "max_workers")),
    (DaskBackend.__init__, ("address", "n_workers", "resources", "client", "connect_timeout")),
]


@pytest.mark.parametrize(
    ("function", "names"), CONFIGURED, ids=lambda f: getattr(f, "__qualname__", "")
)
def test_config_parameters_are_annotated_without_any(
    function: Callable[..., Any], names: tuple[str, ...]
) -> None:
    parameters = inspect.signature(function).parameters
    loose = {n: parameters[n].annotation for n in names if "Any" in str(parameters[n].annotation)}
    assert loose == {}


def test_inherited_aspects_accept_the_unset_type() -> None:
    parameters = inspect.signature(Pipeline.__init__).parameters
    for aspect in ("backend", "cache", "callbacks", "timeout", "retries"):
        assert "Unset" in parameters[aspect].annotation
        assert parameters[aspect].default is UNSET


def test_run_map_arun_amap_declare_a_bare_value_and_an_outputs_overload() -> None:
    for method in (Pipeline.run, Pipeline.map, Pipeline.arun, Pipeline.amap):
        overloads = typing.get_overloads(method)
        returns = [inspect.signature(o).return_annotation for o in overloads]
        assert returns == ["Any", "Outputs"], method.__name__
        assert "output_name" in inspect.signature(overloads[0]).parameters


def test_run_with_output_name_returns_the_bare_value_else_outputs() -> None:
    assert PIPELINE.run(x=3, output_name="doubled") == 6
    found = PIPELINE.run(x=3)
    assert isinstance(found, Outputs)
    assert found == {"doubled": 6}
    assert found.report.status == "ok"


def test_map_with_output_name_returns_the_bare_list_else_outputs() -> None:
    assert PIPELINE.map(x=[1, 2], map_over="x", output_name="doubled") == [2, 4]
    assert isinstance(PIPELINE.map(x=[1, 2], map_over="x"), Outputs)


def test_arun_and_amap_return_what_run_and_map_return() -> None:
    async def calls() -> tuple[Any, ...]:
        return (
            await PIPELINE.arun(x=3, output_name="doubled"),
            await PIPELINE.arun(x=3),
            await PIPELINE.amap(x=[1, 2], map_over="x", output_name="doubled"),
            await PIPELINE.amap(x=[1, 2], map_over="x"),
        )

    bare, outputs, bare_list, mapped = asyncio.run(calls())
    assert (bare, bare_list) == (6, [2, 4])
    assert isinstance(outputs, Outputs)
    assert isinstance(mapped, Outputs)


def test_unset_stays_one_object_through_construction_copy_and_pickle() -> None:
    assert type(UNSET)() is UNSET
    assert copy.deepcopy(UNSET) is UNSET
    assert all(pickle.loads(pickle.dumps(UNSET, p)) is UNSET for p in range(6))
    assert (repr(UNSET), str(UNSET), bool(UNSET)) == ("UNSET", "UNSET", False)
