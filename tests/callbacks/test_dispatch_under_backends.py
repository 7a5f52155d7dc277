"""A9.9: under threaded, parallel and dask runs every hook runs in this process, one at a time."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from nestflow import DaskBackend, LocalBackend, Pipeline, PipelineCallback, node


class Exclusive(PipelineCallback):
    """Fails if two hook calls ever overlap; records the process of every call."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pids: set[int] = set()
        self.calls = 0
        self.overlaps = 0

    def _hook(self, *args: Any) -> None:
        if not self.lock.acquire(blocking=False):
            self.overlaps += 1
            return
        try:
            self.pids.add(os.getpid())
            self.calls += 1
            time.sleep(0.001)  # widen the window a concurrent call would hit
        finally:
            self.lock.release()

    on_pipeline_start = on_pipeline_end = on_node_start = on_node_end = _hook
    on_map_start = on_map_end = on_map_item_start = on_map_item_end = _hook
    on_nested_pipeline_start = on_nested_pipeline_end = _hook


@node(output_name="slept")
def nap(x: int) -> int:
    time.sleep(0.02)
    return x


@node(output_name="twice")
def twice(slept: int) -> int:
    return slept * 2


@pytest.mark.parametrize(
    "backend",
    [
        LocalBackend("threaded", "threaded", max_workers=4),
        LocalBackend("async", "async", max_workers=4),
        LocalBackend(map_execution="parallel", max_workers=2),
        "dask",
    ],
    ids=["threaded", "async", "parallel", "dask"],
)
def test_a9_9_hooks_run_here_and_never_overlap(backend: Any) -> None:
    made = DaskBackend(n_workers=2) if backend == "dask" else None
    callback = Exclusive()
    inner = Pipeline([nap, twice], name="inner")
    pipeline = Pipeline([inner], name="outer", backend=made or backend, callbacks=[callback])
    try:
        result = pipeline.map(x=list(range(8)), map_over="x")
    finally:
        if made is not None:
            made.close()
    assert result["twice"] == [2 * x for x in range(8)]
    assert callback.overlaps == 0
    assert callback.pids == {os.getpid()}
    assert callback.calls >= 8 * 6  # item start/end, nested start/end, pipeline and nodes
