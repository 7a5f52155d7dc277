"""The run report: SPEC section 9.5 basics (ids, status, records, stats, JSON).

Runs without callbacks take the sequential fast path, which keeps only timestamps and builds
its records lazily; runs with a callback take the general path, which records as it goes.
Both must produce the same records, durations aside.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from nestflow import (
    NodeRecord,
    Pipeline,
    PipelineCallback,
    RunReport,
    capture,
    node,
)


@node(output_name="doubled")
def double(x: int) -> int:
    return 2 * x


@node(output_name="incremented")
def add_one(doubled: int) -> int:
    return doubled + 1


@node(output_name="result")
def square(incremented: int) -> int:
    return incremented**2


@node(output_name="checked")
def reject_three(incremented: int) -> int:
    if incremented == 3:
        raise ValueError("three is rejected")
    return incremented


HEX32 = re.compile(r"[0-9a-f]{32}")


def _nested() -> Pipeline:
    """``outer = [middle, square]``, ``middle = [inner, add_one]``, ``inner = [double]``."""
    inner = Pipeline([double], name="inner")
    middle = Pipeline([inner, add_one], name="middle")
    return Pipeline([middle, square], name="outer")


def _nested_map() -> Pipeline:
    """``outer = [each]``, where ``each`` maps ``inner = [double, add_one]`` over ``xs``."""
    inner = Pipeline([double, add_one], name="inner")
    each = inner.as_node(
        name="each",
        map_over="xs",
        input_mapping={"xs": "x"},
        output_mapping={"incremented": "incremented_all"},
    )
    return Pipeline([each], name="outer")


def _fields(record: NodeRecord) -> tuple[Any, ...]:
    return (
        record.path,
        record.node,
        record.pipeline,
        record.depth,
        record.item_path,
        record.status,
    )


def _without_durations(records: list[NodeRecord]) -> list[NodeRecord]:
    return [dataclasses.replace(record, duration_s=None) for record in records]


# --- identity and status ----------------------------------------------------------------------


def test_report_carries_run_id_trace_id_pipeline_status_and_duration() -> None:
    report = _nested().run(x=1).report

    assert isinstance(report, RunReport)
    assert HEX32.fullmatch(report.run_id)
    assert HEX32.fullmatch(report.trace_id)
    assert report.pipeline == "outer"
    assert report.status == "ok"
    assert report.duration_s >= 0.0
    assert report.errors == []
    assert report.callback_failures == 0


def test_each_run_gets_its_own_run_id_and_trace_id() -> None:
    pipeline = _nested()

    first, second = pipeline.run(x=1).report, pipeline.run(x=1).report

    assert first.run_id != second.run_id
    assert first.trace_id != second.trace_id


def test_map_report_names_the_mapped_pipeline() -> None:
    result = Pipeline([double], name="p").map(x=[1, 2], map_over="x")

    assert result.report.pipeline == "p"
    assert result.report.status == "ok"


@pytest.mark.parametrize("callbacks", [[], [PipelineCallback()]], ids=["fast", "general"])
def test_failed_run_report_has_status_failed(callbacks: list[Any]) -> None:
    pipeline = Pipeline([double, add_one, reject_three], name="p").with_callbacks(callbacks)

    with capture() as cap, pytest.raises(ValueError, match="three is rejected"):
        pipeline.run(x=1)

    [report] = cap.reports
    assert report.status == "failed"
    assert report.pipeline == "p"
    assert report.duration_s >= 0.0


@pytest.mark.parametrize("callbacks", [[], [PipelineCallback()]], ids=["fast", "general"])
def test_failed_run_records_the_failing_node_as_failed(callbacks: list[Any]) -> None:
    pipeline = Pipeline([double, add_one, reject_three, square], name="p")

    with capture() as cap, pytest.raises(ValueError):
        pipeline.with_callbacks(callbacks).run(x=1)

    assert [(r.node, r.status) for r in cap.last.records] == [
        ("double", "executed"),
        ("add_one", "executed"),
        ("reject_three", "failed"),
    ]


def test_capture_gives_the_report_of_a_bare_value_run() -> None:
    with capture() as cap:
        value = _nested().run(x=1, output_name="result")

    assert value == 9
    assert cap.last.status == "ok"
    assert [r.node for r in cap.last.records] == ["double", "add_one", "square"]


# --- records --------------------------------------------------------------------------------


def test_records_of_a_flat_run_name_path_node_pipeline_and_depth() -> None:
    report = Pipeline([double, add_one], name="p").run(x=1).report

    assert [_fields(r) for r in report.records] == [
        ("p > double", "double", "p", 0, (), "executed"),
        ("p > add_one", "add_one", "p", 0, (), "executed"),
    ]
    assert all(r.duration_s is not None and r.duration_s >= 0.0 for r in report.records)
    assert all(r.attempts == 1 for r in report.records)


def test_records_of_a_nested_run_carry_the_nested_path_and_depth() -> None:
    report = _nested().run(x=1).report

    assert [_fields(r) for r in report.records] == [
        ("outer > middle > inner > double", "double", "inner", 2, (), "executed"),
        ("outer > middle > add_one", "add_one", "middle", 1, (), "executed"),
        ("outer > square", "square", "outer", 0, (), "executed"),
    ]


def test_records_of_a_map_have_one_record_per_node_and_item() -> None:
    report = Pipeline([double, add_one], name="p").map(x=[1, 2], map_over="x").report

    assert [_fields(r) for r in report.records] == [
        ("p > double", "double", "p", 0, (0,), "executed"),
        ("p > add_one", "add_one", "p", 0, (0,), "executed"),
        ("p > double", "double", "p", 0, (1,), "executed"),
        ("p > add_one", "add_one", "p", 0, (1,), "executed"),
    ]


def test_records_of_a_map_over_node_carry_the_item_path() -> None:
    report = _nested_map().run(xs=[1, 2]).report

    assert [_fields(r) for r in report.records] == [
        ("outer > inner > double", "double", "inner", 1, (0,), "executed"),
        ("outer > inner > add_one", "add_one", "inner", 1, (0,), "executed"),
        ("outer > inner > double", "double", "inner", 1, (1,), "executed"),
        ("outer > inner > add_one", "add_one", "inner", 1, (1,), "executed"),
    ]


def test_records_of_a_map_over_a_mapped_node_carry_both_indices() -> None:
    report = _nested_map().map(xs=[[1, 2], [3]], map_over="xs").report

    assert [(r.node, r.item_path) for r in report.records] == [
        ("double", (0, 0)),
        ("add_one", (0, 0)),
        ("double", (0, 1)),
        ("add_one", (0, 1)),
        ("double", (1, 0)),
        ("add_one", (1, 0)),
    ]


def test_records_cover_only_the_selected_nodes() -> None:
    report = _nested().run(x=1, output_nodes=["incremented"]).report

    assert [r.node for r in report.records] == ["double", "add_one"]


def test_records_carry_the_backend_label_of_their_level() -> None:
    report = _nested().run(x=1).report

    assert {r.backend for r in report.records} == {"Local(seq)"}
    assert {r.cache for r in report.records} == {None}


# --- fast path and general path agree ---------------------------------------------------------


def _with(pipeline: Pipeline, callbacks: list[Any]) -> Pipeline:
    return pipeline.with_callbacks(callbacks) if callbacks else pipeline


RUNS: dict[str, Callable[[list[Any]], Any]] = {
    "flat": lambda cbs: _with(Pipeline([double, add_one, square], name="p"), cbs).run(x=1),
    "nested": lambda cbs: _with(_nested(), cbs).run(x=1),
    "selected": lambda cbs: _with(_nested(), cbs).run(x=1, output_nodes=["incremented"]),
    "map": lambda cbs: _with(Pipeline([double, add_one], name="p"), cbs).map(
        x=[1, 2, 3], map_over="x"
    ),
    "nested_map": lambda cbs: _with(_nested(), cbs).map(x=[1, 2], map_over="x"),
    "map_over_node": lambda cbs: _with(_nested_map(), cbs).run(xs=[1, 2, 3]),
    "double_map": lambda cbs: _with(_nested_map(), cbs).map(xs=[[1, 2], [], [3]], map_over="xs"),
}


@pytest.mark.parametrize("scenario", sorted(RUNS))
def test_records_are_identical_with_and_without_a_callback(scenario: str) -> None:
    fast = RUNS[scenario]([])
    general = RUNS[scenario]([PipelineCallback()])

    assert fast == general
    assert fast.report.records
    assert _without_durations(fast.report.records) == _without_durations(general.report.records)


@pytest.mark.parametrize("scenario", sorted(RUNS))
def test_record_durations_are_non_negative_on_both_paths(scenario: str) -> None:
    for callbacks in ([], [PipelineCallback()]):
        records = RUNS[scenario](callbacks).report.records
        assert all(r.duration_s is not None and r.duration_s >= 0.0 for r in records)


def test_failed_run_records_are_identical_with_and_without_a_callback() -> None:
    failing = Pipeline([_nested(), reject_three], name="top")

    with capture() as cap:
        for callbacks in ([], [PipelineCallback()]):
            with pytest.raises(ValueError):
                _with(failing, callbacks).run(x=1)

    fast, general = cap.reports
    assert _without_durations(fast.records) == _without_durations(general.records)


def test_failed_map_item_records_are_identical_with_and_without_a_callback() -> None:
    pipeline = Pipeline([double, add_one, reject_three], name="p")

    with capture() as cap:
        for callbacks in ([], [PipelineCallback()]):
            with pytest.raises(ValueError):
                _with(pipeline, callbacks).map(x=[0, 1, 2], map_over="x")

    fast, general = cap.reports
    assert [(r.node, r.item_path, r.status) for r in fast.records] == [
        ("double", (0,), "executed"),
        ("add_one", (0,), "executed"),
        ("reject_three", (0,), "executed"),
        ("double", (1,), "executed"),
        ("add_one", (1,), "executed"),
        ("reject_three", (1,), "failed"),
    ]
    assert _without_durations(fast.records) == _without_durations(general.records)


# --- stats ------------------------------------------------------------------------------------


def test_stats_by_node_counts_executions_per_node_path() -> None:
    report = _nested_map().map(xs=[[1, 2], [3]], map_over="xs").report

    stats = report.stats(by="node")

    assert set(stats) == {"outer > each > double", "outer > each > add_one"}
    for row in stats.values():
        assert row["executed"] == 3
        assert row["cached"] == 0
        assert row["failed"] == 0
        assert row["skipped"] == 0
        assert row["duration_s"] >= 0.0


def test_stats_by_pipeline_counts_executions_per_pipeline_path() -> None:
    report = _nested().map(x=[1, 2], map_over="x").report

    stats = report.stats(by="pipeline")

    assert {key: row["executed"] for key, row in stats.items()} == {
        "outer > middle > inner": 2,
        "outer > middle": 2,
        "outer": 2,
    }


def test_stats_count_failures() -> None:
    pipeline = Pipeline([double, add_one, reject_three], name="p")

    with capture() as cap, pytest.raises(ValueError):
        pipeline.map(x=[0, 1], map_over="x")

    stats = cap.last.stats(by="node")
    assert stats["p > reject_three"]["executed"] == 1
    assert stats["p > reject_three"]["failed"] == 1
    assert cap.last.stats(by="pipeline")["p"]["executed"] == 5


def test_stats_default_is_by_node() -> None:
    report = _nested().run(x=1).report

    assert report.stats() == report.stats(by="node")


def test_stats_rejects_an_unknown_grouping() -> None:
    report = _nested().run(x=1).report

    with pytest.raises(ValueError, match="node"):
        report.stats(by="level")  # type: ignore[arg-type]


# --- to_dict / to_json ------------------------------------------------------------------------


def test_to_json_round_trips_through_json_loads() -> None:
    report = _nested_map().map(xs=[[1, 2], [3]], map_over="xs").report

    loaded = json.loads(report.to_json())

    assert loaded == json.loads(json.dumps(report.to_dict()))
    assert loaded["run_id"] == report.run_id
    assert loaded["trace_id"] == report.trace_id
    assert loaded["pipeline"] == "outer"
    assert loaded["status"] == "ok"
    assert loaded["duration_s"] == report.duration_s
    assert len(loaded["records"]) == 6
    assert loaded["records"][2]["path"] == "outer > inner > double"
    assert loaded["records"][2]["item_path"] == [0, 1]


def test_to_dict_lists_every_record_with_its_fields() -> None:
    data = _nested().run(x=1).report.to_dict()

    assert [record["path"] for record in data["records"]] == [
        "outer > middle > inner > double",
        "outer > middle > add_one",
        "outer > square",
    ]
    first = data["records"][0]
    for key in ("node", "pipeline", "depth", "item_path", "status", "duration_s"):
        assert key in first
    assert first["depth"] == 2
    assert first["status"] == "executed"


def test_failed_report_round_trips_through_json() -> None:
    with capture() as cap, pytest.raises(ValueError):
        Pipeline([double, add_one, reject_three], name="p").run(x=1)

    loaded = json.loads(cap.last.to_json(indent=2))

    assert loaded["status"] == "failed"
    assert loaded["records"][-1]["status"] == "failed"
    assert loaded["records"][-1]["node"] == "reject_three"


# --- the live report ----------------------------------------------------------------------------


def test_ctx_report_is_the_live_report_filled_as_nodes_finish() -> None:
    seen: list[list[str]] = []

    class Peek(PipelineCallback):
        def on_node_start(self, node_id: str, inputs: Any, ctx: Any) -> None:
            seen.append([r.node for r in ctx.report.records])

    result = _nested().with_callbacks([Peek()]).run(x=1)

    assert seen == [[], ["double"], ["double", "add_one"]]
    assert [r.node for r in result.report.records] == ["double", "add_one", "square"]
