"""A timed-out call on dask does not leave its worker blocked (SPEC 7.7).

A thread cannot be interrupted, so the worker that still runs a call past its deadline is
restarted through its nanny: the next tasks run at once on a fresh process, and the
abandoned call never finishes. One LocalCluster with one worker of one thread: a blocked
worker would make every later task wait for the abandoned call.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

from nestflow import DaskBackend, NodeTimeoutError, Pipeline, node

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def backend() -> Iterator[DaskBackend]:
    backend = DaskBackend(n_workers=1, threads_per_worker=1)
    yield backend
    backend.close()


def stuck_node(marker: Path) -> object:
    @node(output_name="y", timeout=0.5)
    def stuck(x: int) -> int:
        time.sleep(20)
        marker.write_text("the abandoned call finished")
        return x

    return stuck


@node(output_name="pid")
def where(x: int) -> int:
    return os.getpid()


def _worker_pid(backend: DaskBackend) -> int:
    return int(Pipeline([where], name="probe", backend=backend).run(x=0)["pid"])


def test_a_node_past_its_deadline_restarts_its_worker(backend: DaskBackend, tmp_path: Path) -> None:
    before = _worker_pid(backend)
    marker = tmp_path / "finished"
    with pytest.raises(NodeTimeoutError, match=r"timeout of 0\.5 s"):
        Pipeline([stuck_node(marker)], name="slow", backend=backend).run(x=1)
    after = _worker_pid(backend)  # waits for a worker that can run it
    assert after != before, "the worker that ran the abandoned call was replaced"
    assert not marker.exists()


def test_a_map_item_that_left_a_thread_behind_restarts_its_worker(
    backend: DaskBackend, tmp_path: Path
) -> None:
    """A shipped map item runs its nodes in the worker; a node inside it abandoned at its
    deadline leaves a thread there, and the worker is replaced once the item is back."""
    before = _worker_pid(backend)
    marker = tmp_path / "finished"
    pipeline = Pipeline([stuck_node(marker)], name="items", backend=backend)
    out = pipeline.map(x=[1, 2], map_over="x", on_error="continue")
    assert out["y"] == [None, None]
    assert {e.exception_type for e in out.report.errors} == {"NodeTimeoutError"}
    after = _worker_pid(backend)
    assert after != before
    assert not marker.exists()
