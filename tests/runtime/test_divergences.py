"""Regressions: where the runtime diverges from SPEC 7 and 9.5 and from docs/backends.md.

1. A backend's session is asked to submit every function node call (SPEC 7.5), whatever the
   modes; a sequential/sequential backend must not be bypassed by the in-process loops.
2. ``report.started_at`` is the wall-clock start of the run on every path (SPEC 9.5).
3. A nested level with an explicit ``LocalBackend()`` runs in the process that runs the
   enclosing level (SPEC 7.3, docs/backends.md "Nesting").
4. nestflow never draws from the user's global ``random``: seeding it neither repeats ids nor
   makes a worker reuse another map's pipeline.

Everything runs on real parts: a real dask cluster with two worker processes, real process
pools, no fakes in the runtime. No assertion depends on how long anything takes.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import cloudpickle
import distributed
import pytest
from distributed.deploy.subprocess import SubprocessCluster

from nestflow import UNSET, DaskBackend, DiskCache, LocalBackend, Outputs, Pipeline, node
from nestflow.backends import Backend, NodeCall, Session
from nestflow.testing import RecordingCallback

# Dask and process-pool workers cannot import this test module: ship its functions by value,
# as they would be from a script or a notebook.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

Where = tuple[int, str | None]
"""Where a node ran: the process id and the dask worker's address (``None`` outside dask)."""


def _here() -> Where:
    try:
        worker = distributed.get_worker().address
    except ValueError:
        worker = None
    return os.getpid(), worker


@node(output_name="a")
def inc(x: int) -> int:
    return x + 1


@node(output_name="b")
def double(a: int) -> int:
    return a * 2


@node(output_name="outer_at")
def outer_at(x: int) -> Where:
    return _here()


@node(output_name="inner_at")
def inner_at(x: int) -> Where:
    return _here()


@node(output_name="y")
def plus_one(x: int) -> int:
    return x + 1


@node(output_name="y")
def times_hundred(x: int) -> int:
    return x * 100


@pytest.fixture(autouse=True)
def _global_random_restored() -> Iterator[None]:
    """These tests seed the global ``random``: later tests get the state they would have had."""
    state = random.getstate()
    yield
    random.setstate(state)


# --- real dask clusters ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    """A LocalCluster of two worker processes, each advertising one GPU resource."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        resources={"GPU": 1},
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    with cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def worker_pids(client: distributed.Client) -> set[int]:
    """The process ids of the cluster's two workers."""
    return set(client.run(os.getpid).values())


@pytest.fixture(scope="module")
def remote_client() -> Iterator[distributed.Client]:
    """A cluster whose scheduler runs in a process of its own (two worker processes).

    A LocalCluster's scheduler runs in this process, and its gather draws from the global
    ``random`` (``random.choice`` in ``distributed.utils_comm.gather_from_workers``), so a
    check of ``random.getstate()`` needs the scheduler elsewhere.
    """
    cluster = SubprocessCluster(
        n_workers=2,
        threads_per_worker=1,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    with cluster, distributed.Client(cluster) as dask_client:
        dask_client.wait_for_workers(2)
        yield dask_client


# --- 1. a custom backend is always asked to submit ----------------------------------------------


class RecordingBackend:
    """A custom backend written only against the public protocol (SPEC 7.5)."""

    label = "Recording(seq)"
    node_execution = "sequential"
    map_execution = "sequential"

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def open(self) -> RecordingSession:
        return RecordingSession(self.submitted)


class RecordingSession:
    """Records the node path of every call it is given and runs the call inline."""

    remote = False

    def __init__(self, submitted: list[str]) -> None:
        self.submitted = submitted

    def submit(self, task: NodeCall) -> Future[Any]:
        self.submitted.append(task.node_path)
        future: Future[Any] = Future()
        try:
            future.set_result(task.run())
        except Exception as exc:
            future.set_exception(exc)
        return future

    def capacity(self, dimension: str) -> int | None:
        return 1

    def close(self) -> None:
        pass


def _flat(backend: Any = UNSET) -> Pipeline:
    return Pipeline([inc, double], name="flat", backend=backend)


def _nested(backend: Any = UNSET) -> Pipeline:
    return Pipeline([inc, Pipeline([double], name="inner")], name="outer", backend=backend)


def _mapped_child(backend: Any) -> Pipeline:
    inner = Pipeline([inc, double], name="inner").as_node(map_over="x", name="per_x")
    return Pipeline([inner], name="outer", backend=backend)


SHAPES: dict[str, tuple[Callable[[Any], Pipeline], list[str]]] = {
    "flat": (_flat, ["flat > inc", "flat > double"]),
    "nested": (_nested, ["outer > inc", "outer > inner > double"]),
}


@pytest.mark.parametrize("how", ["run", "map"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_sequential_custom_backend_is_handed_every_function_node_call(
    shape: str, how: str
) -> None:
    """SPEC 7.5: the runtime hands the session every task; its modes only say how many at once."""
    backend = RecordingBackend()
    assert isinstance(backend, Backend)
    assert isinstance(backend.open(), Session)
    build, paths = SHAPES[shape]
    pipeline = build(backend)
    if how == "run":
        assert pipeline.run(x=1) == {"a": 2, "b": 4}
        expected = paths
    else:
        assert pipeline.map(x=[1, 2, 3], map_over="x") == {"a": [2, 3, 4], "b": [4, 6, 8]}
        expected = paths * 3
    assert backend.submitted == expected, (
        f"the session of {backend.label} was handed {backend.submitted}, expected {expected}"
    )


def test_a_sequential_custom_backend_is_handed_the_calls_of_a_mapped_child() -> None:
    backend = RecordingBackend()
    pipeline = _mapped_child(backend)
    assert pipeline.run(x=[1, 2]) == {"a": [2, 3], "b": [4, 6]}
    expected = ["outer > per_x > inc", "outer > per_x > double"] * 2
    assert backend.submitted == expected, (
        f"the session was handed {backend.submitted}, expected {expected}"
    )


def _sequential_dask(client: distributed.Client) -> DaskBackend:
    return DaskBackend(
        client=client,
        node_execution="sequential",
        map_execution="sequential",
        resources={"GPU": 1},
    )


def _locations(result: dict[str, Any]) -> list[Where]:
    found: list[Where] = []
    for name in ("outer_at", "inner_at"):
        value = result.get(name)
        if isinstance(value, list):
            found.extend(value)
        elif value is not None:
            found.append(value)
    return found


@pytest.mark.parametrize("how", ["run", "map"])
@pytest.mark.parametrize("shape", ["flat", "nested"])
def test_a_sequential_dask_backend_runs_every_node_on_the_cluster(
    client: distributed.Client, worker_pids: set[int], shape: str, how: str
) -> None:
    """SPEC 7.4: nodes under a DaskBackend are dask tasks, one at a time when sequential."""
    backend = _sequential_dask(client)
    if shape == "flat":
        pipeline = Pipeline([outer_at], name="flat", backend=backend)
    else:
        pipeline = Pipeline(
            [outer_at, Pipeline([inner_at], name="inner")], name="outer", backend=backend
        )
    result = pipeline.run(x=1) if how == "run" else pipeline.map(x=[1, 2, 3], map_over="x")
    here = os.getpid()
    where = _locations(result)
    assert where, result
    in_this_process = [w for w in where if w[0] == here]
    assert not in_this_process, (
        f"{len(in_this_process)} of {len(where)} nodes ran in the test process ({here}), "
        f"not on the dask workers {sorted(worker_pids)}: {where}"
    )
    assert {pid for pid, _ in where} <= worker_pids
    assert all(worker is not None for _, worker in where), where


# --- 2. report.started_at is a wall-clock timestamp ------------------------------------------


def _report_of(call: Callable[[], Outputs]) -> tuple[float, float, float]:
    before = time.time()
    report = call().report
    after = time.time()
    return before, report.started_at, after


THREADED = LocalBackend(node_execution="threaded", map_execution="threaded", max_workers=2)

STARTS: dict[str, Callable[[Path], Callable[[], Outputs]]] = {
    "run": lambda _: lambda: _flat().run(x=1),
    "map": lambda _: lambda: _flat().map(x=[1, 2], map_over="x"),
    "nested-run": lambda _: lambda: _nested().run(x=1),
    "cached-run": lambda tmp: lambda: _flat().with_cache(DiskCache(tmp)).run(x=1),
    "cached-map": lambda tmp: (
        lambda: _flat().with_cache(DiskCache(tmp)).map(x=[1, 2], map_over="x")
    ),
    "callbacks-run": lambda _: lambda: _flat().with_callbacks([RecordingCallback()]).run(x=1),
    "callbacks-map": lambda _: (
        lambda: _flat().with_callbacks([RecordingCallback()]).map(x=[1, 2], map_over="x")
    ),
    "threaded-run": lambda _: lambda: _flat(THREADED).run(x=1),
    "threaded-map": lambda _: lambda: _flat(THREADED).map(x=[1, 2], map_over="x"),
}


@pytest.mark.parametrize("path", list(STARTS))
def test_report_started_at_is_the_wall_clock_time_the_run_started(
    path: str, tmp_path: Path
) -> None:
    """SPEC 9.5: ``started_at`` is when the run started (``time.time()``), on every path."""
    before, started_at, after = _report_of(STARTS[path](tmp_path))
    # One second of slack either side only absorbs a wall-clock adjustment; 0.0 is far off.
    assert before - 1.0 <= started_at <= after + 1.0, (
        f"report.started_at is {started_at!r}, not a timestamp between {before} and {after}"
    )


# --- 3. a nested LocalBackend() level runs where its enclosing level runs -----------------------


def _dask_parent(client: distributed.Client) -> Pipeline:
    child = Pipeline([inner_at], name="child", backend=LocalBackend())
    return Pipeline([outer_at, child], name="parent", backend=DaskBackend(client=client))


def test_a_local_child_of_a_plain_dask_run_runs_in_the_coordinating_process(
    client: distributed.Client, worker_pids: set[int]
) -> None:
    """A plain run on dask: the parent's node is a dask task; the child's runs here.

    SPEC 7.3: each level runs under its own effective backend, and the child's is
    ``LocalBackend()``: sequential, in this process. docs/backends.md ("Nesting"): a nested
    pipeline is a coroutine of its parent's run, and a run that is not shipped is coordinated
    by the calling process. So the child's node runs in the test process: not on a dask
    worker, and not in a process pool started for it.
    """
    result = _dask_parent(client).run(x=1)
    outer_pid, outer_worker = result["outer_at"]
    inner_pid, inner_worker = result["inner_at"]
    assert outer_pid in worker_pids, result
    assert outer_worker is not None, result
    here = os.getpid()
    assert inner_pid == here, (
        f"the LocalBackend() child's node ran in process {inner_pid}, which is neither the "
        f"coordinating process ({here}) nor a dask worker ({sorted(worker_pids)})"
    )
    assert inner_worker is None


def test_a_local_child_of_a_dask_map_item_runs_in_that_items_worker(
    client: distributed.Client, worker_pids: set[int]
) -> None:
    """A map on dask ships each item whole; the item's child runs in that worker.

    docs/backends.md ("Dask"): inside an item task the item's nodes run in that worker;
    ("Nesting") a nested pipeline is a coroutine of its parent's run, here the item's run in
    the worker. SPEC 7.3: the child's ``LocalBackend()`` is sequential and in-process. So for
    every item the child's node runs in the same dask worker process as the parent's node,
    never in a third process.
    """
    result = _dask_parent(client).map(x=[1, 2, 3, 4], map_over="x")
    for index, (outer, inner) in enumerate(
        zip(result["outer_at"], result["inner_at"], strict=True)
    ):
        assert outer[0] in worker_pids, (index, outer)
        assert inner == outer, (
            f"item {index}: the parent's node ran in {outer}, the LocalBackend() child's in "
            f"{inner} (dask workers: {sorted(worker_pids)})"
        )


# --- 4. the user's global random is left alone ------------------------------------------------


RANDOM_CALLS: dict[str, Callable[[Path], object]] = {
    "run": lambda _: _flat().run(x=1),
    "run-callbacks": lambda _: _flat().with_callbacks([RecordingCallback()]).run(x=1),
    "map": lambda _: _flat().map(x=[1, 2, 3], map_over="x"),
    "cached-run": lambda tmp: _flat().with_cache(DiskCache(tmp)).run(x=1),
    "parallel-map": lambda _: _flat(LocalBackend(map_execution="parallel", max_workers=2)).map(
        x=[1, 2, 3], map_over="x"
    ),
}


def _assert_random_untouched(call: Callable[[], object], what: str) -> None:
    random.seed(1234)
    before = random.getstate()
    call()
    changed = random.getstate() != before
    assert not changed, f"{what} changed the global random state (random.getstate())"


@pytest.mark.parametrize("what", list(RANDOM_CALLS))
def test_a_run_leaves_the_global_random_state_alone(what: str, tmp_path: Path) -> None:
    _assert_random_untouched(lambda: RANDOM_CALLS[what](tmp_path), what)


def test_a_dask_map_leaves_the_global_random_state_alone(remote_client: distributed.Client) -> None:
    pipeline = _flat(DaskBackend(client=remote_client))
    pipeline.map(x=[1, 2], map_over="x")  # connections are made: only the map is measured
    _assert_random_untouched(lambda: pipeline.map(x=[1, 2, 3], map_over="x"), "a dask map")
    _assert_random_untouched(lambda: pipeline.run(x=1), "a dask run")


SEEDED: dict[str, Callable[[], Outputs]] = {
    "run": lambda: _flat().run(x=1),
    "map": lambda: _flat().map(x=[1, 2], map_over="x"),
    "run-callbacks": lambda: _flat().with_callbacks([RecordingCallback()]).run(x=1),
}


@pytest.mark.parametrize("what", list(SEEDED))
def test_runs_after_the_same_seed_get_their_own_ids_and_report_files(
    what: str, tmp_path: Path
) -> None:
    """Two seeded scripts (or one script seeding per experiment) keep distinct reports."""
    reports = []
    for _ in range(2):
        random.seed(0)
        reports.append(SEEDED[what]().report)
    first, second = reports
    assert first.run_id != second.run_id, f"both runs got run_id {first.run_id}"
    assert first.trace_id != second.trace_id, f"both runs got trace_id {first.trace_id}"
    first.save(tmp_path)
    second.save(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2, f"report.save of two runs wrote {files}"


def _map_a_then_b(backend: Callable[[], Any]) -> tuple[list[int], list[int]]:
    items = list(range(8))
    random.seed(0)
    a = Pipeline([plus_one], name="a", backend=backend()).map(x=items, map_over="x")
    random.seed(0)
    b = Pipeline([times_hundred], name="b", backend=backend()).map(x=items, map_over="x")
    return a["y"], b["y"]


def test_a_reseeded_parallel_map_runs_its_own_pipeline_in_the_workers() -> None:
    a, b = _map_a_then_b(lambda: LocalBackend(map_execution="parallel", max_workers=2))
    assert a == [x + 1 for x in range(8)]
    assert b == [x * 100 for x in range(8)], f"pipeline b's map returned {b} (a's were {a})"


def test_a_reseeded_dask_map_runs_its_own_pipeline_in_the_workers(
    client: distributed.Client,
) -> None:
    a, b = _map_a_then_b(lambda: DaskBackend(client=client))
    assert a == [x + 1 for x in range(8)]
    assert b == [x * 100 for x in range(8)], f"pipeline b's map returned {b} (a's were {a})"
