"""DaskBackend on real dask.distributed: a LocalCluster, and a scheduler with two workers."""

from __future__ import annotations

import itertools
import os
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import distributed
import pytest

import nestflow
from nestflow import (
    BackendError,
    DaskBackend,
    DiskCache,
    LocalBackend,
    NodeTimeoutError,
    Pipeline,
    node,
)
from nestflow.testing import BackendContract, PidRecorder

# Workers started from the command line cannot import this test module: ship its
# functions by value, as they would be from a script or a notebook.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

_shared: DaskBackend | None = None


def shared_backend() -> DaskBackend:
    """One LocalCluster for the contract tests of this module (starting one takes seconds)."""
    global _shared
    if _shared is None:
        _shared = DaskBackend(n_workers=2)
    return _shared


@pytest.fixture(scope="module", autouse=True)
def _close_shared() -> Iterator[None]:
    yield
    if _shared is not None:
        _shared.close()


class TestDaskBackendContract(BackendContract):
    def make_backend(self) -> DaskBackend:
        return shared_backend()


@node(output_name="m")
def nap(x: int) -> int:
    time.sleep(0.5)
    return x * 2


@node(output_name="worker")
def worker_name(x: int) -> str:
    return str(distributed.get_worker().name)


@node(output_name="w2")
def worker_name_again(worker: str) -> str:
    return str(distributed.get_worker().name)


@node(output_name="span")
def nap_span(x: int) -> tuple[float, float]:
    began = time.time()
    time.sleep(1.0)
    return began, time.time()


def test_a7_6_local_cluster_starts_lazily_runs_eight_wide_and_closes() -> None:
    backend = DaskBackend(n_workers=8)
    assert backend.label == "Dask(local×8)"
    assert backend._cluster is None, "no cluster before first use"
    pipeline = Pipeline([nap], name="naps", backend=backend)
    spans = Pipeline([nap_span], name="spans", backend=backend)
    try:
        assert pipeline.run(x=1) == {"m": 2}  # starts the cluster
        client = backend.client
        assert len(client.scheduler_info()["workers"]) == 8
        result = pipeline.map(x=list(range(8)), map_over="x")
        intervals = spans.map(x=list(range(8)), map_over="x")["span"]
    finally:
        backend.close()
    assert result == {"m": [0, 2, 4, 6, 8, 10, 12, 14]}
    # Eight wide: every item was running while every other one was (their intervals overlap).
    assert max(began for began, _ in intervals) < min(ended for _, ended in intervals)
    assert client.status == "closed"
    assert backend._cluster is None


def test_a7_5_a9_9_events_fire_in_this_process_in_item_and_node_modes() -> None:
    recorder = PidRecorder()
    pipeline = Pipeline(
        [Pipeline([worker_name, worker_name_again], name="inner")],
        name="outer",
        backend=shared_backend(),
        callbacks=[recorder],
    )
    pipeline.map(x=[1, 2, 3], map_over="x")
    pipeline.run(x=1)
    assert set(recorder.pids) == {os.getpid()}
    assert recorder.names("node_end").count("worker_name") == 4
    item_ends = [e for e in recorder.events if e[0] == "item_end"]
    assert [e[1] for e in item_ends] == [0, 1, 2] or sorted(e[1] for e in item_ends) == [0, 1, 2]
    depths = {
        c.depth
        for e, c in zip(recorder.events, recorder.contexts, strict=True)
        if e == ("node_end", "worker_name")
    }
    assert depths == {1}


def test_a10_3_failure_under_dask_has_the_same_type_message_and_notes() -> None:
    @node(output_name="q")
    def explode(x: int) -> float:
        raise ZeroDivisionError("inner failure")

    def notes_under(backend: object) -> tuple[type[BaseException], str, list[str]]:
        top = Pipeline([Pipeline([explode], name="inner")], name="top", backend=backend)
        with pytest.raises(ZeroDivisionError) as info:
            top.run(x=1)
        notes = [n for n in info.value.__notes__ if "attempts" not in n]
        return type(info.value), str(info.value), notes

    assert notes_under(shared_backend()) == notes_under(LocalBackend())


def test_dask_timeout_cancels_the_future_and_the_cluster_keeps_serving() -> None:
    @node(output_name="s", timeout=0.3)
    def stall(x: int) -> int:
        time.sleep(2)
        return x

    backend = shared_backend()
    started = time.perf_counter()
    with pytest.raises(NodeTimeoutError, match="stall"):
        Pipeline([stall], backend=backend).run(x=1)
    assert time.perf_counter() - started < 1.5
    assert Pipeline([nap], backend=backend).run(x=3) == {"m": 6}


def test_a_failing_item_fails_the_map_fast_and_cancels_the_items_still_queued() -> None:
    @node(output_name="y")
    def fail_on_three(x: int) -> int:
        if x == 3:
            raise KeyError("item three")
        time.sleep(0.2)
        return x

    recorder = PidRecorder()
    pipeline = Pipeline(
        [fail_on_three], name="faily", backend=shared_backend(), callbacks=[recorder]
    )
    started = time.perf_counter()
    with pytest.raises(KeyError, match="item three") as info:
        pipeline.map(x=list(range(40)), map_over="x")
    took = time.perf_counter() - started
    assert any("item 3" in note for note in info.value.__notes__)
    assert took < 4.0, (
        f"40 items of 0.2 s on 2 workers: the rest should be cancelled ({took:.1f} s)"
    )
    ends = [e for e in recorder.events if e[0] == "item_end"]
    assert len(ends) == 40, "every started item gets its end event, cancelled ones included"
    assert Pipeline([nap], backend=shared_backend()).run(x=2) == {"m": 4}


@node(output_name="cubed")
def cube(v: int) -> int:
    return v**3


def test_a_dask_map_fills_a_disk_cache_and_a_warm_map_sends_nothing(tmp_path: Path) -> None:
    recorder = PidRecorder()
    pipeline = Pipeline([cube], name="cubes", backend=shared_backend(), cache=DiskCache(tmp_path))
    items = list(range(12))
    assert pipeline.map(v=items, map_over="v") == {"cubed": [v**3 for v in items]}
    warm = pipeline.with_cache(DiskCache(tmp_path)).with_callbacks([recorder])
    with nestflow.capture() as cap:
        assert warm.map(v=items, map_over="v") == {"cubed": [v**3 for v in items]}
    assert cap.last.cache_hits == 12
    assert [e for e in recorder.events if e[0] == "item_start"] == []
    assert sorted(e[1] for e in recorder.events if e[0] == "item_cached") == items


def test_describe_config_shows_the_dask_label_inherited_by_nested_levels() -> None:
    inner = Pipeline([nap], name="inner")
    outer = Pipeline([inner], name="outer", backend=DaskBackend(n_workers=3))
    top, nested = outer.describe_config().splitlines()
    assert top.startswith("outer [Dask(local×3)*")
    assert "inner [↓ Dask(local×3)," in nested


def test_unreachable_scheduler_is_a_clear_error_within_the_connect_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = DaskBackend(f"tcp://127.0.0.1:{port}", connect_timeout=2)
    started = time.perf_counter()
    with pytest.raises(BackendError, match="Cannot reach the dask scheduler"):
        Pipeline([nap], backend=backend).run(x=1)
    assert time.perf_counter() - started < 10


def test_dask_backend_pickles_as_its_configuration() -> None:
    backend = DaskBackend("tcp://127.0.0.1:8786", resources={"GPU": 1})
    copy = pickle.loads(pickle.dumps(backend))
    assert copy.label == "Dask(tcp://127.0.0.1:8786, GPU=1)"
    assert copy._client is None


def test_bad_dask_options_say_what_is_expected() -> None:
    with pytest.raises(ValueError, match="node_execution"):
        DaskBackend(node_execution="gpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_workers"):
        DaskBackend(n_workers=0)


def test_missing_dask_extra_fails_on_use_with_the_install_command() -> None:
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "import nestflow\n"
        "try:\n    nestflow.DaskBackend()\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'nestflow[dask]'" in out.stdout


# --- a real scheduler and two workers, one with a GPU resource ------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    dask = Path(sys.executable).with_name("dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask")
    commands = [
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        [dask, "worker", address, "--name", "cpu", "--nthreads", "1", "--no-dashboard"],
        [
            dask,
            "worker",
            address,
            "--name",
            "gpu",
            "--nthreads",
            "1",
            "--no-dashboard",
            "--resources",
            "GPU=1",
        ],
    ]
    processes = []
    for index, command in enumerate(commands):
        with (logs / f"{index}.log").open("w") as log:
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        if index == 0:
            time.sleep(1.0)
    try:
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(30)


def test_a7_7_resources_send_a_sub_pipeline_only_to_the_gpu_worker(scheduler: str) -> None:
    gpu = DaskBackend(scheduler, resources={"GPU": 1})
    anywhere = DaskBackend(scheduler)
    try:
        gpu_part = Pipeline([worker_name, worker_name_again], name="gpu_part").with_backend(gpu)
        outer = Pipeline([gpu_part], name="outer", backend=anywhere)
        runs = [outer.run(x=i) for i in range(4)]
        mapped = outer.map(x=list(range(6)), map_over="x")
        spread = Pipeline([worker_name], backend=anywhere).map(x=list(range(12)), map_over="x")
    finally:
        gpu.close()
        anywhere.close()
    assert {r["worker"] for r in runs} | {r["w2"] for r in runs} == {"gpu"}
    assert set(mapped["worker"]) | set(mapped["w2"]) == {"gpu"}
    assert set(spread["worker"]) <= {"cpu", "gpu"}
    assert gpu.label == f"Dask({scheduler}, GPU=1)"


@node(output_name="span")
def timed_item(x: int) -> tuple[float, float]:
    started = time.time()  # wall clock: comparable across the worker processes
    time.sleep(0.3)
    return started, time.time()


def _overlapping(spans: list[tuple[float, float]]) -> bool:
    ordered = sorted(spans)
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(ordered))


def test_a_sequential_dask_map_runs_its_items_one_at_a_time() -> None:
    # A cluster of its own, with two workers: a parallel map overlaps its items (the shared
    # one may be restarting a worker after an earlier test's timeout).
    own = DaskBackend(n_workers=2)
    client = own.client
    client.wait_for_workers(2, timeout=60)
    sequential = DaskBackend(client=client, map_execution="sequential")
    parallel = DaskBackend(client=client, map_execution="parallel")
    items = {"x": [1, 2, 3, 4], "map_over": "x", "output_name": "span"}
    one_by_one = Pipeline([timed_item], name="items", backend=sequential).map(**items)
    side_by_side = Pipeline([timed_item], name="items", backend=parallel).map(**items)
    own.close()
    assert not _overlapping(one_by_one)
    assert _overlapping(side_by_side)
