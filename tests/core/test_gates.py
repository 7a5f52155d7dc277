"""Conditions, outcomes and tolerated inputs of nodes: ``when=``, ``outcome=``, ``tolerates=``."""

from __future__ import annotations

from typing import Any

import pytest

from nestflow import DiskCache, LocalBackend, Pipeline, node
from nestflow.core.gates import Condition, private_name
from nestflow.errors import InvalidNameError, InvalidOptionError

CALLS: list[str] = []


@node(output_name="y", when="ready")
def guarded(x: int) -> int:
    CALLS.append("guarded")
    return x + 1


@node(output_name="z")
def after(y: int) -> int:
    CALLS.append("after")
    return y * 10


@node(output_name="w", on_error="continue", outcome="w_outcome")
def risky(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x


def _failed(outcome: dict[str, Any]) -> bool:
    return bool(outcome["status"] == "failed")


@node(output_name="fixed", when=Condition(_failed, ("w_outcome",), "risky failed"))
def repair(w_outcome: dict[str, Any]) -> int:
    return len(w_outcome["error"]["message"])


@node(output_name="best", tolerates=("w", "fixed"))
def best(w: int | None, fixed: int | None) -> int | None:
    return w if w is not None else fixed


MODES = [
    LocalBackend(),
    LocalBackend(node_execution="threaded"),
    LocalBackend(node_execution="async"),
]


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


@pytest.mark.parametrize("backend", MODES, ids=["sequential", "threaded", "async"])
def test_when_names_a_value_the_node_runs_only_when_it_is_true(backend: LocalBackend) -> None:
    pipeline = Pipeline([guarded, after], backend=backend)
    assert pipeline.inputs == ("x", "ready")
    off = pipeline.run(x=1, ready=False)
    assert dict(off) == {"y": None, "z": None}
    assert CALLS == []
    assert [(r.node, r.status) for r in off.report.records] == [
        ("guarded", "skipped"),
        ("after", "skipped"),
    ]
    assert off.report.status == "ok"
    assert dict(pipeline.run(x=1, ready=True)) == {"y": 2, "z": 20}


@pytest.mark.parametrize("backend", MODES, ids=["sequential", "threaded", "async"])
def test_an_outcome_feeds_a_fallback_and_a_tolerant_node_takes_what_exists(
    backend: LocalBackend,
) -> None:
    pipeline = Pipeline([risky, repair, best], backend=backend)
    assert pipeline.outputs == ("w", "fixed", "best")
    assert "w_outcome" in pipeline.graph.producers
    good = pipeline.run(x=3)
    assert dict(good) == {"w": 3, "fixed": None, "best": 3}
    bad = pipeline.run(x=-2)
    assert dict(bad) == {"w": None, "fixed": len("negative: -2"), "best": len("negative: -2")}
    assert bad.report.status == "partial"


def test_outcomes_are_values_a_python_pipeline_can_return() -> None:
    @node(output_name="seen")
    def seen(w_outcome: dict[str, Any]) -> dict[str, Any]:
        return w_outcome

    pipeline = Pipeline([risky, seen])
    assert pipeline.run(x=1)["seen"] == {"status": "ok", "error": None}
    failed = pipeline.run(x=-1)["seen"]
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "type": "ValueError",
        "message": "negative: -1",
        "path": "pipeline > risky",
    }


def test_an_outcome_is_ok_on_a_cache_hit_and_skips_are_never_cached(tmp_path: Any) -> None:
    @node(output_name="seen")
    def seen(w_outcome: dict[str, Any]) -> str:
        return str(w_outcome["status"])

    pipeline = Pipeline([risky, seen, guarded.with_inputs({"x": "x"})], cache=DiskCache(tmp_path))
    first = pipeline.run(x=1, ready=False)
    assert first["seen"] == "ok"
    second = pipeline.run(x=1, ready=True)
    assert second["seen"] == "ok"
    assert second["y"] == 2
    assert second.report.cache_hits == 2  # risky and seen; guarded was skipped, not stored


def test_a_nested_pipeline_takes_when_and_outcome() -> None:
    inner = Pipeline([after], name="inner")
    outer = Pipeline(
        [
            inner.as_node(when="go", outcome="inner_outcome"),
            node(lambda inner_outcome: inner_outcome["status"], output_name="state", name="state"),
        ],
        name="outer",
    )
    assert dict(outer.run(y=2, go=True)) == {"z": 20, "state": "ok"}
    assert dict(outer.run(y=2, go=False)) == {"z": None, "state": "skipped"}


def test_a_condition_that_raises_fails_the_node_like_its_body_would() -> None:
    def boom(x: int) -> bool:
        raise RuntimeError("cannot decide")

    @node(output_name="y", when=Condition(boom, ("x",)))
    def gated(x: int) -> int:
        return x

    with pytest.raises(RuntimeError, match="cannot decide") as caught:
        Pipeline([gated]).run(x=1)
    assert any("pipeline > gated" in note for note in caught.value.__notes__)
    cont = Pipeline([gated.with_options(on_error="continue")]).run(x=1)
    assert cont["y"] is None
    assert cont.report.errors[0].exception_type == "RuntimeError"


def test_private_names_are_passed_between_nodes_but_never_published() -> None:
    hidden = private_name("step", "value")
    make = node(lambda x: x * 2, output_name=hidden, name=private_name("step", "make"))
    use = node(lambda v: v + 1, output_name="out", name="use").with_inputs({"v": hidden})
    pipeline = Pipeline([make, use])
    assert pipeline.outputs == ("out",)
    assert dict(pipeline.run(x=4)) == {"out": 9}


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: node(lambda x: x, name="n", output_name="r", when=3),
            InvalidOptionError,
            "expects the name of a value",
        ),
        (
            lambda: node(lambda x: x, name="n", output_name="r", when="not valid"),
            InvalidNameError,
            "when= of node `n`",
        ),
        (
            lambda: node(lambda x: x, name="n", output_name="r", outcome="r"),
            InvalidOptionError,
            "also one of its outputs",
        ),
        (
            lambda: node(lambda x: x, name="n", output_name="r", outcome="__o"),
            InvalidNameError,
            "outcome= of node `n`",
        ),
        (
            lambda: node(lambda x: x, name="n", output_name="r", tolerates=("y",)),
            InvalidOptionError,
            "does not read",
        ),
        (
            lambda: node(lambda x: x, name="n", output_name=".bad name"),
            InvalidNameError,
            "private name",
        ),
    ],
    ids=[
        "when-type",
        "when-name",
        "outcome-clash",
        "outcome-dunder",
        "tolerates-unknown",
        "private-bad",
    ],
)
def test_bad_gate_options_say_what_was_expected(make: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make()


def test_user_names_still_may_not_start_with_a_double_underscore() -> None:
    with pytest.raises(InvalidNameError, match="'__'"):
        node(lambda x: x, name="n", output_name="__hidden")
