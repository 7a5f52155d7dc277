"""Pipeline.run and arun: call styles, selection, validation, Outputs, reports (SPEC section 3)."""

from __future__ import annotations

import asyncio
import json
import pickle
import re
import threading
from typing import Any

import pytest

import nestflow
from nestflow import (
    LocalBackend,
    MissingInputError,
    Outputs,
    Pipeline,
    UnknownInputError,
    UnknownOutputError,
    node,
)
from nestflow.testing import RecordingCallback

MODES = ("sequential", "threaded", "async")


@pytest.fixture(params=MODES)
def node_backend(request: pytest.FixtureRequest) -> LocalBackend:
    """A LocalBackend for each node_execution mode covered by this issue."""
    return LocalBackend(node_execution=request.param)


@pytest.fixture(params=MODES)
def map_backend(request: pytest.FixtureRequest) -> LocalBackend:
    """A LocalBackend for each map_execution mode covered by this issue."""
    return LocalBackend(map_execution=request.param)


def s02_pipeline(calls: list[str]) -> Pipeline:
    """``fa(x)->a``, ``fbx(x)->bx``, ``fb(a)->b``; every call is appended to ``calls``."""

    @node(output_name="a")
    def fa(x: int) -> int:
        calls.append("fa")
        return x * 10

    @node(output_name="bx")
    def fbx(x: int) -> int:
        calls.append("fbx")
        return x + 100

    @node(output_name="b")
    def fb(a: int) -> int:
        calls.append("fb")
        return a * 2

    return Pipeline([fa, fbx, fb], name="s02")


def chain_pipeline(calls: list[str]) -> Pipeline:
    """``fa(x)->a`` then ``fb(a)->b``; every call is appended to ``calls``."""

    @node(output_name="a")
    def fa(x: int) -> int:
        calls.append("fa")
        return x + 1

    @node(output_name="b")
    def fb(a: int) -> int:
        calls.append("fb")
        return a * 3

    return Pipeline([fa, fb], name="chain")


@node(output_name="a")
def twice(x: int) -> int:
    return x * 2


@node(output_name="boom")
def explode(a: int) -> int:
    raise RuntimeError(f"cannot handle {a}")


# --- A3.1 call styles --------------------------------------------------------------------------


def test_a3_1_mapping_keyword_and_inputs_keyword_call_styles_are_equal() -> None:
    pipeline = chain_pipeline([])

    by_mapping = pipeline.run({"x": 1})
    by_keyword = pipeline.run(x=1)
    by_inputs = pipeline.run(inputs={"x": 1})

    assert by_mapping == by_keyword == by_inputs == {"a": 2, "b": 6}


def test_a3_1_mapping_and_keywords_are_merged() -> None:
    @node(output_name="total")
    def add(x: int, y: int) -> int:
        return x + y

    assert Pipeline([add]).run({"x": 1}, y=2) == {"total": 3}


def test_a3_1_inputs_keyword_feeds_a_parameter_named_inputs() -> None:
    seen: list[Any] = []

    @node(output_name="count")
    def count(inputs: list[int]) -> int:
        seen.append(inputs)
        return len(inputs)

    result = Pipeline([count]).run(inputs=[1, 2])

    assert result == {"count": 2}
    assert seen == [[1, 2]]


def test_a3_1_mapping_given_as_inputs_is_the_value_of_an_input_named_inputs() -> None:
    @node(output_name="keys")
    def keys(inputs: dict[str, int]) -> list[str]:
        return sorted(inputs)

    assert Pipeline([keys]).run(inputs={"b": 1, "a": 2}) == {"keys": ["a", "b"]}


def test_a3_1_input_given_in_mapping_and_as_keyword_raises_type_error() -> None:
    calls: list[str] = []
    with pytest.raises(TypeError, match="x"):
        chain_pipeline(calls).run({"x": 1}, x=2)
    assert calls == []


def test_a3_1_inputs_keyword_mapping_and_positional_mapping_together_raise_type_error() -> None:
    with pytest.raises(TypeError):
        chain_pipeline([]).run({"x": 1}, inputs={"x": 1})


# --- A3.2 selection ----------------------------------------------------------------------------


def test_a3_2_output_nodes_returns_only_selection_and_runs_only_ancestors(
    node_backend: LocalBackend,
) -> None:
    calls: list[str] = []
    pipeline = s02_pipeline(calls).with_backend(node_backend)

    result = pipeline.run(x=1, output_nodes=["b"])

    assert result == {"b": 20}
    assert isinstance(result, Outputs)
    assert sorted(calls) == ["fa", "fb"]


def test_a3_2_output_name_string_returns_bare_value() -> None:
    calls: list[str] = []

    value = s02_pipeline(calls).run(x=1, output_name="b")

    assert value == 20
    assert not isinstance(value, dict)
    assert calls == ["fa", "fb"]


def test_a3_2_output_name_list_returns_dict_of_selection() -> None:
    calls: list[str] = []

    result = s02_pipeline(calls).run(x=1, output_name=["b"])

    assert result == {"b": 20}
    assert isinstance(result, Outputs)
    assert "fbx" not in calls


def test_a3_2_run_without_selection_returns_every_output() -> None:
    calls: list[str] = []

    result = s02_pipeline(calls).run(x=1)

    assert result == {"a": 10, "bx": 101, "b": 20}
    assert sorted(calls) == ["fa", "fb", "fbx"]


def test_a3_2_selection_does_not_require_inputs_of_unselected_nodes() -> None:
    @node(output_name="a")
    def fa(x: int) -> int:
        return x + 1

    @node(output_name="c")
    def fc(z: int) -> int:
        return z

    assert Pipeline([fa, fc]).run(x=1, output_name="a") == 2


def test_a3_2_selection_reaches_into_nested_pipeline() -> None:
    calls: list[str] = []
    inner = s02_pipeline(calls).with_name("inner")

    @node(output_name="final")
    def finish(b: int) -> int:
        calls.append("finish")
        return b + 1

    outer = Pipeline([inner, finish], name="outer")

    assert outer.run(x=1, output_name="final") == 21
    assert sorted(calls) == ["fa", "fb", "finish"]


def test_a3_2_output_name_and_output_nodes_together_raise_type_error() -> None:
    calls: list[str] = []
    with pytest.raises(TypeError):
        s02_pipeline(calls).run(x=1, output_name="b", output_nodes=["b"])
    assert calls == []


# --- A3.3 unknown outputs ----------------------------------------------------------------------


def test_a3_3_unknown_output_name_lists_available_outputs() -> None:
    calls: list[str] = []
    with pytest.raises(UnknownOutputError) as caught:
        s02_pipeline(calls).run(x=1, output_name="nope")

    message = str(caught.value)
    assert "nope" in message
    for output in ("a", "bx", "b"):
        assert re.search(rf"\b{output}\b", message)
    assert calls == []


def test_a3_3_node_id_as_output_name_says_which_outputs_the_node_publishes() -> None:
    with pytest.raises(UnknownOutputError, match=r"fb.*publishes.*\bb\b"):
        s02_pipeline([]).run(x=1, output_name="fb")


def test_a3_3_unknown_name_in_output_nodes_raises_unknown_output_error() -> None:
    with pytest.raises(UnknownOutputError, match="nope"):
        s02_pipeline([]).run(x=1, output_nodes=["b", "nope"])


# --- A3.4 to A3.6 input validation -------------------------------------------------------------


def test_a3_4_missing_input_in_run_raises_before_any_node_runs(
    node_backend: LocalBackend,
) -> None:
    calls: list[str] = []
    pipeline = chain_pipeline(calls).with_backend(node_backend)

    with pytest.raises(MissingInputError, match=r"\bx\b") as caught:
        pipeline.run(inputs={})

    assert isinstance(caught.value, ValueError)
    assert calls == []


def test_a3_4_missing_input_in_map_raises_before_any_node_runs(
    map_backend: LocalBackend,
) -> None:
    calls: list[str] = []
    pipeline = chain_pipeline(calls).with_backend(map_backend)

    with pytest.raises(MissingInputError, match=r"\bx\b"):
        pipeline.map(inputs={}, map_over="x")

    assert calls == []


def test_a3_4_missing_input_fires_no_callback(node_backend: LocalBackend) -> None:
    recorder = RecordingCallback()
    pipeline = chain_pipeline([]).with_backend(node_backend).with_callbacks([recorder])

    with pytest.raises(MissingInputError):
        pipeline.run()

    assert recorder.events == []


def test_a3_5_missing_inputs_at_two_levels_are_listed_together_with_paths() -> None:
    @node(output_name="a")
    def fa(x: int) -> int:
        return x

    @node(output_name="r")
    def g(a: int, k: int) -> int:
        return a + k

    inner = Pipeline([fa], name="inner")
    outer = Pipeline([inner, g], name="outer")

    with pytest.raises(MissingInputError) as caught:
        outer.run()

    message = str(caught.value)
    assert "outer > inner > fa" in message
    assert "outer > g" in message
    assert re.search(r"\bx\b", message)
    assert re.search(r"\bk\b", message)


def test_a3_6_input_that_nothing_consumes_raises_unknown_input_error() -> None:
    calls: list[str] = []
    with pytest.raises(UnknownInputError, match=r"\by\b"):
        chain_pipeline(calls).run(x=1, y=2)
    assert calls == []


def test_a3_6_giving_a_published_name_as_input_raises_input_error() -> None:
    with pytest.raises(nestflow.InputError, match="fa"):
        chain_pipeline([]).run(x=1, a=5)


# --- A3.7 Outputs and reports ------------------------------------------------------------------


@pytest.fixture(params=["fast", "callbacks"])
def path_kind(request: pytest.FixtureRequest) -> str:
    """Run without callbacks (fast path) or with a RecordingCallback (general path)."""
    return str(request.param)


def with_path(pipeline: Pipeline, kind: str) -> Pipeline:
    return pipeline.with_callbacks([RecordingCallback()]) if kind == "callbacks" else pipeline


def test_a3_7_outputs_equals_plain_dict_and_report_is_ok(path_kind: str) -> None:
    result = with_path(Pipeline([twice]), path_kind).run(x=1)

    assert result == {"a": 2}
    assert {"a": 2} == result  # noqa: SIM300 - equality from the plain dict side too
    assert isinstance(result, dict)
    assert result.report.status == "ok"


def test_a3_7_outputs_serialise_as_json_and_pickle_as_plain_dict(path_kind: str) -> None:
    result = with_path(Pipeline([twice]), path_kind).run(x=1)

    assert json.loads(json.dumps(result)) == {"a": 2}
    restored = pickle.loads(pickle.dumps(result))
    assert restored == {"a": 2}
    assert type(restored) is dict


def test_a3_7_report_lists_one_executed_record_per_node(path_kind: str) -> None:
    calls: list[str] = []
    result = with_path(s02_pipeline(calls), path_kind).run(x=1)

    records = result.report.records
    assert [r.node for r in records] == ["fa", "fbx", "fb"]
    assert all(r.status == "executed" for r in records)
    assert all(r.duration_s is not None and r.duration_s >= 0 for r in records)


def test_a3_7_report_of_a_selection_lists_only_executed_nodes(path_kind: str) -> None:
    result = with_path(s02_pipeline([]), path_kind).run(x=1, output_nodes=["b"])

    assert [r.node for r in result.report.records] == ["fa", "fb"]


def test_a3_7_failed_run_report_has_failed_status_and_failed_record(path_kind: str) -> None:
    pipeline = with_path(Pipeline([twice, explode], name="failing"), path_kind)

    with nestflow.capture() as cap, pytest.raises(RuntimeError, match="cannot handle 2"):
        pipeline.run(x=1)

    report = cap.last
    assert report.status == "failed"
    statuses = {r.node: r.status for r in report.records}
    assert statuses == {"twice": "executed", "explode": "failed"}


def test_a3_7_failure_keeps_exception_type_and_notes_name_the_node(path_kind: str) -> None:
    pipeline = with_path(Pipeline([twice, explode], name="failing"), path_kind)

    with pytest.raises(RuntimeError) as caught:
        pipeline.run(x=1)

    assert type(caught.value) is RuntimeError
    assert any("failing > explode" in note for note in caught.value.__notes__)


# --- general path vs fast path -----------------------------------------------------------------


def test_a3_run_with_callback_gives_same_results_as_without(node_backend: LocalBackend) -> None:
    recorder = RecordingCallback()
    plain = s02_pipeline([]).with_backend(node_backend)
    observed = plain.with_callbacks([recorder])

    assert observed.run(x=3) == plain.run(x=3) == {"a": 30, "bx": 103, "b": 60}
    assert sorted(recorder.names("node_end")) == ["fa", "fb", "fbx"]


def test_a3_run_with_async_node_awaits_it_for_downstream_nodes(
    node_backend: LocalBackend,
) -> None:
    @node(output_name="page")
    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        return url.upper()

    @node(output_name="size")
    def size(page: str) -> int:
        assert isinstance(page, str)
        return len(page)

    pipeline = Pipeline([fetch, size]).with_backend(node_backend)

    assert pipeline.run(url="abc") == {"page": "ABC", "size": 3}


def test_a3_run_with_callback_records_node_events_in_dependency_order(
    node_backend: LocalBackend,
) -> None:
    recorder = RecordingCallback()
    chain_pipeline([]).with_backend(node_backend).with_callbacks([recorder]).run(x=1)

    assert recorder.events == [
        ("pipeline_start", "chain"),
        ("node_start", "fa"),
        ("node_end", "fa"),
        ("node_start", "fb"),
        ("node_end", "fb"),
        ("pipeline_end", "chain"),
    ]


def test_a3_independent_nodes_all_run_in_every_mode(node_backend: LocalBackend) -> None:
    calls: list[str] = []

    result = s02_pipeline(calls).with_backend(node_backend).run(x=2)

    assert result == {"a": 20, "bx": 102, "b": 40}
    assert sorted(calls) == ["fa", "fb", "fbx"]


# --- A3.8 async callers ------------------------------------------------------------------------


def async_pipeline() -> Pipeline:
    @node(output_name="a")
    async def slow_double(x: int) -> int:
        await asyncio.sleep(0.001)
        return x * 2

    @node(output_name="b")
    def plus_one(a: int) -> int:
        return a + 1

    return Pipeline([slow_double, plus_one], name="asyncy")


def test_a3_8_sync_run_inside_running_event_loop_completes() -> None:
    pipeline = async_pipeline()

    async def main() -> Any:
        return pipeline.run(x=4)

    assert asyncio.run(main()) == {"a": 8, "b": 9}


def test_a3_8_sync_run_of_sync_pipeline_inside_running_event_loop_completes() -> None:
    pipeline = chain_pipeline([]).with_callbacks([RecordingCallback()])

    async def main() -> Any:
        return pipeline.run(x=1, output_name="b")

    assert asyncio.run(main()) == 6


def test_a3_8_arun_returns_same_value_as_run() -> None:
    pipeline = async_pipeline()

    async def main() -> tuple[Any, Any]:
        return pipeline.run(x=4), await pipeline.arun(x=4)

    synchronous, asynchronous = asyncio.run(main())
    assert synchronous == asynchronous == {"a": 8, "b": 9}
    assert asynchronous.report.status == "ok"


def test_a3_8_arun_supports_output_name() -> None:
    pipeline = async_pipeline()

    assert asyncio.run(pipeline.arun({"x": 1}, output_name="b")) == 3


def test_a3_8_arun_validates_inputs() -> None:
    with pytest.raises(MissingInputError):
        asyncio.run(async_pipeline().arun())


# --- A3.9 capture ------------------------------------------------------------------------------


def test_a3_9_capture_keeps_report_of_a_bare_value_run(path_kind: str) -> None:
    pipeline = with_path(s02_pipeline([]), path_kind)

    with nestflow.capture() as cap:
        value = pipeline.run(x=1, output_name="b")

    assert value == 20
    assert len(cap.reports) == 1
    assert cap.last is cap.reports[0]
    assert cap.last.status == "ok"
    assert cap.last.pipeline == "s02"


def test_a3_9_capture_sees_nothing_outside_its_block() -> None:
    pipeline = s02_pipeline([])
    with nestflow.capture() as cap:
        pass
    pipeline.run(x=1)

    assert cap.reports == []


def test_a3_9_capture_separates_concurrent_threads() -> None:
    left = chain_pipeline([]).with_name("left")
    right = chain_pipeline([]).with_name("right")
    barrier = threading.Barrier(2)
    captured: dict[str, list[str]] = {}

    def work(pipeline: Pipeline, runs: int) -> None:
        with nestflow.capture() as cap:
            barrier.wait(timeout=5)
            for _ in range(runs):
                pipeline.run(x=1)
            barrier.wait(timeout=5)
        captured[pipeline.name] = [r.pipeline for r in cap.reports]

    threads = [
        threading.Thread(target=work, args=(left, 2)),
        threading.Thread(target=work, args=(right, 1)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert captured == {"left": ["left", "left"], "right": ["right"]}
