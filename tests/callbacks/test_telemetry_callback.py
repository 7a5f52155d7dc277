"""TelemetryCallback with the SDK's in-memory exporter (SPEC 9.3-9.4, A9.12)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import nestflow
from nestflow import DiskCache, LocalBackend, Pipeline, TelemetryCallback, node

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(PROVIDER)  # worker processes set their own (see user_span)


@pytest.fixture(autouse=True)
def _fresh_spans() -> Iterator[None]:
    EXPORTER.clear()
    yield
    EXPORTER.clear()


def spans() -> dict[str, Any]:
    return {s.name: s for s in EXPORTER.get_finished_spans()}


def parent_name(span: Any) -> str | None:
    if span.parent is None:
        return None
    by_id = {s.context.span_id: s.name for s in EXPORTER.get_finished_spans()}
    return by_id.get(span.parent.span_id, "<outside>")


@node(output_name="a")
def step_a(x: int) -> int:
    return x + 1


@node(output_name="b")
def step_b(a: int) -> int:
    return a * 2


@node(output_name="c")
def step_c(b: int) -> int:
    return b - 1


def three_levels(callback: TelemetryCallback, **options: Any) -> Pipeline:
    inner = Pipeline([step_b], name="inner")
    per_item = inner.as_node(name="per_item", map_over="xs", input_mapping={"xs": "a"})
    middle = Pipeline([per_item], name="middle")
    return Pipeline([step_a, middle, step_c], name="outer", callbacks=[callback], **options)


def test_a9_12_span_parents_mirror_the_run_hierarchy() -> None:
    callback = TelemetryCallback(tracer_provider=PROVIDER)
    inner = Pipeline([step_b], name="inner")
    middle = Pipeline([inner], name="middle")
    Pipeline([step_a, middle, step_c], name="outer", callbacks=[callback]).run(x=1)
    found = spans()
    assert parent_name(found["pipeline outer"]) is None
    assert parent_name(found["node step_a"]) == "pipeline outer"
    assert parent_name(found["pipeline middle"]) == "pipeline outer"
    assert parent_name(found["pipeline inner"]) == "pipeline middle"
    assert parent_name(found["node step_b"]) == "pipeline inner"
    assert parent_name(found["node step_c"]) == "pipeline outer"
    trace_ids = {s.context.trace_id for s in EXPORTER.get_finished_spans()}
    assert len(trace_ids) == 1, "a whole run is one trace"
    attributes = found["node step_b"].attributes
    assert attributes["nestflow.path"] == "outer > middle > inner > step_b"
    assert attributes["nestflow.depth"] == 2
    assert attributes["nestflow.cache.hit"] is False
    assert attributes["nestflow.backend"] == "Local(seq)"


def test_a9_12_a_parallel_map_inside_three_levels_keeps_one_trace() -> None:
    callback = TelemetryCallback(tracer_provider=PROVIDER)
    backend = LocalBackend(map_execution="parallel", max_workers=2)
    pipeline = Pipeline([step_a, Pipeline([
        Pipeline([step_b], name="inner").as_node(
            name="per_item", map_over="xs", input_mapping={"xs": "a"}, output_mapping={"b": "bs"}
        )], name="middle", backend=backend)], name="outer", callbacks=[callback])  # fmt: skip
    assert pipeline.run(x=1, xs=[1, 2, 3])["bs"] == [2, 4, 6]
    finished = EXPORTER.get_finished_spans()
    items = sorted(s.name for s in finished if s.name.startswith("item "))
    assert items == ["item per_item[0]", "item per_item[1]", "item per_item[2]"]
    found = spans()
    assert parent_name(found["map per_item"]) == "pipeline inner"
    assert parent_name(found["pipeline inner"]) == "pipeline middle"
    nodes = [s for s in finished if s.name == "node step_b"]
    assert len(nodes) == 3
    assert {parent_name(s) for s in nodes} == set(items)
    assert {s.attributes["nestflow.item_index"] for s in nodes} == {0, 1, 2}
    assert len({s.context.trace_id for s in finished}) == 1


@node(output_name="traced")
def user_span(x: int) -> str:
    """Opens a span of its own, as user code does, wherever it runs."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # a fresh worker process: record locally
        provider = TracerProvider()
    with provider.get_tracer("user").start_as_current_span("user work") as span:
        parent = span.parent
    assert parent is not None, "the node's span should be current"
    return f"{parent.trace_id:032x}:{parent.span_id:016x}"


@pytest.mark.parametrize("mode", ["sequential", "threaded", "async", "parallel"])
def test_a9_12_user_spans_nest_under_the_node_span_in_every_mode(mode: str) -> None:
    callback = TelemetryCallback(tracer_provider=PROVIDER)
    backend = LocalBackend(node_execution=mode, max_workers=2)
    pipeline = Pipeline([user_span], name="p", backend=backend, callbacks=[callback])
    seen = pipeline.run(x=1, output_name="traced")
    node_span = spans()["node user_span"]
    assert seen == f"{node_span.context.trace_id:032x}:{node_span.context.span_id:016x}"


def test_a9_12_cache_hits_carry_the_hit_attribute(tmp_path: Path) -> None:
    callback = TelemetryCallback(tracer_provider=PROVIDER)
    pipeline = Pipeline([step_a, step_b], name="cached", cache=DiskCache(tmp_path),
                        callbacks=[callback])  # fmt: skip
    pipeline.run(x=1)
    EXPORTER.clear()
    pipeline.run(x=1)
    hits = [s for s in EXPORTER.get_finished_spans() if s.name.startswith("node ")]
    assert len(hits) == 2
    assert all(s.attributes["nestflow.cache.hit"] is True for s in hits)
    assert all(len(s.attributes["nestflow.cache.signature"]) == 64 for s in hits)


def test_failures_mark_their_spans_with_the_exception() -> None:
    @node(output_name="y")
    def explode(x: int) -> int:
        raise KeyError("missing")

    callback = TelemetryCallback(tracer_provider=PROVIDER)
    with pytest.raises(KeyError):
        Pipeline([explode], name="boom", callbacks=[callback]).run(x=1)
    found = spans()
    failed = found["node explode"]
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert failed.events[0].name == "exception"
    assert found["pipeline boom"].status.status_code == trace.StatusCode.ERROR


def test_map_items_can_be_left_out_or_sampled() -> None:
    callback = TelemetryCallback(tracer_provider=PROVIDER, trace_map_items=False)
    Pipeline([step_a], name="m", callbacks=[callback]).map(x=[1, 2, 3], map_over="x")
    names = [s.name for s in EXPORTER.get_finished_spans()]
    assert not [n for n in names if n.startswith("item ")]
    assert names.count("node step_a") == 3
    with pytest.raises(ValueError, match="sample_rate"):
        TelemetryCallback(sample_rate=2.0)


def test_a_run_inside_a_user_span_joins_its_trace() -> None:
    callback = TelemetryCallback(tracer_provider=PROVIDER)
    with PROVIDER.get_tracer("app").start_as_current_span("request"):
        Pipeline([step_a], name="handler", callbacks=[callback]).run(x=1)
    assert parent_name(spans()["pipeline handler"]) == "request"


def test_missing_otel_extra_fails_on_use_with_the_install_command(
    without: Callable[[str, str], str],
) -> None:
    assert "pip install 'nestflow[otel]'" in without(
        "opentelemetry", "nestflow.TelemetryCallback()"
    )


def test_error_notes_and_the_report_carry_the_exported_trace_id() -> None:
    @node(output_name="y")
    def fails(x: int) -> int:
        raise RuntimeError("down")

    callback = TelemetryCallback(tracer_provider=PROVIDER)
    with nestflow.capture() as cap, pytest.raises(RuntimeError) as info:
        Pipeline([fails], name="traced", callbacks=[callback]).run(x=1)
    exported = f"{spans()['pipeline traced'].context.trace_id:032x}"
    assert cap.last.trace_id == exported
    assert any(exported in note for note in info.value.__notes__)


def test_without_a_recording_provider_the_run_keeps_its_own_trace_id() -> None:
    callback = TelemetryCallback(tracer_provider=trace.NoOpTracerProvider())
    pipeline = Pipeline([step_a], name="quiet", callbacks=[callback])
    first, second = pipeline.run(x=1).report, pipeline.run(x=1).report
    assert first.trace_id != "0" * 32
    assert first.trace_id != second.trace_id


def test_runs_sharing_one_callback_from_two_threads_stay_separate_traces() -> None:
    import threading

    callback = TelemetryCallback(tracer_provider=PROVIDER)
    pipeline = Pipeline([step_a, step_b], name="shared", callbacks=[callback])
    reports: list[Any] = []

    def work() -> None:
        for _ in range(20):
            reports.append(pipeline.run(x=1).report)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.trace_id for r in reports}) == 40
    roots = [s for s in EXPORTER.get_finished_spans() if s.name == "pipeline shared"]
    assert len(roots) == 40
    assert all(s.parent is None for s in roots)
    assert all(s.status.status_code != trace.StatusCode.ERROR
               for s in EXPORTER.get_finished_spans())  # fmt: skip
