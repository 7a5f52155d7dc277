"""Callback events and their context: SPEC sections 9.1 and 9.2 (acceptance A9.1 to A9.8).

The cache parts (``on_node_cached``, ``on_map_item_cached``) wait for the issue that adds a
cache store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from nestflow import (
    CallbackContext,
    CallbackWarning,
    LocalBackend,
    Pipeline,
    PipelineCallback,
    RunReport,
    capture,
    node,
)
from nestflow.testing import RecordingCallback


@node(output_name="doubled")
def double(x: int) -> int:
    return 2 * x


@node(output_name="incremented")
def add_one(doubled: int) -> int:
    return doubled + 1


@node(output_name="result")
def times_two(incremented: int) -> int:
    return incremented * 2


@node(output_name="exploded")
def explode(x: int) -> int:
    raise ValueError(f"cannot explode {x}")


STRUCTURE = ("pipeline_start", "pipeline_end", "nested_start", "nested_end")


def _structure(rec: RecordingCallback) -> list[tuple[tuple[Any, ...], int]]:
    """Pipeline and nested-pipeline events with the depth they fired at."""
    return [
        (event, ctx.depth)
        for event, ctx in zip(rec.events, rec.contexts, strict=True)
        if event[0] in STRUCTURE
    ]


def _three_levels(callbacks: list[Any]) -> Pipeline:
    """``outer`` contains ``middle`` contains ``inner``; ``times_two`` runs in ``middle``."""
    inner = Pipeline([double], name="inner")
    middle = Pipeline([inner, add_one, times_two], name="middle")
    return Pipeline([middle], name="outer", callbacks=callbacks)


class HookLog(PipelineCallback):
    """Records every hook with all its arguments (the context last)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_pipeline_start(self, pipeline_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
        self.calls.append(("on_pipeline_start", pipeline_id, inputs, ctx))

    def on_pipeline_end(
        self, pipeline_id: str, outputs: Mapping[str, Any], duration: float, ctx: Any
    ) -> None:
        self.calls.append(("on_pipeline_end", pipeline_id, outputs, duration, ctx))

    def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
        self.calls.append(("on_node_start", node_id, inputs, ctx))

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: Any
    ) -> None:
        self.calls.append(("on_node_end", node_id, outputs, duration, ctx))

    def on_error(self, node_id: str, error: BaseException, ctx: Any) -> None:
        self.calls.append(("on_error", node_id, error, ctx))

    def on_nested_pipeline_start(self, parent_id: str, child_id: str, ctx: Any) -> None:
        self.calls.append(("on_nested_pipeline_start", parent_id, child_id, ctx))

    def on_nested_pipeline_end(
        self, parent_id: str, child_id: str, duration: float, ctx: Any
    ) -> None:
        self.calls.append(("on_nested_pipeline_end", parent_id, child_id, duration, ctx))

    def on_map_start(self, node_id: str, total_items: int, ctx: Any) -> None:
        self.calls.append(("on_map_start", node_id, total_items, ctx))

    def on_map_item_start(
        self, node_id: str, item_index: int, item: Mapping[str, Any], ctx: Any
    ) -> None:
        self.calls.append(("on_map_item_start", node_id, item_index, item, ctx))

    def on_map_item_end(self, node_id: str, item_index: int, duration: float, ctx: Any) -> None:
        self.calls.append(("on_map_item_end", node_id, item_index, duration, ctx))

    def on_map_end(self, node_id: str, total_duration: float, ctx: Any) -> None:
        self.calls.append(("on_map_end", node_id, total_duration, ctx))

    def of(self, hook: str) -> list[tuple[Any, ...]]:
        """The calls of one hook, without the hook name."""
        return [call[1:] for call in self.calls if call[0] == hook]


# --- A9.1 node events in order, every callback gets every event ------------------------------


def test_a9_1_node_events_arrive_in_execution_order() -> None:
    rec = RecordingCallback()

    Pipeline([add_one, double], name="p", callbacks=[rec]).run(x=1)

    assert rec.events == [
        ("pipeline_start", "p"),
        ("node_start", "double"),
        ("node_end", "double"),
        ("node_start", "add_one"),
        ("node_end", "add_one"),
        ("pipeline_end", "p"),
    ]


def test_a9_1_durations_are_non_negative_floats() -> None:
    log = HookLog()

    Pipeline([double, add_one], name="p", callbacks=[log]).run(x=1)

    durations = [call[2] for call in log.of("on_node_end")]
    durations += [call[2] for call in log.of("on_pipeline_end")]
    assert len(durations) == 3
    for duration in durations:
        assert isinstance(duration, float)
        assert duration >= 0.0


def test_a9_1_two_callbacks_both_receive_every_event() -> None:
    first, second = RecordingCallback(), RecordingCallback()

    _three_levels([first, second]).run(x=1)

    assert len(first.events) == 16
    assert first.events == second.events


def test_callbacks_of_one_level_are_called_in_list_order() -> None:
    order: list[str] = []

    class Named(PipelineCallback):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
            order.append(f"{self.name}:{node_id}")

    Pipeline([double, add_one], callbacks=[Named("b"), Named("a")]).run(x=1)

    assert order == ["b:double", "a:double", "b:add_one", "a:add_one"]


# --- hook arguments -----------------------------------------------------------------------------


def test_node_start_receives_the_node_inputs_and_node_end_its_outputs() -> None:
    log = HookLog()

    Pipeline([double, add_one], name="p", callbacks=[log]).run(x=4)

    assert [call[:2] for call in log.of("on_node_start")] == [
        ("double", {"x": 4}),
        ("add_one", {"doubled": 8}),
    ]
    assert [call[:2] for call in log.of("on_node_end")] == [
        ("double", {"doubled": 8}),
        ("add_one", {"incremented": 9}),
    ]


def test_pipeline_start_receives_inputs_and_pipeline_end_outputs() -> None:
    log = HookLog()

    Pipeline([double, add_one], name="p", callbacks=[log]).run(x=4)

    assert log.of("on_pipeline_start")[0][:2] == ("p", {"x": 4})
    assert log.of("on_pipeline_end")[0][:2] == ("p", {"doubled": 8, "incremented": 9})


def test_nested_hooks_receive_parent_and_child_names_and_a_duration() -> None:
    log = HookLog()

    _three_levels([log]).run(x=1)

    assert [call[:2] for call in log.of("on_nested_pipeline_start")] == [
        ("outer", "middle"),
        ("middle", "inner"),
    ]
    ends = log.of("on_nested_pipeline_end")
    assert [call[:2] for call in ends] == [("middle", "inner"), ("outer", "middle")]
    assert all(call[2] >= 0.0 for call in ends)


# --- A9.2 shared store and hierarchy ----------------------------------------------------------


class Setter(PipelineCallback):
    def on_pipeline_start(self, pipeline_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
        if ctx.depth == 0:
            ctx.set("token", f"set by {pipeline_id}")


class Getter(PipelineCallback):
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, Any]] = []

    def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
        self.seen.append((node_id, ctx.depth, ctx.get("token", "missing")))


def test_a9_2_value_set_by_one_callback_is_visible_to_another() -> None:
    getter = Getter()

    Pipeline([double], name="p", callbacks=[Setter(), getter]).run(x=1)

    assert getter.seen == [("double", 0, "set by p")]


def test_ctx_store_is_shared_across_levels_of_one_run() -> None:
    getter = Getter()

    _three_levels([Setter(), getter]).run(x=1)

    assert getter.seen == [
        ("double", 2, "set by outer"),
        ("add_one", 1, "set by outer"),
        ("times_two", 1, "set by outer"),
    ]


def test_ctx_store_starts_empty_for_each_run() -> None:
    getter = Getter()
    pipeline = Pipeline([double], name="p", callbacks=[getter])
    with_setter = pipeline.with_callbacks([Setter(), getter])

    with_setter.run(x=1)
    pipeline.run(x=1)

    assert [seen[2] for seen in getter.seen] == ["set by p", "missing"]


def test_ctx_get_returns_the_default_for_unknown_keys() -> None:
    got: list[Any] = []

    class Reader(PipelineCallback):
        def on_pipeline_start(self, pipeline_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
            got.extend([ctx.get("nope"), ctx.get("nope", 7)])

    Pipeline([double], callbacks=[Reader()]).run(x=1)

    assert got == [None, 7]


def test_a9_2_hierarchy_path_and_depth_grow_by_one_per_level() -> None:
    rec = RecordingCallback()
    level2 = Pipeline([double], name="level2")
    level1 = Pipeline([level2, add_one], name="level1")
    root = Pipeline([level1, times_two], name="root", callbacks=[rec])

    root.run(x=1)

    starts = {
        event[1]: (ctx.hierarchy_path, ctx.depth, ctx.current_pipeline_id, ctx.parent_pipeline_id)
        for event, ctx in zip(rec.events, rec.contexts, strict=True)
        if event[0] == "pipeline_start"
    }
    assert starts == {
        "root": (("root",), 0, "root", None),
        "level1": (("root", "level1"), 1, "level1", "root"),
        "level2": (("root", "level1", "level2"), 2, "level2", "level1"),
    }


# --- A9.3 the nested sequence ------------------------------------------------------------------


def test_a9_3_nested_sequence_has_ten_structural_events_with_depths() -> None:
    rec = RecordingCallback()

    _three_levels([rec]).run(x=1)

    assert _structure(rec) == [
        (("pipeline_start", "outer"), 0),
        (("nested_start", "outer", "middle"), 0),
        (("pipeline_start", "middle"), 1),
        (("nested_start", "middle", "inner"), 1),
        (("pipeline_start", "inner"), 2),
        (("pipeline_end", "inner"), 2),
        (("nested_end", "middle", "inner"), 1),
        (("pipeline_end", "middle"), 1),
        (("nested_end", "outer", "middle"), 0),
        (("pipeline_end", "outer"), 0),
    ]


@pytest.mark.parametrize("mode", ["sequential", "threaded", "async"])
def test_a9_3_full_nested_sequence_places_node_events_at_their_level(mode: str) -> None:
    rec = RecordingCallback()
    backend = LocalBackend(node_execution=mode, max_workers=2)  # type: ignore[arg-type]

    _three_levels([rec]).with_backend(backend).run(x=1)

    assert [(event, ctx.depth) for event, ctx in zip(rec.events, rec.contexts, strict=True)] == [
        (("pipeline_start", "outer"), 0),
        (("nested_start", "outer", "middle"), 0),
        (("pipeline_start", "middle"), 1),
        (("nested_start", "middle", "inner"), 1),
        (("pipeline_start", "inner"), 2),
        (("node_start", "double"), 2),
        (("node_end", "double"), 2),
        (("pipeline_end", "inner"), 2),
        (("nested_end", "middle", "inner"), 1),
        (("node_start", "add_one"), 1),
        (("node_end", "add_one"), 1),
        (("node_start", "times_two"), 1),
        (("node_end", "times_two"), 1),
        (("pipeline_end", "middle"), 1),
        (("nested_end", "outer", "middle"), 0),
        (("pipeline_end", "outer"), 0),
    ]


def test_a9_3_times_two_runs_at_hierarchy_outer_middle() -> None:
    rec = RecordingCallback()

    _three_levels([rec]).run(x=1)

    contexts = [
        ctx
        for event, ctx in zip(rec.events, rec.contexts, strict=True)
        if event[0] in ("node_start", "node_end") and event[1] == "times_two"
    ]
    assert len(contexts) == 2
    for ctx in contexts:
        assert ctx.hierarchy_path == ("outer", "middle")
        assert list(ctx.hierarchy_path) == ["outer", "middle"]
        assert ctx.node_path == ("outer", "middle", "times_two")


def test_a9_3_nested_hooks_fire_in_the_parent_context() -> None:
    rec = RecordingCallback()

    _three_levels([rec]).run(x=1)

    nested = [
        (event, ctx.current_pipeline_id, ctx.hierarchy_path)
        for event, ctx in zip(rec.events, rec.contexts, strict=True)
        if event[0] in ("nested_start", "nested_end")
    ]
    assert nested == [
        (("nested_start", "outer", "middle"), "outer", ("outer",)),
        (("nested_start", "middle", "inner"), "middle", ("outer", "middle")),
        (("nested_end", "middle", "inner"), "middle", ("outer", "middle")),
        (("nested_end", "outer", "middle"), "outer", ("outer",)),
    ]


def test_a9_3_nested_start_precedes_child_start_and_nested_end_follows_child_end() -> None:
    rec = RecordingCallback()

    _three_levels([rec]).run(x=1)

    events = rec.events
    for parent, child in (("outer", "middle"), ("middle", "inner")):
        start = events.index(("nested_start", parent, child))
        end = events.index(("nested_end", parent, child))
        assert events[start + 1] == ("pipeline_start", child)
        assert events[end - 1] == ("pipeline_end", child)


# --- node_path, run_id, config, report ----------------------------------------------------------


def test_node_path_is_set_for_node_events_and_none_for_level_events() -> None:
    rec = RecordingCallback()

    _three_levels([rec]).run(x=1)

    paths = {event: ctx.node_path for event, ctx in zip(rec.events, rec.contexts, strict=True)}
    assert paths[("node_start", "double")] == ("outer", "middle", "inner", "double")
    assert paths[("node_end", "add_one")] == ("outer", "middle", "add_one")
    assert paths[("pipeline_start", "inner")] is None
    assert paths[("nested_start", "outer", "middle")] is None


def test_run_id_and_trace_id_are_equal_across_one_run_and_differ_between_runs() -> None:
    rec = RecordingCallback()
    pipeline = _three_levels([rec])

    pipeline.run(x=1)
    first = list(rec.contexts)
    pipeline.run(x=2)
    second = rec.contexts[len(first) :]

    assert len({ctx.run_id for ctx in first}) == 1
    assert len({ctx.trace_id for ctx in first}) == 1
    assert len({ctx.run_id for ctx in second}) == 1
    assert first[0].run_id != second[0].run_id
    assert first[0].trace_id != second[0].trace_id


def test_ctx_run_id_and_report_match_the_returned_report() -> None:
    rec = RecordingCallback()

    result = _three_levels([rec]).run(x=1)

    assert {ctx.run_id for ctx in rec.contexts} == {result.report.run_id}
    assert {ctx.trace_id for ctx in rec.contexts} == {result.report.trace_id}
    assert all(ctx.report is result.report for ctx in rec.contexts)
    assert isinstance(rec.contexts[0].report, RunReport)


def test_ctx_is_a_callback_context_with_attempt_one_and_no_error_on_success() -> None:
    rec = RecordingCallback()

    Pipeline([double], callbacks=[rec]).run(x=1)

    for ctx in rec.contexts:
        assert isinstance(ctx, CallbackContext)
        assert ctx.attempt == 1
        assert ctx.error is None


def test_ctx_config_is_the_effective_config_of_the_event_level() -> None:
    rec = RecordingCallback()
    inner = Pipeline([double], name="inner", timeout=7)
    outer = Pipeline([inner, add_one], name="outer", callbacks=[rec], timeout=3)

    outer.run(x=1)

    configs = {
        event[1]: ctx.config
        for event, ctx in zip(rec.events, rec.contexts, strict=True)
        if event[0] == "node_start"
    }
    assert configs["double"].timeout == 7
    assert configs["double"].source("timeout") == "explicit"
    assert configs["double"].source("callbacks") == "inherited"
    assert configs["add_one"].timeout == 3
    assert configs["add_one"].origin("callbacks") == "outer"


# --- A9.4 map events ----------------------------------------------------------------------------


def test_a9_4_map_events_wrap_items_in_order() -> None:
    rec = RecordingCallback()

    Pipeline([double], name="p", callbacks=[rec]).map(x=[1, 2, 3], map_over="x")

    assert [
        e for e in rec.events if e[0] in ("map_start", "item_start", "item_end", "map_end")
    ] == [
        ("map_start", 3),
        ("item_start", 0),
        ("item_end", 0),
        ("item_start", 1),
        ("item_end", 1),
        ("item_start", 2),
        ("item_end", 2),
        ("map_end",),
    ]


def test_a9_4_pipeline_start_and_end_fire_once_around_a_whole_map() -> None:
    rec = RecordingCallback()

    Pipeline([double], name="p", callbacks=[rec]).map(x=[1, 2, 3], map_over="x")

    assert rec.events[:2] == [("pipeline_start", "p"), ("map_start", 3)]
    assert rec.events[-2:] == [("map_end",), ("pipeline_end", "p")]
    assert rec.names("pipeline_start") == ["p"]
    assert rec.names("node_start") == ["double"] * 3


def test_a9_4_map_hooks_receive_the_pipeline_name_items_and_durations() -> None:
    log = HookLog()

    Pipeline([double], name="p", callbacks=[log]).map(x=[5, 6], map_over="x")

    assert [call[:2] for call in log.of("on_map_start")] == [("p", 2)]
    assert [call[:3] for call in log.of("on_map_item_start")] == [
        ("p", 0, {"x": 5}),
        ("p", 1, {"x": 6}),
    ]
    ends = log.of("on_map_item_end")
    assert [call[:2] for call in ends] == [("p", 0), ("p", 1)]
    assert all(call[2] >= 0.0 for call in ends)
    assert [call[0] for call in log.of("on_map_end")] == ["p"]
    assert log.of("on_map_end")[0][1] >= 0.0


@node(output_name="doubled")
def double_with_k(x: int, k: int = 0) -> int:
    return 2 * x + k


def test_map_item_start_item_holds_only_the_mapped_names() -> None:
    log = HookLog()

    Pipeline([double_with_k], name="p", callbacks=[log]).map(x=[5, 6], k=1, map_over="x")

    assert [call[2] for call in log.of("on_map_item_start")] == [{"x": 5}, {"x": 6}]


def test_item_index_and_item_path_are_set_inside_a_map_only() -> None:
    rec = RecordingCallback()

    Pipeline([double], name="p", callbacks=[rec]).map(x=[1, 2], map_over="x")

    located = [
        (event, ctx.item_index, ctx.item_path)
        for event, ctx in zip(rec.events, rec.contexts, strict=True)
    ]
    assert located == [
        (("pipeline_start", "p"), None, ()),
        (("map_start", 2), None, ()),
        (("item_start", 0), 0, (0,)),
        (("node_start", "double"), 0, (0,)),
        (("node_end", "double"), 0, (0,)),
        (("item_end", 0), 0, (0,)),
        (("item_start", 1), 1, (1,)),
        (("node_start", "double"), 1, (1,)),
        (("node_end", "double"), 1, (1,)),
        (("item_end", 1), 1, (1,)),
        (("map_end",), None, ()),
        (("pipeline_end", "p"), None, ()),
    ]


def _nested_map(callbacks: list[Any]) -> Pipeline:
    """``outer`` holds ``each``, a map_over node running ``inner = [double]`` over ``xs``."""
    inner = Pipeline([double], name="inner")
    each = inner.as_node(
        name="each",
        map_over="xs",
        input_mapping={"xs": "x"},
        output_mapping={"doubled": "doubled_all"},
    )
    return Pipeline([each], name="outer", callbacks=callbacks)


def test_mapped_nested_pipeline_events_follow_the_spec_order() -> None:
    rec = RecordingCallback()

    result = _nested_map([rec]).run(xs=[1, 2])

    assert result == {"doubled_all": [2, 4]}
    assert rec.events == [
        ("pipeline_start", "outer"),
        ("nested_start", "outer", "inner"),
        ("pipeline_start", "inner"),
        ("map_start", 2),
        ("item_start", 0),
        ("node_start", "double"),
        ("node_end", "double"),
        ("item_end", 0),
        ("item_start", 1),
        ("node_start", "double"),
        ("node_end", "double"),
        ("item_end", 1),
        ("map_end",),
        ("pipeline_end", "inner"),
        ("nested_end", "outer", "inner"),
        ("pipeline_end", "outer"),
    ]


def test_map_hooks_of_a_map_over_node_carry_the_node_id() -> None:
    log = HookLog()

    _nested_map([log]).run(xs=[1, 2])

    assert [call[:2] for call in log.of("on_map_start")] == [("each", 2)]
    assert [call[:2] for call in log.of("on_map_item_start")] == [("each", 0), ("each", 1)]
    assert [call[0] for call in log.of("on_map_end")] == ["each"]


def test_map_events_of_a_map_over_node_fire_at_the_child_depth() -> None:
    rec = RecordingCallback()

    _nested_map([rec]).run(xs=[1, 2])

    depths = {event[0]: ctx.depth for event, ctx in zip(rec.events, rec.contexts, strict=True)}
    assert depths["map_start"] == 1
    assert depths["item_start"] == 1
    assert depths["node_start"] == 1
    assert depths["nested_start"] == 0


def test_nested_maps_give_item_path_of_every_enclosing_map() -> None:
    rec = RecordingCallback()

    result = _nested_map([rec]).map(xs=[[1, 2], [3]], map_over="xs")

    assert result == {"doubled_all": [[2, 4], [6]]}
    located = [
        (ctx.item_index, ctx.item_path)
        for event, ctx in zip(rec.events, rec.contexts, strict=True)
        if event[0] == "node_start"
    ]
    assert located == [(0, (0, 0)), (1, (0, 1)), (0, (1, 0))]


def test_nested_map_item_events_carry_the_outer_item_in_item_path() -> None:
    rec = RecordingCallback()

    _nested_map([rec]).map(xs=[[1, 2], [3]], map_over="xs")

    items = [
        (event, ctx.item_path)
        for event, ctx in zip(rec.events, rec.contexts, strict=True)
        if event[0] in ("item_start", "map_start")
    ]
    assert items == [
        (("map_start", 2), ()),
        (("item_start", 0), (0,)),
        (("map_start", 2), (0,)),
        (("item_start", 0), (0, 0)),
        (("item_start", 1), (0, 1)),
        (("item_start", 1), (1,)),
        (("map_start", 1), (1,)),
        (("item_start", 0), (1, 0)),
    ]


# --- A9.5 failures ------------------------------------------------------------------------------


def _failing_three_levels(callbacks: list[Any]) -> Pipeline:
    level2 = Pipeline([explode], name="level2")
    level1 = Pipeline([level2], name="level1")
    return Pipeline([level1], name="root", callbacks=callbacks)


def test_a9_5_on_error_fires_once_with_the_failing_node_id_three_levels_deep() -> None:
    rec = RecordingCallback()

    with pytest.raises(ValueError, match="cannot explode 1"):
        _failing_three_levels([rec]).run(x=1)

    errors = [
        (event, ctx.depth)
        for event, ctx in zip(rec.events, rec.contexts, strict=True)
        if event[0] == "error"
    ]
    assert errors == [(("error", "explode", "ValueError"), 2)]


def test_a9_5_on_error_receives_the_raised_exception_with_ctx_error_set() -> None:
    log = HookLog()

    with pytest.raises(ValueError) as caught:
        _failing_three_levels([log]).run(x=1)

    [(node_id, error, ctx)] = log.of("on_error")
    assert node_id == "explode"
    assert error is caught.value
    assert ctx.error is caught.value
    assert ctx.node_path == ("root", "level1", "level2", "explode")


def test_a9_5_every_enclosing_level_ends_with_ctx_error_set() -> None:
    log = HookLog()

    with pytest.raises(ValueError) as caught:
        _failing_three_levels([log]).run(x=1)

    ends = log.of("on_pipeline_end")
    assert [call[0] for call in ends] == ["level2", "level1", "root"]
    assert all(call[3].error is caught.value for call in ends)
    assert [call[:2] for call in log.of("on_nested_pipeline_end")] == [
        ("level1", "level2"),
        ("root", "level1"),
    ]


def test_a9_5_failed_node_gets_no_node_end() -> None:
    rec = RecordingCallback()

    with pytest.raises(ValueError):
        _failing_three_levels([rec]).run(x=1)

    assert rec.names("node_start") == ["explode"]
    assert rec.names("node_end") == []


def test_a9_5_failing_map_item_ends_with_ctx_error_and_map_end_still_fires() -> None:
    log = HookLog()

    @node(output_name="checked")
    def check(x: int) -> int:
        if x == 2:
            raise ValueError("two is not allowed")
        return x

    with pytest.raises(ValueError, match="two is not allowed"):
        Pipeline([check], name="p", callbacks=[log]).map(x=[1, 2, 3], map_over="x")

    ends = {call[1]: call[3].error for call in log.of("on_map_item_end")}
    assert ends[0] is None
    assert isinstance(ends[1], ValueError)
    assert [call[0] for call in log.of("on_map_end")] == ["p"]
    assert [call[0] for call in log.of("on_error")] == ["check"]


# --- A9.6 inheritance, override, [] ------------------------------------------------------------


def test_a9_6_child_without_callbacks_inherits_the_parent_callbacks() -> None:
    rec = RecordingCallback()
    child = Pipeline([double], name="child")

    Pipeline([child, add_one], name="parent", callbacks=[rec]).run(x=1)

    assert rec.names("node_start") == ["double", "add_one"]
    assert rec.names("pipeline_start") == ["parent", "child"]


def test_a9_6_child_with_its_own_callbacks_overrides_the_parent_callbacks() -> None:
    parent_rec, child_rec = RecordingCallback(), RecordingCallback()
    child = Pipeline([double], name="child", callbacks=[child_rec])

    Pipeline([child, add_one], name="parent", callbacks=[parent_rec]).run(x=1)

    assert child_rec.events == [
        ("pipeline_start", "child"),
        ("node_start", "double"),
        ("node_end", "double"),
        ("pipeline_end", "child"),
    ]
    assert parent_rec.names("node_start") == ["add_one"]
    assert ("nested_start", "parent", "child") in parent_rec.events


def test_a9_6_child_with_empty_callbacks_hides_its_events() -> None:
    rec = RecordingCallback()
    child = Pipeline([double], name="child", callbacks=[])

    Pipeline([child, add_one], name="parent", callbacks=[rec]).run(x=1)

    assert rec.events == [
        ("pipeline_start", "parent"),
        ("nested_start", "parent", "child"),
        ("nested_end", "parent", "child"),
        ("node_start", "add_one"),
        ("node_end", "add_one"),
        ("pipeline_end", "parent"),
    ]


# --- A9.7 pipeline metadata ---------------------------------------------------------------------


def test_a9_7_pipeline_metadata_gives_node_count_and_ids_in_execution_order() -> None:
    seen: list[dict[str, Any]] = []

    class Meta(PipelineCallback):
        def on_pipeline_start(self, pipeline_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
            seen.append(ctx.get_pipeline_metadata("test"))

    Pipeline([times_two, add_one, double], name="test", callbacks=[Meta()]).run(x=1)

    [metadata] = seen
    assert metadata["total_nodes"] == 3
    assert list(metadata["node_ids"]) == ["double", "add_one", "times_two"]
    assert metadata["backend_label"] == "Local(seq)"
    assert metadata["cache_label"] == "No cache"
    assert metadata["mapped"] is False


def test_pipeline_metadata_of_a_nested_map_level_says_mapped() -> None:
    seen: dict[str, Any] = {}

    class Meta(PipelineCallback):
        def on_map_start(self, node_id: str, total_items: int, ctx: Any) -> None:
            seen["inner"] = ctx.get_pipeline_metadata("inner")
            seen["outer"] = ctx.get_pipeline_metadata("outer")

    _nested_map([Meta()]).run(xs=[1, 2])

    assert seen["inner"]["mapped"] is True
    assert seen["inner"]["total_nodes"] == 1
    assert seen["outer"]["mapped"] is False


def test_pipeline_metadata_of_a_root_map_says_mapped() -> None:
    seen: list[Any] = []

    class Meta(PipelineCallback):
        def on_map_start(self, node_id: str, total_items: int, ctx: Any) -> None:
            seen.append(ctx.get_pipeline_metadata("p")["mapped"])

    Pipeline([double], name="p", callbacks=[Meta()]).map(x=[1], map_over="x")

    assert seen == [True]


# --- A9.8 a failing callback ---------------------------------------------------------------------


class Broken(PipelineCallback):
    def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
        raise RuntimeError(f"broken on {node_id}")


def _callback_warnings(record: pytest.WarningsRecorder) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, CallbackWarning)]


def test_a9_8_a_raising_callback_gives_one_warning_and_unchanged_results() -> None:
    pipeline = Pipeline([double, add_one, times_two], name="p")
    expected = pipeline.run(x=1)

    with pytest.warns(CallbackWarning) as record:
        result = pipeline.with_callbacks([Broken()]).run(x=1)

    assert result == expected
    [message] = _callback_warnings(record)
    assert "Broken" in message
    assert "on_node_start" in message
    assert "broken on double" in message


def test_a9_8_other_callbacks_still_see_every_event() -> None:
    reference, rec = RecordingCallback(), RecordingCallback()
    pipeline = Pipeline([double, add_one, times_two], name="p")
    pipeline.with_callbacks([reference]).run(x=1)

    with pytest.warns(CallbackWarning):
        pipeline.with_callbacks([Broken(), rec]).run(x=1)

    assert rec.events == reference.events
    assert len(rec.events) == 8


def test_a9_8_report_counts_every_callback_failure() -> None:
    pipeline = Pipeline([double, add_one, times_two], name="p", callbacks=[Broken()])

    with pytest.warns(CallbackWarning) as record:
        result = pipeline.run(x=1)

    assert len(_callback_warnings(record)) == 1
    assert result.report.callback_failures == 3
    assert result.report.status == "ok"


def test_a9_8_the_warning_repeats_once_per_run() -> None:
    pipeline = Pipeline([double, add_one], name="p", callbacks=[Broken()])

    with pytest.warns(CallbackWarning) as first:
        pipeline.run(x=1)
    with pytest.warns(CallbackWarning) as second:
        pipeline.run(x=2)

    assert len(_callback_warnings(first)) == 1
    assert len(_callback_warnings(second)) == 1


def test_a9_8_each_failing_hook_warns_once() -> None:
    class BrokenTwice(Broken):
        def on_pipeline_end(
            self, pipeline_id: str, outputs: Mapping[str, Any], duration: float, ctx: Any
        ) -> None:
            raise KeyError("end")

    with pytest.warns(CallbackWarning) as record:
        result = Pipeline([double, add_one], name="p", callbacks=[BrokenTwice()]).run(x=1)

    messages = _callback_warnings(record)
    assert len(messages) == 2
    assert any("on_pipeline_end" in m for m in messages)
    assert result.report.callback_failures == 3


def test_a9_8_a_raising_callback_in_a_nested_map_does_not_change_results() -> None:
    class BrokenItems(PipelineCallback):
        def on_map_item_start(
            self, node_id: str, item_index: int, item: Mapping[str, Any], ctx: Any
        ) -> None:
            raise RuntimeError("no items")

    with pytest.warns(CallbackWarning) as record:
        result = _nested_map([BrokenItems()]).run(xs=[1, 2, 3])

    assert result == {"doubled_all": [2, 4, 6]}
    assert len(_callback_warnings(record)) == 1
    assert result.report.callback_failures == 3


# --- dispatch under concurrency --------------------------------------------------------------


def test_hooks_never_overlap_under_threaded_nodes_and_items() -> None:
    overlaps: list[str] = []

    class Exclusive(PipelineCallback):
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.calls = 0

        def _enter(self, hook: str) -> None:
            if not self.lock.acquire(blocking=False):
                overlaps.append(hook)
                return
            try:
                self.calls += 1
                time.sleep(0.001)  # widen the window in which an overlapping call would show
            finally:
                self.lock.release()

        def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
            self._enter("on_node_start")

        def on_node_end(
            self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: Any
        ) -> None:
            self._enter("on_node_end")

    @node(output_name="left")
    def left(x: int) -> int:
        return x + 1

    @node(output_name="right")
    def right(x: int) -> int:
        return x + 2

    exclusive = Exclusive()
    backend = LocalBackend("threaded", "threaded", max_workers=4)
    pipeline = Pipeline([left, right], name="p", backend=backend, callbacks=[exclusive])

    with capture() as cap:
        result = pipeline.map(x=list(range(8)), map_over="x")

    assert result == {"left": [x + 1 for x in range(8)], "right": [x + 2 for x in range(8)]}
    assert overlaps == []
    assert exclusive.calls == 32
    assert cap.last.callback_failures == 0
