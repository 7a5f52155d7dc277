"""LocalBackend: the four execution modes, nesting, labels and argument checks (SPEC 7.1-7.3).

Timing tests sleep at most 0.3 s per node and leave generous margins: the machine running
the suite may have only two cores. The parallel pool of four workers is started (and the
test module imported in each worker) once, untimed, by the ``warm_pool`` fixture; the
shared pool is reused by every later parallel run of the same size.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from time import perf_counter
from typing import Any

import pytest

import nestflow
from nestflow import LocalBackend, Pipeline, node
from nestflow.testing import RecordingCallback

MODES = ("sequential", "threaded", "async", "parallel")
WORKERS = 4
"""Every parallel backend in this module uses four workers, so they all share one pool."""


def backend(nodes: str = "sequential", items: str = "sequential") -> LocalBackend:
    return LocalBackend(node_execution=nodes, map_execution=items, max_workers=WORKERS)


def elapsed(call: Any) -> tuple[Any, float]:
    """``call()``'s result and how long it took."""
    started = perf_counter()
    result = call()
    return result, perf_counter() - started


# --- nodes shared by several tests (module level, so worker processes import them) -----------


@node(output_name="a")
async def slow_a(x: int) -> int:
    await asyncio.sleep(0.3)
    return x + 1


@node(output_name="b")
async def slow_b(x: int) -> int:
    await asyncio.sleep(0.3)
    return x + 2


@node(output_name="c")
def combine(a: int, b: int) -> int:
    return a + b


@node(output_name="left")
def sleepy_left(x: int) -> int:
    time.sleep(0.3)
    return x * 10


@node(output_name="right")
def sleepy_right(x: int) -> int:
    time.sleep(0.3)
    return x * 100


@node(output_name="m")
def sleepy_item(x: int) -> int:
    time.sleep(0.3)
    return x


@node(output_name="waited")
def wait_for(delay: float) -> float:
    time.sleep(delay)
    return delay


@node(output_name="page")
async def fetch(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * 10


@node(output_name="length")
def measure(page: Any) -> int:
    if asyncio.iscoroutine(page):
        page.close()
        raise TypeError("a coroutine object reached a downstream node")
    return page + 1


@node(output_name="pid")
def where(x: int) -> int:
    return os.getpid()


@node(output_name="v")
def prepare(x: int) -> int:
    return x


@node(output_name="exploded")
def explode(v: int) -> float:
    if v == 0:
        raise ZeroDivisionError("inner failure")
    return 1 / v


class PickyError(Exception):
    """Needs two arguments, but hands one to ``Exception``: it cannot be unpickled."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


@node(output_name="picky")
def raise_picky(x: int) -> int:
    raise PickyError("E42", "the widget is broken")


class PidRecorder(RecordingCallback):
    """Records ``os.getpid()`` on every hook call, next to the event."""

    def __init__(self) -> None:
        super().__init__()
        self.pids: list[int] = []

    def _add(self, event: tuple[Any, ...], ctx: Any) -> None:
        self.pids.append(os.getpid())
        super()._add(event, ctx)


@pytest.fixture(scope="module")
def warm_pool() -> None:
    """Start the four-worker process pool (untimed) so timed parallel tests measure the work."""
    pipeline = Pipeline([sleepy_item], name="warm", backend=backend(items="parallel"))
    assert pipeline.map(x=[1, 2, 3, 4], map_over="x") == {"m": [1, 2, 3, 4]}


# --- A7.1 to A7.3: concurrency in each mode ----------------------------------------------------


def test_a7_1_async_nodes_overlap_and_feed_a_sync_combiner() -> None:
    pipeline = Pipeline([slow_a, slow_b, combine], name="p", backend=backend(nodes="async"))
    result, took = elapsed(lambda: pipeline.run(x=1))
    assert result == {"a": 2, "b": 3, "c": 5}
    assert took < 0.5, f"two 0.3 s async nodes took {took:.2f} s; they did not overlap"


def test_a7_1_default_backend_returns_the_same_values_as_async() -> None:
    pipeline = Pipeline([slow_a, slow_b, combine], name="p")
    assert pipeline.run(x=1) == {"a": 2, "b": 3, "c": 5}


def test_a7_2_threaded_nodes_overlap() -> None:
    pipeline = Pipeline(
        [sleepy_left, sleepy_right],
        name="p",
        backend=LocalBackend(node_execution="threaded", max_workers=4),
    )
    result, took = elapsed(lambda: pipeline.run(x=2))
    assert result == {"left": 20, "right": 200}
    assert took < 0.5, f"two 0.3 s threaded nodes took {took:.2f} s; they did not overlap"


def test_a7_2_sequential_nodes_do_not_overlap() -> None:
    # The contrast that makes the threaded timing meaningful.
    pipeline = Pipeline([sleepy_left, sleepy_right], name="p")
    _, took = elapsed(lambda: pipeline.run(x=2))
    assert took >= 0.55


@pytest.mark.parametrize("mode", ["threaded", "async", "parallel"])
def test_a7_3_map_items_run_concurrently(mode: str, warm_pool: None) -> None:
    pipeline = Pipeline([sleepy_item], name="p", backend=backend(items=mode))
    result, took = elapsed(lambda: pipeline.map(x=[1, 2, 3, 4], map_over="x"))
    assert result == {"m": [1, 2, 3, 4]}
    assert took < 1.0, f"4 items of 0.3 s under {mode} map_execution took {took:.2f} s"


# --- A7.4: closures travel to worker processes; unpicklable inputs are named -------------------


def test_a7_4_parallel_node_runs_a_closure_defined_in_the_test(warm_pool: None) -> None:
    offset = 37

    @node(output_name="shifted")
    def shift(x: int) -> tuple[int, int]:
        return x + offset, os.getpid()

    pipeline = Pipeline([shift], name="p", backend=backend(nodes="parallel"))
    shifted, pid = pipeline.run(x=5, output_name="shifted")
    assert shifted == 42
    assert pid != os.getpid(), "the node should have run in a worker process"


def test_a7_4_unpicklable_input_raises_serialization_error_naming_input_and_threaded() -> None:
    @node(output_name="held")
    def hold(guard: Any) -> bool:
        return guard is not None

    pipeline = Pipeline([hold], name="p", backend=backend(nodes="parallel"))
    with pytest.raises(nestflow.SerializationError) as info:
        pipeline.run(guard=threading.Lock())
    message = str(info.value)
    assert "guard" in message
    assert "threaded" in message


# --- A7.5: callbacks run in the coordinating process -------------------------------------------


@pytest.mark.parametrize("mode", ["threaded", "async", "parallel"])
def test_a7_5_map_callbacks_observe_every_event_in_the_test_process(
    mode: str, warm_pool: None
) -> None:
    recorder = PidRecorder()
    pipeline = Pipeline([where], name="p", backend=backend(items=mode), callbacks=[recorder])
    result = pipeline.map(x=[1, 2, 3, 4], map_over="x")
    assert len(result["pid"]) == 4
    if mode == "parallel":
        assert os.getpid() not in result["pid"], "parallel items should run in workers"
    kinds = [event[0] for event in recorder.events]
    assert kinds.count("node_start") == 4
    assert kinds.count("node_end") == 4
    assert kinds.count("item_start") == 4
    assert kinds.count("item_end") == 4
    assert kinds[0] == "pipeline_start"
    assert kinds[1] == "map_start"
    assert kinds[-2:] == ["map_end", "pipeline_end"]
    assert set(recorder.pids) == {os.getpid()}
    assert len(recorder.pids) == len(recorder.events)


# --- A1.7: async nodes are awaited in every mode -----------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a1_7_async_node_value_reaches_downstream_under_every_node_execution(
    mode: str, warm_pool: None
) -> None:
    pipeline = Pipeline([fetch, measure], name="p", backend=backend(nodes=mode))
    assert pipeline.run(x=4) == {"page": 40, "length": 41}


@pytest.mark.parametrize("mode", MODES)
def test_a1_7_async_node_value_reaches_downstream_under_every_map_execution(
    mode: str, warm_pool: None
) -> None:
    pipeline = Pipeline([fetch, measure], name="p", backend=backend(items=mode))
    result = pipeline.map(x=[1, 2, 3], map_over="x")
    assert result == {"page": [10, 20, 30], "length": [11, 21, 31]}


# --- A4.7: result order in parallel maps -------------------------------------------------------


def test_a4_7_parallel_map_returns_items_in_item_order_despite_reversed_durations(
    warm_pool: None,
) -> None:
    delays = [0.3, 0.2, 0.1, 0.0]
    pipeline = Pipeline([wait_for], name="p", backend=backend(items="parallel"))
    assert pipeline.map(delay=delays, map_over="delay") == {"waited": delays}


# --- A10.3 / A10.4: errors from worker processes -----------------------------------------------


def three_levels() -> Pipeline:
    inner = Pipeline([prepare, explode], name="inner")
    mid = Pipeline([inner], name="mid")
    return Pipeline([mid], name="top")


def normalised_notes(exc: BaseException) -> list[str]:
    """The notes with run and trace ids replaced, so two runs can be compared."""
    return [re.sub(r"[0-9a-f]{16,}", "<id>", note) for note in getattr(exc, "__notes__", [])]


def test_a10_3_parallel_node_failure_matches_sequential_type_message_and_notes(
    warm_pool: None,
) -> None:
    with pytest.raises(ZeroDivisionError) as sequential:
        three_levels().run(x=0)
    parallel_top = three_levels().with_backend(backend(nodes="parallel"))
    with pytest.raises(ZeroDivisionError) as parallel:
        parallel_top.run(x=0)
    assert type(parallel.value) is type(sequential.value) is ZeroDivisionError
    assert str(parallel.value) == str(sequential.value) == "inner failure"
    notes = normalised_notes(parallel.value)
    assert notes == normalised_notes(sequential.value)
    assert any("top > mid > inner > explode" in note for note in notes)


def test_a10_4_unpicklable_exception_from_parallel_node_arrives_as_remote_execution_error(
    warm_pool: None,
) -> None:
    pipeline = Pipeline([raise_picky], name="p", backend=backend(nodes="parallel"))
    with pytest.raises(nestflow.RemoteExecutionError) as info:
        pipeline.run(x=1)
    message = str(info.value)
    assert "PickyError" in message
    assert "E42: the widget is broken" in message


def test_a10_4_unpicklable_exception_from_parallel_map_item_arrives_as_remote_error(
    warm_pool: None,
) -> None:
    pipeline = Pipeline([raise_picky], name="p", backend=backend(items="parallel"))
    with pytest.raises(nestflow.RemoteExecutionError) as info:
        pipeline.map(x=[1, 2], map_over="x")
    message = str(info.value)
    assert "PickyError" in message
    assert "E42: the widget is broken" in message


# --- SPEC 7.3: nested pipelines keep their own backend -----------------------------------------


@node(output_name="doubled")
def double(x: int) -> int:
    return x * 2


@node(output_name="incremented")
def increment(doubled: int) -> int:
    return doubled + 1


@node(output_name="squared")
def square(x: int) -> int:
    return x * x


@node(output_name="halved")
async def halve(x: int) -> float:
    await asyncio.sleep(0.01)
    return x / 2


@node(output_name="total")
def total(halved: float, squared: int) -> float:
    return halved + squared


def test_s7_3_threaded_parent_runs_a_sequential_child_correctly() -> None:
    child = Pipeline([double, increment], name="child", backend=LocalBackend())
    parent = Pipeline(
        [child, square], name="parent", backend=LocalBackend("threaded", max_workers=4)
    )
    assert parent.run(x=3) == {"doubled": 6, "incremented": 7, "squared": 9}


def test_s7_3_async_child_inside_a_threaded_map_gives_every_item_its_values() -> None:
    child = Pipeline([halve, square, total], name="child", backend=LocalBackend("async"))
    parent = Pipeline(
        [child], name="parent", backend=LocalBackend(map_execution="threaded", max_workers=4)
    )
    result = parent.map(x=[2, 4, 6], map_over="x")
    assert result == {
        "halved": [1.0, 2.0, 3.0],
        "squared": [4, 16, 36],
        "total": [5.0, 18.0, 39.0],
    }


def test_s7_3_parallel_child_inside_a_threaded_parent_runs_in_workers(warm_pool: None) -> None:
    child = Pipeline([double, where], name="child", backend=backend(nodes="parallel"))
    parent = Pipeline(
        [child, square], name="parent", backend=LocalBackend("threaded", max_workers=4)
    )
    result = parent.run(x=3)
    assert result["doubled"] == 6
    assert result["squared"] == 9
    assert result["pid"] != os.getpid(), "the parallel child's nodes should run in workers"


# --- A6.4: each level keeps its own node_execution ---------------------------------------------


def timed(name: str) -> Any:
    """A node publishing ``name`` as its (start, end) perf_counter span around a 0.2 s sleep."""

    def span(x: int) -> tuple[float, float]:
        started = perf_counter()
        time.sleep(0.2)
        return started, perf_counter()

    return node(span, output_name=name, name=name)


def overlap(first: tuple[float, float], second: tuple[float, float]) -> bool:
    return max(first[0], second[0]) < min(first[1], second[1])


def test_a6_4_inherited_threaded_level_overlaps_and_explicit_sequential_level_does_not() -> None:
    l3 = Pipeline([timed("q1"), timed("q2")], name="L3", backend=LocalBackend())
    l2 = Pipeline([timed("p1"), timed("p2"), l3], name="L2")
    l1 = Pipeline([l2], name="L1", backend=LocalBackend("threaded", max_workers=4))
    spans = l1.run(x=1)
    assert overlap(spans["p1"], spans["p2"]), "p1 and p2 inherit threaded from L1"
    assert not overlap(spans["q1"], spans["q2"]), "L3 is explicitly sequential"


# --- SPEC 7.2: labels --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("made", "label"),
    [
        (LocalBackend(), "Local(seq)"),
        (LocalBackend("threaded", "threaded", max_workers=4), "Local(threaded×4)"),
        (LocalBackend("async", "async"), "Local(async)"),
        (LocalBackend("parallel", "parallel", max_workers=8), "Local(parallel×8)"),
        (LocalBackend("async", "parallel", max_workers=8), "Local(nodes=async, map=parallel×8)"),
    ],
)
def test_s7_2_label_names_the_modes_and_pool_sizes(made: LocalBackend, label: str) -> None:
    assert made.label == label


# --- SPEC 7.2: argument checks -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"node_execution": "processes"}, {"map_execution": "thread"}, {"node_execution": None}],
)
def test_s7_2_unknown_mode_raises_value_error_listing_the_modes(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as info:
        LocalBackend(**kwargs)
    message = str(info.value)
    assert next(iter(kwargs)) in message
    for mode in MODES:
        assert mode in message


@pytest.mark.parametrize("bad", [0, -2, True, False])
def test_s7_2_max_workers_below_one_or_bool_raises_value_error(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_workers") as info:
        LocalBackend("threaded", max_workers=bad)
    assert ">= 1" in str(info.value) or "at least 1" in str(info.value)
