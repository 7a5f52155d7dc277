"""Failures inside user functions: original exceptions, notes, ErrorContext, format_error (SPEC 10).

Every test runs on the fast path (no callbacks anywhere) and on the general path (a
``RecordingCallback`` on the outermost pipeline, inherited by every level) through the
``run_path`` fixture; both must raise the same exception with the same notes.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from typing import Any

import pytest

import nestflow
from nestflow import ErrorContext, LocalBackend, Pipeline, capture, format_error, node
from nestflow.testing import RecordingCallback

NODE_NOTE = "nestflow: node"
THREE_LEVEL_PATH = "top > mid > inner > explode"
FIVE_LEVEL_PATH = "top > mid > fan > deep > inner > explode"


# --- the two execution paths -------------------------------------------------------------------


@dataclass
class RunPath:
    """How a test runs its outermost pipeline: bare (fast path) or with a callback (general)."""

    name: str
    recorder: RecordingCallback | None

    def attach(self, pipeline: Pipeline) -> Pipeline:
        """The pipeline to run on this path."""
        if self.recorder is None:
            return pipeline
        return pipeline.with_callbacks([self.recorder])

    def failure(self, pipeline: Pipeline, *, is_map: bool = False, **kwargs: Any) -> Exception:
        """Run (or map) ``pipeline`` on this path and return the exception it raised."""
        attached = self.attach(pipeline)
        call = attached.map if is_map else attached.run
        if self.recorder is not None:
            self.recorder.events.clear()
            self.recorder.contexts.clear()
        # Any exception: the callers assert its exact type.
        with pytest.raises(Exception) as info:
            call(**kwargs)
        if self.recorder is not None:
            # The general path really ran: the callback saw the failure once and the root end.
            errors = [e for e in self.recorder.events if e[0] == "error"]
            assert len(errors) == 1, errors
            assert self.recorder.events[-1] == ("pipeline_end", pipeline.name)
        return info.value


@pytest.fixture(params=["fast", "general"])
def run_path(request: pytest.FixtureRequest) -> RunPath:
    """The fast path (no callbacks) and the general path (an inherited RecordingCallback)."""
    recorder = RecordingCallback() if request.param == "general" else None
    return RunPath(request.param, recorder)


# --- the failing pipelines ---------------------------------------------------------------------


@node(output_name="v")
def prepare(x: int) -> int:
    return x


@node(output_name="exploded")
def explode(v: int) -> float:
    if v == 0:
        raise ZeroDivisionError("inner failure")
    return 1 / v


@node(output_name="exploded")
async def explode_async(v: int) -> float:
    if v == 0:
        raise ZeroDivisionError("inner failure")
    return 1 / v


def three_levels(failing: Any = explode) -> Pipeline:
    """``top > mid > inner > explode``: the failure sits at depth 2."""
    inner = Pipeline([prepare, failing.with_name("explode")], name="inner")
    mid = Pipeline([inner], name="mid")
    return Pipeline([mid], name="top")


def five_levels_with_map() -> Pipeline:
    """``top > mid > fan > deep > inner > explode``, where ``fan`` maps over ``vs``."""
    inner = Pipeline([explode], name="inner")
    deep = Pipeline([inner], name="deep")
    fan = Pipeline([deep], name="fan")
    mid = Pipeline([fan.as_node(map_over="vs", input_mapping={"vs": "v"})], name="mid")
    return Pipeline([mid], name="top")


def context_of(exc: BaseException) -> ErrorContext:
    """``exc.__nestflow__``, checked to be an ``ErrorContext``."""
    context = getattr(exc, "__nestflow__", None)
    assert isinstance(context, ErrorContext), f"no ErrorContext on {exc!r}"
    return context


def nestflow_notes(exc: BaseException) -> list[str]:
    return [n for n in getattr(exc, "__notes__", []) if n.startswith("nestflow:")]


def node_notes(exc: BaseException) -> list[str]:
    return [n for n in getattr(exc, "__notes__", []) if n.startswith(NODE_NOTE)]


def full_text(exc: BaseException) -> str:
    return "\n".join([str(exc), *getattr(exc, "__notes__", [])])


def normalised_notes(exc: BaseException) -> list[str]:
    """The notes with run and trace ids replaced, so runs can be compared."""
    return [re.sub(r"[0-9a-f]{16,}", "<id>", note) for note in getattr(exc, "__notes__", [])]


# --- 10.2 / A10.1 the user's exception, three levels down --------------------------------------


def test_a10_1_exception_three_levels_down_keeps_type_and_message(run_path: RunPath) -> None:
    exc = run_path.failure(three_levels(), x=0)
    assert type(exc) is ZeroDivisionError
    assert str(exc) == "inner failure"
    assert exc.args == ("inner failure",)


def test_a10_1_notes_name_the_nested_path_and_depth(run_path: RunPath) -> None:
    exc = run_path.failure(three_levels(), x=0)
    text = full_text(exc)
    assert "inner failure" in text
    assert THREE_LEVEL_PATH in text
    assert node_notes(exc) == [f"nestflow: node {THREE_LEVEL_PATH} (depth 2)"]


def test_a10_1_notes_form_one_block_without_an_item_line(run_path: RunPath) -> None:
    exc = run_path.failure(three_levels(), x=0)
    notes = nestflow_notes(exc)
    assert len(notes) == 2
    assert notes[0] == f"nestflow: node {THREE_LEVEL_PATH} (depth 2)"
    assert notes[1].startswith("nestflow: attempts 1, trace ")
    assert not any("map item" in note for note in notes)


def test_s10_2_the_raised_exception_is_the_users_object_not_a_wrapper(
    run_path: RunPath,
) -> None:
    raised: list[BaseException] = []

    @node(output_name="exploded")
    def remember(v: int) -> float:
        error = KeyError("missing key")
        raised.append(error)
        raise error

    exc = run_path.failure(three_levels(remember), x=0)
    assert exc is raised[0]
    assert exc.__cause__ is None
    assert type(exc) is KeyError


def test_s10_2_the_original_traceback_ends_in_the_user_function(run_path: RunPath) -> None:
    exc = run_path.failure(three_levels(), x=0)
    frames = traceback.extract_tb(exc.__traceback__)
    assert frames[-1].name == "explode"
    assert 'raise ZeroDivisionError("inner failure")' in (frames[-1].line or "")


def test_s10_2_custom_exception_keeps_its_class_and_attributes(run_path: RunPath) -> None:
    class QuotaError(RuntimeError):
        def __init__(self, message: str, limit: int) -> None:
            super().__init__(message)
            self.limit = limit

    @node(output_name="exploded")
    def over_quota(v: int) -> float:
        raise QuotaError("quota exceeded", limit=v)

    exc = run_path.failure(three_levels(over_quota), x=7)
    assert type(exc) is QuotaError
    assert isinstance(exc, QuotaError)
    assert exc.limit == 7
    assert str(exc) == "quota exceeded"
    assert node_notes(exc) == [f"nestflow: node {THREE_LEVEL_PATH} (depth 2)"]


def test_s10_2_error_context_is_attached_as_dunder_nestflow(run_path: RunPath) -> None:
    exc = run_path.failure(three_levels(), x=0)
    context = getattr(exc, "__nestflow__", None)
    assert isinstance(context, ErrorContext)
    assert context.path == THREE_LEVEL_PATH
    assert context.depth == 2
    assert context.item_path == ()
    assert context.attempts == 1
    assert re.fullmatch(r"[0-9a-f]{32}", context.trace_id)
    assert context.run_id
    assert context.elapsed_s >= 0.0
    assert isinstance(context.nodes_executed, int)
    assert isinstance(context.node_config, dict)


def test_s10_2_error_context_ids_match_the_run_report_and_notes(run_path: RunPath) -> None:
    with capture() as cap:
        exc = run_path.failure(three_levels(), x=0)
    context = context_of(exc)
    report = cap.last
    assert len(cap.reports) == 1
    assert report.status == "failed"
    assert report.trace_id == context.trace_id
    assert report.run_id == context.run_id
    notes = "\n".join(nestflow_notes(exc))
    assert f"trace {context.trace_id}" in notes
    assert context.run_id[:6] in notes


def test_s10_2_each_run_gets_fresh_notes(run_path: RunPath) -> None:
    top = three_levels()
    first = run_path.failure(top, x=0)
    second = run_path.failure(top, x=0)
    assert first is not second
    assert len(node_notes(first)) == 1
    assert len(node_notes(second)) == 1
    assert context_of(first).trace_id != context_of(second).trace_id


def test_s10_2_pipeline_still_runs_after_a_failure(run_path: RunPath) -> None:
    top = three_levels()
    run_path.failure(top, x=0)
    result = run_path.attach(top).run(x=4)
    assert result == {"v": 4, "exploded": 0.25}


# --- A10.1 callbacks on failure (general path) --------------------------------------------------


def test_a10_1_recorder_on_top_sees_exactly_one_error_event() -> None:
    recorder = RecordingCallback()
    top = three_levels().with_callbacks([recorder])
    with pytest.raises(ZeroDivisionError):
        top.run(x=0)
    errors = [event for event in recorder.events if event[0] == "error"]
    assert errors == [("error", "explode", "ZeroDivisionError")]


def test_a10_1_on_error_fires_at_the_failing_level_before_the_levels_end() -> None:
    recorder = RecordingCallback()
    top = three_levels().with_callbacks([recorder])
    with pytest.raises(ZeroDivisionError) as info:
        top.run(x=0)
    position = recorder.events.index(("error", "explode", "ZeroDivisionError"))
    ctx = recorder.contexts[position]
    assert ctx.depth == 2
    assert tuple(ctx.node_path) == ("top", "mid", "inner", "explode")
    assert ctx.error is info.value
    assert position < recorder.events.index(("pipeline_end", "inner"))


def test_a10_1_enclosing_levels_get_pipeline_end_with_error_set() -> None:
    recorder = RecordingCallback()
    top = three_levels().with_callbacks([recorder])
    with pytest.raises(ZeroDivisionError) as info:
        top.run(x=0)
    ends = [
        (event[1], ctx)
        for event, ctx in zip(recorder.events, recorder.contexts, strict=True)
        if event[0] == "pipeline_end"
    ]
    assert [name for name, _ in ends] == ["inner", "mid", "top"]
    assert all(ctx.error is info.value for _, ctx in ends)
    assert recorder.events[-1] == ("pipeline_end", "top")


def test_a10_1_nested_end_events_still_fire_on_failure() -> None:
    recorder = RecordingCallback()
    top = three_levels().with_callbacks([recorder])
    with pytest.raises(ZeroDivisionError):
        top.run(x=0)
    nested_ends = [event for event in recorder.events if event[0] == "nested_end"]
    assert nested_ends == [("nested_end", "mid", "inner"), ("nested_end", "top", "mid")]


def test_a10_1_callback_does_not_change_the_raised_exception() -> None:
    recorder = RecordingCallback()
    with pytest.raises(ZeroDivisionError) as bare:
        three_levels().run(x=0)
    with pytest.raises(ZeroDivisionError) as observed:
        three_levels().with_callbacks([recorder]).run(x=0)
    assert str(bare.value) == str(observed.value)
    assert normalised_notes(bare.value) == normalised_notes(observed.value)


# --- A10.2 notes once, with map items -----------------------------------------------------------


def test_a10_2_notes_appear_once_through_five_levels_and_a_map(run_path: RunPath) -> None:
    exc = run_path.failure(five_levels_with_map(), vs=[1, 0, 2])
    assert type(exc) is ZeroDivisionError
    assert str(exc) == "inner failure"
    assert node_notes(exc) == [f"nestflow: node {FIVE_LEVEL_PATH} (depth 4)"]
    assert len(nestflow_notes(exc)) == 3


def test_a10_2_notes_contain_the_map_item_index(run_path: RunPath) -> None:
    exc = run_path.failure(five_levels_with_map(), vs=[1, 0, 2])
    item_lines = [note for note in nestflow_notes(exc) if "map item" in note]
    assert item_lines == ["nestflow: map item 1 of 3"]


def test_a10_2_error_context_has_the_item_path(run_path: RunPath) -> None:
    exc = run_path.failure(five_levels_with_map(), vs=[1, 0, 2])
    context = context_of(exc)
    assert context.path == FIVE_LEVEL_PATH
    assert context.depth == 4
    assert context.item_path == (1,)


def test_a10_2_nested_maps_give_the_item_path(run_path: RunPath) -> None:
    groups = [[1, 1, 1], [2, 2, 2], [1, 0, 1]]
    exc = run_path.failure(five_levels_with_map(), is_map=True, vs=groups, map_over="vs")
    assert node_notes(exc) == [f"nestflow: node {FIVE_LEVEL_PATH} (depth 4)"]
    item_lines = [note for note in nestflow_notes(exc) if "map item" in note]
    assert item_lines == ["nestflow: map item 1 of 3 (item path 2 > 1)"]
    assert context_of(exc).item_path == (2, 1)


def test_a10_2_root_map_failure_names_the_item(run_path: RunPath) -> None:
    exc = run_path.failure(three_levels(), is_map=True, x=[3, 2, 0, 1], map_over="x")
    assert node_notes(exc) == [f"nestflow: node {THREE_LEVEL_PATH} (depth 2)"]
    item_lines = [note for note in nestflow_notes(exc) if "map item" in note]
    assert item_lines == ["nestflow: map item 2 of 4"]
    assert context_of(exc).item_path == (2,)


def test_a10_2_recorder_sees_one_error_through_five_levels_and_a_map() -> None:
    recorder = RecordingCallback()
    top = five_levels_with_map().with_callbacks([recorder])
    with pytest.raises(ZeroDivisionError) as info:
        top.run(vs=[1, 0, 2])
    errors = [event for event in recorder.events if event[0] == "error"]
    assert errors == [("error", "explode", "ZeroDivisionError")]
    position = recorder.events.index(errors[0])
    assert recorder.contexts[position].item_path == (1,)
    item_ends = {
        event[1]: ctx.error
        for event, ctx in zip(recorder.events, recorder.contexts, strict=True)
        if event[0] == "item_end"
    }
    assert item_ends == {0: None, 1: info.value}
    assert ("item_start", 2) not in recorder.events


def test_a10_2_every_enclosing_level_ends_with_the_error_set() -> None:
    recorder = RecordingCallback()
    top = five_levels_with_map().with_callbacks([recorder])
    with pytest.raises(ZeroDivisionError) as info:
        top.run(vs=[1, 0, 2])
    failed_ends = [
        event[1]
        for event, ctx in zip(recorder.events, recorder.contexts, strict=True)
        if event[0] == "pipeline_end" and ctx.error is info.value
    ]
    assert failed_ends == ["inner", "deep", "fan", "mid", "top"]


def test_a10_2_failing_map_stops_before_later_items(run_path: RunPath) -> None:
    seen: list[int] = []

    @node(output_name="exploded")
    def watch(v: int) -> float:
        seen.append(v)
        if v == 0:
            raise ZeroDivisionError("inner failure")
        return 1 / v

    inner = Pipeline([watch], name="inner")
    mid = Pipeline([inner.as_node(map_over="vs", input_mapping={"vs": "v"})], name="mid")
    run_path.failure(Pipeline([mid], name="top"), vs=[5, 0, 7])
    assert seen == [5, 0]


# --- A10.3 (local node_execution modes) --------------------------------------------------------


NODE_MODES = ["sequential", "threaded", "async"]


@pytest.mark.parametrize("mode", NODE_MODES)
def test_a10_3_same_failure_under_every_local_node_execution_mode(
    run_path: RunPath, mode: Any
) -> None:
    reference = run_path.failure(three_levels(), x=0)
    top = three_levels().with_backend(LocalBackend(node_execution=mode))
    exc = run_path.failure(top, x=0)
    assert type(exc) is ZeroDivisionError
    assert str(exc) == "inner failure"
    assert node_notes(exc) == [f"nestflow: node {THREE_LEVEL_PATH} (depth 2)"]
    assert normalised_notes(exc) == normalised_notes(reference)


@pytest.mark.parametrize("mode", NODE_MODES)
def test_a10_3_same_map_failure_under_every_local_node_execution_mode(
    run_path: RunPath, mode: Any
) -> None:
    reference = run_path.failure(five_levels_with_map(), vs=[1, 0, 2])
    top = five_levels_with_map().with_backend(LocalBackend(node_execution=mode))
    exc = run_path.failure(top, vs=[1, 0, 2])
    assert type(exc) is ZeroDivisionError
    assert "nestflow: map item 1 of 3" in nestflow_notes(exc)
    assert normalised_notes(exc) == normalised_notes(reference)


@pytest.mark.parametrize("mode", NODE_MODES)
def test_a10_3_async_node_failure_matches_sync_node_failure(run_path: RunPath, mode: Any) -> None:
    reference = run_path.failure(three_levels(), x=0)
    top = three_levels(explode_async).with_backend(LocalBackend(node_execution=mode))
    exc = run_path.failure(top, x=0)
    assert type(exc) is ZeroDivisionError
    assert str(exc) == "inner failure"
    assert normalised_notes(exc) == normalised_notes(reference)


@pytest.mark.parametrize("mode", NODE_MODES)
def test_a10_3_recorder_sees_one_error_under_every_local_node_execution_mode(mode: Any) -> None:
    recorder = RecordingCallback()
    backend = LocalBackend(node_execution=mode)
    top = three_levels().with_backend(backend).with_callbacks([recorder])
    with pytest.raises(ZeroDivisionError):
        top.run(x=0)
    errors = [event for event in recorder.events if event[0] == "error"]
    assert errors == [("error", "explode", "ZeroDivisionError")]


# --- A10.5 format_error -------------------------------------------------------------------------


def test_a10_5_format_error_names_every_pipeline_the_node_and_the_error(
    run_path: RunPath,
) -> None:
    exc = run_path.failure(three_levels(), x=0)
    text = format_error(exc)
    for name in ("top", "mid", "inner"):
        assert f"Pipeline: {name}" in text
    assert "explode" in text
    assert "Error: ZeroDivisionError: inner failure" in text


def test_a10_5_format_error_shows_the_numbered_execution_stack(run_path: RunPath) -> None:
    exc = run_path.failure(three_levels(), x=0)
    text = format_error(exc)
    assert "Execution stack:" in text
    assert "1. top > mid" in text
    assert "2. mid > inner" in text
    assert "3. inner > explode" in text
    assert text.index("1. top > mid") < text.index("2. mid > inner")
    assert text.index("2. mid > inner") < text.index("3. inner > explode")


def test_a10_5_format_error_shows_the_trace_id(run_path: RunPath) -> None:
    exc = run_path.failure(three_levels(), x=0)
    context = context_of(exc)
    assert context.trace_id in format_error(exc)


def test_a10_5_format_error_marks_nested_and_function_nodes(run_path: RunPath) -> None:
    text = format_error(run_path.failure(three_levels(), x=0))
    assert "Node: mid (pipeline)" in text
    assert "Node: inner (pipeline)" in text
    assert "Node: explode (function)" in text
    assert text.index("Pipeline: top") < text.index("Pipeline: mid")
    assert text.index("Pipeline: mid") < text.index("Pipeline: inner")


def test_a10_5_format_error_shows_the_context_and_node_settings(run_path: RunPath) -> None:
    text = format_error(run_path.failure(three_levels(), x=0))
    assert "Context at failure:" in text
    assert "nesting depth 2" in text
    assert "map item -" in text
    assert "timeout=None" in text
    assert "retries=0" in text


def test_a10_5_format_error_of_a_map_failure_names_the_item(run_path: RunPath) -> None:
    exc = run_path.failure(five_levels_with_map(), vs=[1, 0, 2])
    text = format_error(exc)
    for name in ("top", "mid", "fan", "deep", "inner"):
        assert f"Pipeline: {name}" in text
    assert "5. inner > explode" in text
    assert "map item 1" in text
    assert "Error: ZeroDivisionError: inner failure" in text


def test_a10_5_format_error_of_a_plain_exception_falls_back_to_the_traceback() -> None:
    try:
        raise ValueError("plain failure")
    except ValueError as caught:
        exc = caught
    text = format_error(exc)
    assert text == "".join(traceback.format_exception(exc))
    assert "Traceback (most recent call last)" in text
    assert "ValueError: plain failure" in text


def test_a10_5_format_error_is_exported_from_the_package() -> None:
    assert nestflow.format_error is format_error
    assert "format_error" in nestflow.__all__
    assert "ErrorContext" in nestflow.__all__


# --- both paths agree ---------------------------------------------------------------------------


def test_s10_2_fast_and_general_paths_give_identical_failures() -> None:
    with pytest.raises(ZeroDivisionError) as fast:
        five_levels_with_map().map(vs=[[1, 1], [1, 0]], map_over="vs")
    with pytest.raises(ZeroDivisionError) as general:
        five_levels_with_map().with_callbacks([RecordingCallback()]).map(
            vs=[[1, 1], [1, 0]], map_over="vs"
        )
    assert normalised_notes(fast.value) == normalised_notes(general.value)
    fast_context = context_of(fast.value)
    general_context = context_of(general.value)
    for field in ("path", "depth", "item_path", "attempts", "nodes_executed"):
        assert getattr(fast_context, field) == getattr(general_context, field), field
