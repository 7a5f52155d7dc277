"""How levels share workers: async items in flight, slots never held by sub-runs, fallbacks.

Timed tests leave wide margins (the suite may run on two busy cores); every run that could
deadlock runs under a watchdog thread so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
import warnings
from collections.abc import Callable
from time import perf_counter
from typing import Any

import cloudpickle
import pytest

import nestflow
from nestflow import BackendWarning, LocalBackend, NodeTimeoutError, Pipeline, node
from nestflow.runtime import remote
from nestflow.runtime.api import effective_config


def within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()`` in a watchdog thread: fails the test if it takes longer than ``seconds``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the run did not finish within {seconds} s (deadlock?)"
    if "error" in box:
        raise box["error"]
    return box["value"]


# --- async maps: every item in flight, max_workers bounds only the offload threads ------------


@node(output_name="slept")
async def nap(x: int) -> int:
    await asyncio.sleep(0.2)
    return x


def test_async_map_keeps_every_item_in_flight_whatever_max_workers() -> None:
    pipeline = Pipeline(
        [nap], name="naps", backend=LocalBackend(map_execution="async", max_workers=2)
    )
    started = perf_counter()
    result = pipeline.map(x=list(range(40)), map_over="x")
    took = perf_counter() - started
    assert result == {"slept": list(range(40))}
    assert took < 1.5, f"40 items of 0.2 s took {took:.2f} s: items were not all in flight"


def test_async_map_offloads_sync_nodes_to_at_most_max_workers_threads() -> None:
    lock = threading.Lock()
    running = [0]
    peak = [0]

    @node(output_name="y")
    def busy(x: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return x + 1

    pipeline = Pipeline(
        [busy], name="busy", backend=LocalBackend(map_execution="async", max_workers=3)
    )
    assert pipeline.map(x=list(range(12)), map_over="x") == {"y": list(range(1, 13))}
    assert 1 < peak[0] <= 3


# --- a sub-run never holds a parent worker slot ------------------------------------------------


@node(output_name="d")
def slow_double(x: int) -> int:
    time.sleep(0.05)
    return x * 2


@node(output_name="e")
def slow_inc(d: int) -> int:
    time.sleep(0.05)
    return d + 1


def test_nested_pipelines_under_a_one_thread_parent_do_not_deadlock() -> None:
    left = Pipeline([slow_double, slow_inc], name="left")
    right = left.as_node(output_mapping={"d": "d2", "e": "e2"}, name="right")
    parent = Pipeline(
        [left, right], name="parent", backend=LocalBackend("threaded", "threaded", max_workers=1)
    )
    assert within(20, lambda: parent.run(x=3)) == {"d": 6, "e": 7, "d2": 6, "e2": 7}


def test_a_one_thread_threaded_map_of_nested_threaded_pipelines_does_not_deadlock() -> None:
    inner = Pipeline([slow_double, slow_inc], name="inner")
    outer = Pipeline(
        [inner.as_node(map_over="x", name="per_x")],
        name="outer",
        backend=LocalBackend("threaded", "threaded", max_workers=1),
    )
    result = within(20, lambda: outer.map(x=[[1, 2], [3]], map_over="x"))
    assert result == {"d": [[2, 4], [6]], "e": [[3, 5], [7]]}


# --- a parallel level inside a parallel map item: one BackendWarning, correct values ------------


@node(output_name="sq")
def square(x: int) -> int:
    return x * x


@node(output_name="plus")
def plus_one(sq: int) -> int:
    return sq + 1


def test_parallel_child_inside_a_parallel_map_falls_back_with_one_backend_warning() -> None:
    child = Pipeline(
        [square, plus_one], name="child", backend=LocalBackend("parallel", max_workers=2)
    )
    parent = Pipeline(
        [child], name="parent", backend=LocalBackend(map_execution="parallel", max_workers=2)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = within(120, lambda: parent.map(x=[1, 2, 3, 4, 5, 6], map_over="x"))
    assert result == {"sq": [1, 4, 9, 16, 25, 36], "plus": [2, 5, 10, 17, 26, 37]}
    backend_warnings = [w for w in caught if issubclass(w.category, BackendWarning)]
    assert len(backend_warnings) == 1, [str(w.message) for w in caught]
    message = str(backend_warnings[0].message)
    assert "worker process" in message
    assert "sequentially" in message
    assert message.startswith("In the map items of `parent`")


# --- abandoned threads are reported -----------------------------------------------------------


def test_a_timed_out_thread_is_abandoned_and_named_in_the_report() -> None:
    release = threading.Event()

    @node(output_name="out", timeout=0.2)
    def stuck(x: int) -> int:
        release.wait(5)
        return x

    pipeline = Pipeline([stuck], name="stuck_pipe", backend=LocalBackend("threaded"))
    try:
        with nestflow.capture() as cap, pytest.raises(NodeTimeoutError, match="abandoned"):
            pipeline.map(x=[7], map_over="x")
    finally:
        release.set()
    assert cap.last.abandoned_threads == ["stuck_pipe > stuck [item 0]"]


# --- the run's event loop -----------------------------------------------------------------------


def test_runs_on_one_thread_reuse_its_loop_and_cancel_what_a_run_leaves_behind() -> None:
    cancelled = threading.Event()

    async def linger() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    @node(output_name="loop_id")
    async def spawn(x: int) -> int:
        asyncio.get_running_loop().create_task(linger())
        await asyncio.sleep(0)
        return id(asyncio.get_running_loop())

    pipeline = Pipeline([spawn], name="spawner", backend=LocalBackend("async"))
    first = pipeline.run(x=1, output_name="loop_id")
    assert cancelled.is_set(), "a task left behind by the run should be cancelled at its end"
    second = pipeline.run(x=2, output_name="loop_id")
    assert first == second


def test_a_failed_run_leaves_the_thread_able_to_run_again() -> None:
    @node(output_name="y")
    async def maybe_fail(x: int) -> int:
        await asyncio.sleep(0)
        if x < 0:
            raise ValueError("negative")
        return x

    pipeline = Pipeline([maybe_fail], name="maybe", backend=LocalBackend("async"))
    with pytest.raises(ValueError, match="negative"):
        pipeline.run(x=-1)
    assert pipeline.run(x=4) == {"y": 4}


# --- map items share one pickled pipeline -------------------------------------------------------


def test_items_of_one_map_carry_one_pickled_pipeline_loaded_once_per_process() -> None:
    pipeline = Pipeline([square, plus_one], name="pair")
    shared = remote.ItemShared(pipeline, effective_config(pipeline, ()), ("sq", "plus"), False)
    where = remote.Location(0, ("pair",), ("pair",), (0,), 2, "run", "trace")
    one = cloudpickle.dumps(remote.ItemRun(shared, {"x": 2}, where))
    two = cloudpickle.dumps(remote.ItemRun(shared, {"x": 3}, where))
    assert shared.blob() in one
    assert shared.blob() in two
    first, second = pickle.loads(one), pickle.loads(two)
    assert first.shared is second.shared, "a process loads the shared part once"
    assert first.run().values == {"sq": 4, "plus": 5}
    assert second.run().values == {"sq": 9, "plus": 10}
