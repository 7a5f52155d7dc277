"""Flat sequential levels with callbacks: a timed configuration (each call in a thread of its
own, waited for with a deadline) and the asynchronous driver give the same events, records
and errors as the plain synchronous loop."""

from __future__ import annotations

import sqlite3
import threading
import warnings
from collections.abc import Mapping
from typing import Any

import pytest

from nestflow import DiskCache, Pipeline, PipelineCallback, node
from nestflow.errors import CallbackWarning, UnhashableInputError
from nestflow.runtime.report import capture
from nestflow.testing import forced_driver


class FullRecorder(PipelineCallback):
    """Every event with every argument but durations, and what its context says."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def _add(self, hook: str, args: tuple[Any, ...], ctx: Any) -> None:
        error = None if ctx.error is None else type(ctx.error).__name__
        where = (ctx.depth, ctx.item_index, ctx.node_path, ctx.attempt, error, ctx.entered)
        self.events.append((hook, *args, where))

    def on_pipeline_start(self, pipeline_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
        self._add("pipeline_start", (pipeline_id, dict(inputs)), ctx)

    def on_pipeline_end(
        self, pipeline_id: str, outputs: Mapping[str, Any], duration: float, ctx: Any
    ) -> None:
        self._add("pipeline_end", (pipeline_id, dict(outputs)), ctx)

    def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
        self._add("node_start", (node_id, dict(inputs)), ctx)

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: Any
    ) -> None:
        self._add("node_end", (node_id, dict(outputs)), ctx)

    def on_error(self, node_id: str, error: BaseException, ctx: Any) -> None:
        self._add("error", (node_id, repr(error)), ctx)

    def on_map_start(self, node_id: str, total_items: int, ctx: Any) -> None:
        self._add("map_start", (node_id, total_items), ctx)

    def on_map_item_start(
        self, node_id: str, item_index: int, item: Mapping[str, Any], ctx: Any
    ) -> None:
        self._add("item_start", (node_id, item_index, dict(item)), ctx)

    def on_map_item_end(self, node_id: str, item_index: int, duration: float, ctx: Any) -> None:
        self._add("item_end", (node_id, item_index), ctx)

    def on_map_end(self, node_id: str, total_duration: float, ctx: Any) -> None:
        self._add("map_end", (node_id,), ctx)


@node(output_name="doubled")
def double(x: int, scale: int = 2) -> int:
    if x == 13:
        raise ValueError("unlucky")
    return x * scale


@node(output_name=("low", "high"))
def split(doubled: int) -> tuple[int, int]:
    return doubled - 1, doubled + 1


@node(output_name="total")
def add(low: int, high: int, *, bonus: int = 0) -> int:
    return low + high + bonus


def _pipelines() -> tuple[Pipeline, Pipeline, FullRecorder, FullRecorder]:
    quick, general = FullRecorder(), FullRecorder()
    observed_one = Pipeline([double, split, add], name="p", callbacks=[quick])
    # A timeout anywhere sends a run down the general runner: events must not change.
    general_one = Pipeline([double, split, add], name="p", callbacks=[general], timeout=60.0)
    return observed_one, general_one, quick, general


def _records(report: Any) -> list[tuple[Any, ...]]:
    return [
        (r.path, r.node, r.pipeline, r.depth, r.item_path, r.status, r.attempts, r.error, r.levels)
        for r in report.records
    ]


def test_sequential_runs_take_the_synchronous_driver_unless_forced() -> None:
    quick, general, _, _ = _pipelines()
    assert quick.run(x=1).report.drivers == ("sync",)
    assert quick.map(x=[1, 2], map_over="x").report.drivers == ("sync",)
    assert general.run(x=1).report.drivers == ("sync",)  # a deadline needs no event loop
    with forced_driver("async"):
        assert quick.run(x=1).report.drivers == ("async",)
        assert quick.map(x=[1, 2], map_over="x").report.drivers == ("async",)


@pytest.mark.parametrize("x", [4, 13])
def test_a_run_has_the_events_records_and_errors_of_the_general_runner(x: int) -> None:
    quick, general, heard, expected = _pipelines()
    outcomes = []
    for pipeline in (quick, general):
        try:
            result = pipeline.run(x=x, bonus=5)
            outcomes.append((dict(result), _records(result.report), result.report.status))
        except ValueError as exc:
            outcomes.append((repr(exc), exc.__notes__[0].split("trace")[0], None))
    assert outcomes[0] == outcomes[1]
    assert heard.events == expected.events
    assert heard.events[0][0] == "pipeline_start"
    assert heard.events[-1][0] == "pipeline_end"


@pytest.mark.parametrize("xs", [[1, 2, 3], [1, 13, 3], []])
def test_a_map_has_the_events_records_and_errors_of_the_general_runner(xs: list[int]) -> None:
    quick, general, heard, expected = _pipelines()
    outcomes = []
    for pipeline in (quick, general):
        try:
            result = pipeline.map(x=xs, map_over="x", scale=3)
            outcomes.append((dict(result), _records(result.report)))
        except ValueError as exc:
            outcomes.append((repr(exc), exc.__notes__[0].split("trace")[0]))
    assert outcomes[0] == outcomes[1]
    assert heard.events == expected.events
    assert [e[0] for e in heard.events].count("item_start") == (2 if 13 in xs else len(xs))


class RecordReader(PipelineCallback):
    """Reads the report while the run goes on: what each node end sees recorded so far."""

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: Any
    ) -> None:
        self.seen.append([record.node for record in ctx.report.records])


def test_records_read_during_a_run_are_complete_so_far_on_both_paths() -> None:
    quick_reader, general_reader = RecordReader(), RecordReader()
    quick = Pipeline([double, split, add], name="p", callbacks=[quick_reader])
    general = Pipeline([double, split, add], name="p", callbacks=[general_reader], timeout=60.0)
    for pipeline in (quick, general):
        result = pipeline.map(x=[1, 2], map_over="x")
        assert [r.item_path for r in result.report.records] == [(0,)] * 3 + [(1,)] * 3
    assert quick_reader.seen == general_reader.seen
    assert quick_reader.seen[-1] == ["double", "split", "add"] * 2


class CachedRecorder(FullRecorder):
    def on_node_cached(self, node_id: str, signature: str, ctx: Any) -> None:
        self._add("node_cached", (node_id, signature), ctx)

    def on_map_item_cached(self, node_id: str, item_index: int, signature: str, ctx: Any) -> None:
        self._add("item_cached", (node_id, item_index, signature), ctx)


def _cached_pair(tmp_path: Any) -> tuple[Pipeline, Pipeline, CachedRecorder, CachedRecorder]:
    quick, general = CachedRecorder(), CachedRecorder()
    nodes = [double, split, add]
    observed_one = Pipeline(nodes, name="p", callbacks=[quick], cache=DiskCache(tmp_path / "o"))
    general_one = Pipeline(
        nodes, name="p", callbacks=[general], cache=DiskCache(tmp_path / "g"), timeout=60.0
    )
    return observed_one, general_one, quick, general


def _cached_records(report: Any) -> list[tuple[Any, ...]]:
    return [(*row, r.signature) for row, r in zip(_records(report), report.records, strict=True)]


def _outcome(call: Any) -> tuple[Any, ...]:
    try:
        result = call()
    except ValueError as exc:
        return (repr(exc), exc.__notes__[0].split("trace")[0])
    if not hasattr(result, "report"):  # one output asked for by name: the bare value
        return (result,)
    report = result.report
    return (dict(result), _cached_records(report), report.cache_hits, report.cache_misses)


def test_cached_runs_have_the_events_records_and_counts_of_the_general_runner(
    tmp_path: Any,
) -> None:
    quick, general, heard, expected = _cached_pair(tmp_path)
    steps = [
        lambda p: p.run(x=4),  # cold
        lambda p: p.run(x=4),  # warm: every node a hit, outputs read before the end event
        lambda p: p.run(x=4, output_name="doubled"),
        lambda p: p.run(x=4, bonus=1),  # `add` misses, the others hit
        lambda p: p.run(x=13),  # fails in a miss
        lambda p: p.map(x=[1, 2], map_over="x"),
        lambda p: p.map(x=[1, 2, 3], map_over="x", bonus=2),  # items 0, 1 partly cached
        lambda p: p.map(x=[1, 2, 3], map_over="x", bonus=2),  # every item from the cache
        lambda p: p.map(x=[3, 13], map_over="x", bonus=2),
    ]
    for step in steps:
        assert _outcome(lambda s=step: s(quick)) == _outcome(lambda s=step: s(general))
        assert heard.events == expected.events
    hooks = {event[0] for event in heard.events}
    assert {"node_cached", "item_cached", "node_start", "error"} <= hooks
    ends = [e for e in heard.events if e[0] == "pipeline_end" and e[1] == "p"]
    assert ends[1][2] == {"doubled": 8, "low": 7, "high": 9, "total": 16}, "warm outputs shown"


def test_an_input_that_cannot_be_signed_takes_the_general_runner(tmp_path: Any) -> None:
    quick, general, heard, expected = _cached_pair(tmp_path)
    lock = threading.Lock()
    for pipeline in (quick, general):
        with pytest.raises(UnhashableInputError):
            pipeline.run(x=lock)
    assert heard.events == expected.events
    assert [e[0] for e in heard.events] == ["pipeline_start", "pipeline_end"]


class Failing(FullRecorder):
    """Raises in two hooks: each becomes one CallbackWarning and a counted failure."""

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: Any
    ) -> None:
        super().on_node_end(node_id, outputs, duration, ctx)
        raise RuntimeError("broken hook")

    def on_map_item_end(self, node_id: str, item_index: int, duration: float, ctx: Any) -> None:
        super().on_map_item_end(node_id, item_index, duration, ctx)
        raise RuntimeError("broken hook")


@pytest.mark.parametrize("cached", [False, True])
def test_more_shapes_match_the_general_runner(tmp_path: Any, cached: bool) -> None:
    """Product maps, bound inputs, async entry points and callbacks that raise."""
    import asyncio
    import warnings

    recorders = [Failing(), Failing()]
    outcomes = []
    for recorder, extra in zip(recorders, ({}, {"timeout": 60.0}), strict=True):
        cache = {"cache": DiskCache(tmp_path / str(len(outcomes)))} if cached else {}
        pipeline = Pipeline(
            [double, split, add], name="p", callbacks=[recorder], **cache, **extra
        ).bind(bonus=3)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            product = pipeline.map(
                x=[1, 2], scale=[2, 3], map_over=["x", "scale"], map_mode="product"
            )
            ran = asyncio.run(pipeline.arun(x=5))
            mapped = asyncio.run(pipeline.amap(x=[6, 7], map_over="x"))
        outcomes.append(
            (
                dict(product),
                _records(product.report),
                product.report.callback_failures,
                dict(ran),
                dict(mapped),
                sorted({str(w.message)[:60] for w in caught}),
            )
        )
    assert outcomes[0] == outcomes[1]
    assert recorders[0].events == recorders[1].events
    assert outcomes[0][0]["total"] == [4 + 3, 6 + 3, 8 + 3, 12 + 3]
    assert outcomes[0][2] == 4 * (3 + 1), (
        "every raise counted: 4 items x (3 node ends + 1 item end)"
    )
    assert outcomes[0][5], "and reported as warnings"


def _both(tmp_path: Any, nodes: list[Any], cached: bool = True) -> list[tuple[Pipeline, Any]]:
    """The same pipeline plain and timed (each call in a thread of its own, with a deadline)."""
    made = []
    for tag, extra in (("o", {}), ("g", {"timeout": 60.0})):
        recorder = CachedRecorder()
        cache = {"cache": DiskCache(tmp_path / tag)} if cached else {}
        made.append((Pipeline(nodes, name="p", callbacks=[recorder], **cache, **extra), recorder))
    return made


def test_a_mapped_generator_is_read_once_even_when_the_general_runner_takes_over(
    tmp_path: Any,
) -> None:
    lock = threading.Lock()
    for pipeline, _ in _both(tmp_path, [double]):
        with pytest.raises(UnhashableInputError):
            pipeline.map(x=(v for v in [1, 2, lock]), map_over="x")  # not {"doubled": []}


def test_signing_errors_of_any_kind_take_the_general_runner(tmp_path: Any) -> None:
    class Keyless:
        def __cache_key__(self) -> object:
            raise ValueError("no key today")

    @node(output_name="kept")
    def keep(thing: Keyless) -> int:
        return 1

    outcomes = []
    for pipeline, recorder in _both(tmp_path, [keep]):
        with capture() as reports, pytest.raises(ValueError, match="no key today"):
            pipeline.run(thing=Keyless())
        outcomes.append(([e[0] for e in recorder.events], len(reports.reports)))
    assert outcomes[0] == outcomes[1] == (["pipeline_start", "pipeline_end"], 1)


def test_a_setup_node_shared_by_every_item_runs_once(tmp_path: Any) -> None:
    calls: list[str] = []

    @node(output_name="model")
    def load_model(path: str) -> int:
        calls.append(path)
        return len(path)

    @node(output_name="y")
    def use(model: int, x: int) -> int:
        return model + x

    quiet = Pipeline([load_model, use], name="p", cache=DiskCache(tmp_path / "q"))  # no callback
    counts = []
    for pipeline in [*(p for p, _ in _both(tmp_path, [load_model, use])), quiet]:
        calls.clear()
        report = pipeline.map(x=list(range(5)), path="m.bin", map_over="x").report
        counts.append((len(calls), report.cache_hits, report.cache_misses))
    assert counts == [(1, 4, 6)] * 3, "observed, general and cached loops alike"


def test_an_unreadable_intermediate_value_reruns_its_node_with_events(tmp_path: Any) -> None:
    @node(output_name="z")
    def bump(doubled: int, k: int) -> int:
        return doubled + k

    outcomes = []
    for tag, (pipeline, recorder) in zip("og", _both(tmp_path, [double, bump]), strict=True):
        pipeline.map(x=[3, 4], k=2, map_over="x")
        database = sqlite3.connect(tmp_path / tag / "cache.sqlite3")
        with database:
            (key,) = database.execute(
                "SELECT blob_key FROM entries WHERE node = 'p > double' LIMIT 1"
            ).fetchone()
            database.execute("UPDATE blobs SET data = x'00' WHERE key = ?", (key,))
        database.close()
        fresh = pipeline.with_cache(DiskCache(tmp_path / tag))
        recorder.events.clear()
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            result = fresh.map(x=[3, 4], k=5, map_over="x", output_name=["z"])
        outcomes.append((dict(result), _cached_records(result.report), recorder.events))
    assert outcomes[0] == outcomes[1]
    assert [e[0] for e in outcomes[0][2]].count("node_start") == 3, "double once, bump twice"


def test_a_failing_hook_set_on_the_instance_is_a_warning(tmp_path: Any) -> None:
    recorder = FullRecorder()

    def broken(*args: Any) -> None:
        raise RuntimeError("broken hook")

    recorder.on_node_end = broken  # type: ignore[method-assign]
    pipeline = Pipeline([double], name="p", callbacks=[recorder])
    with pytest.warns(CallbackWarning, match="broken hook"):
        result = pipeline.run(x=2)
    assert result["doubled"] == 4
    assert result.report.callback_failures == 1
