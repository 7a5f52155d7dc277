"""A timeout is a limit: a call that returns after its deadline fails (SPEC 7.7).

A node that holds the GIL in one long C call, or an ``async def`` node that blocks the
event loop, keeps even the wait for it from ending at the deadline. When it returns late,
its result is discarded: ``NodeTimeoutError``, never published, never cached.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

from nestflow import DiskCache, LocalBackend, NodeTimeoutError, Pipeline, node

cloudpickle.register_pickle_by_value(sys.modules[__name__])

LIMIT = 0.05
"""Far below what the nodes below take on any machine."""


@node(output_name="y", timeout=LIMIT)
def holds_the_gil(x: int) -> int:
    sum(range(20_000_000))  # one C call of well over LIMIT: it holds the GIL throughout
    return x


@node(output_name="y", timeout=LIMIT)
async def blocks_the_loop(x: int) -> int:
    time.sleep(4 * LIMIT)  # a blocking call in a coroutine: nothing can cancel it
    return x


@node(output_name="z")
def after(y: int) -> int:
    return y + 1


NODE_MODES = {
    "sequential": LocalBackend(),
    "threaded": LocalBackend(node_execution="threaded"),
    "async": LocalBackend(node_execution="async"),
}
MAP_MODES = {
    "sequential": LocalBackend(),
    "threaded": LocalBackend(map_execution="threaded"),
    "async": LocalBackend(map_execution="async"),
    "parallel": LocalBackend(map_execution="parallel", max_workers=2),
}
LATE = [holds_the_gil, blocks_the_loop]


@pytest.mark.parametrize("mode", sorted(NODE_MODES))
@pytest.mark.parametrize("late", LATE, ids=lambda n: n.name)
def test_a_call_that_returns_late_fails_with_a_timeout(mode: str, late: object) -> None:
    pipeline = Pipeline([late, after], name="p", backend=NODE_MODES[mode])
    with pytest.raises(NodeTimeoutError, match=r"timeout of 0\.05 s"):
        pipeline.run(x=1)


@pytest.mark.parametrize("mode", sorted(MAP_MODES))
@pytest.mark.parametrize("late", LATE, ids=lambda n: n.name)
def test_a_late_item_fails_in_every_map_mode(mode: str, late: object) -> None:
    pipeline = Pipeline([late, after], name="p", backend=MAP_MODES[mode])
    with pytest.raises(NodeTimeoutError):
        pipeline.map(x=[1, 2], map_over="x")
    out = pipeline.map(x=[1, 2], map_over="x", on_error="continue")
    assert out["z"] == [None, None]
    assert {e.exception_type for e in out.report.errors} == {"NodeTimeoutError"}


def test_a_late_result_is_never_cached(tmp_path: Path) -> None:
    pipeline = Pipeline([holds_the_gil, after], name="p", cache=DiskCache(tmp_path))
    with pytest.raises(NodeTimeoutError):
        pipeline.run(x=1)
    relaxed = Pipeline(
        [holds_the_gil.with_options(timeout=None), after],  # type: ignore[attr-defined]
        name="p",
        cache=DiskCache(tmp_path),
    )
    out = relaxed.run(x=1)
    assert out["z"] == 2
    assert out.report.cache_hits == 0, "the late result was not stored"


def test_a_call_within_its_limit_is_kept() -> None:
    @node(output_name="y", timeout=5.0)
    def quick(x: int) -> int:
        return x

    out = Pipeline([quick, after], name="p", backend=LocalBackend(node_execution="threaded")).run(
        x=1
    )
    assert out["z"] == 2


def test_a_worker_process_left_running_a_call_is_replaced(tmp_path: Path) -> None:
    """A map item in a worker process whose node was abandoned at its deadline leaves a
    thread there: the worker ends after sending the item back, and the next item gets a
    fresh process, so the runaway call neither finishes nor holds the pool."""
    started = tmp_path / "started"
    finished = tmp_path / "finished"

    @node(output_name="pid", timeout=0.3)
    def work(x: int) -> int:
        if x == 0:
            started.write_text(str(os.getpid()))
            time.sleep(20)
            finished.write_text("the abandoned call finished")
        return os.getpid()

    backend = LocalBackend(map_execution="parallel", max_workers=1)
    out = Pipeline([work], name="p", backend=backend).map(
        x=[0, 1, 2], map_over="x", on_error="continue"
    )
    first = int(started.read_text())
    assert out["pid"][0] is None
    assert out["pid"][1] != first, "the item after the runaway call ran in a new process"
    assert out["pid"][1] == out["pid"][2], "a worker without a runaway call is kept"
    assert not finished.exists()
