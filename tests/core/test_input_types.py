"""Declared input types (``Pipeline.with_input_types``), checked when a run starts."""

from __future__ import annotations

from typing import Any

import pytest

from nestflow import InputError, InvalidOptionError, Pipeline, node


@node(output_name="out")
def echo(value: Any) -> Any:
    return value


PIPELINE = Pipeline([echo], name="typed")


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("string", "a", 1),
        ("integer", 3, 3.5),
        ("integer", 3, True),
        ("number", 3.5, "3.5"),
        ("number", 2, False),
        ("boolean", False, 0),
        ("array", [1], "1"),
        ("array", (1, 2), {"a": 1}),
        ("object", {"a": 1}, [("a", 1)]),
    ],
)
def test_a_value_of_the_declared_type_runs_and_another_is_refused(
    kind: str, good: Any, bad: Any
) -> None:
    typed = PIPELINE.with_input_types({"value": kind})
    assert typed.run(value=good)["out"] == good
    with pytest.raises(InputError, match=f"input `value` must be of type {kind}"):
        typed.run(value=bad)


def test_any_takes_everything_and_untyped_pipelines_check_nothing() -> None:
    assert PIPELINE.with_input_types({"value": "any"}).run(value=object)["out"] is object
    assert PIPELINE.input_types == {}


def test_unknown_names_and_types_are_refused_together() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        PIPELINE.with_input_types({"valeu": "string", "value": "text"})
    message = str(caught.value)
    assert "`valeu` is not an input of pipeline `typed`" in message
    assert "`value`: unknown type 'text'" in message


def test_types_survive_copies_and_pickling() -> None:
    import cloudpickle

    typed = PIPELINE.with_input_types({"value": "integer"}).with_name("renamed")
    assert typed.input_types == {"value": "integer"}
    assert cloudpickle.loads(cloudpickle.dumps(typed)).input_types == {"value": "integer"}


def test_an_input_no_node_reads_can_be_declared_and_runs_accept_it() -> None:
    declared = PIPELINE.with_input_types({"note": "string"}, accept_unused=True)
    assert declared.input_types == {"note": "string"}
    assert declared.inputs == PIPELINE.inputs
    with pytest.raises(InputError, match="note"):
        declared.run(value=1, note=3)
    with pytest.raises(InvalidOptionError, match="`bad name` is not an input"):
        PIPELINE.with_input_types({"bad name": "string"}, accept_unused=True)


def test_a_declared_unused_input_is_checked_then_left_unused() -> None:
    declared = PIPELINE.with_input_types({"note": "string"}, accept_unused=True)
    assert dict(declared.run(value=1, note="kept out")) == {"out": 1}
