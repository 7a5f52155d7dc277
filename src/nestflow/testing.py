"""Helpers for testing pipelines and extensions: a recording callback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from nestflow.callbacks.events import CallbackContext, PipelineCallback
from nestflow.runtime.drivers import DRIVERS, forced


class RecordingCallback(PipelineCallback):
    """Keeps every event as ``(hook, args..., ctx)`` tuples, in arrival order.

    ``events`` holds compact tuples such as ``("node_start", "double")`` for easy
    assertions; ``contexts`` the matching ``CallbackContext`` objects.
    """

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.contexts: list[CallbackContext] = []

    def _add(self, event: tuple[Any, ...], ctx: CallbackContext) -> None:
        self.events.append(event)
        self.contexts.append(ctx)

    def names(self, kind: str) -> list[str]:
        """The ids carried by every event of one kind, for example ``names("node_start")``."""
        return [e[1] for e in self.events if e[0] == kind]

    def on_pipeline_start(
        self, pipeline_id: str, inputs: Mapping[str, Any], ctx: CallbackContext
    ) -> None:
        self._add(("pipeline_start", pipeline_id), ctx)

    def on_pipeline_end(
        self, pipeline_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        self._add(("pipeline_end", pipeline_id), ctx)

    def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: CallbackContext) -> None:
        self._add(("node_start", node_id), ctx)

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        self._add(("node_end", node_id), ctx)

    def on_node_cached(self, node_id: str, signature: str, ctx: CallbackContext) -> None:
        self._add(("node_cached", node_id), ctx)

    def on_error(self, node_id: str, error: BaseException, ctx: CallbackContext) -> None:
        self._add(("error", node_id, type(error).__name__), ctx)

    def on_nested_pipeline_start(self, parent_id: str, child_id: str, ctx: CallbackContext) -> None:
        self._add(("nested_start", parent_id, child_id), ctx)

    def on_nested_pipeline_end(
        self, parent_id: str, child_id: str, duration: float, ctx: CallbackContext
    ) -> None:
        self._add(("nested_end", parent_id, child_id), ctx)

    def on_map_start(self, node_id: str, total_items: int, ctx: CallbackContext) -> None:
        self._add(("map_start", total_items), ctx)

    def on_map_item_start(
        self, node_id: str, item_index: int, item: Mapping[str, Any], ctx: CallbackContext
    ) -> None:
        self._add(("item_start", item_index), ctx)

    def on_map_item_end(
        self, node_id: str, item_index: int, duration: float, ctx: CallbackContext
    ) -> None:
        self._add(("item_end", item_index), ctx)

    def on_map_item_cached(
        self, node_id: str, item_index: int, signature: str, ctx: CallbackContext
    ) -> None:
        self._add(("item_cached", item_index), ctx)

    def on_map_end(self, node_id: str, total_duration: float, ctx: CallbackContext) -> None:
        self._add(("map_end",), ctx)


def _contract_nodes() -> dict[str, Any]:
    import asyncio
    import os
    import time

    from nestflow.core.node import node

    @node(output_name="a")
    def inc(x: int) -> int:
        return x + 1

    @node(output_name="b")
    async def double(a: int) -> int:
        await asyncio.sleep(0)
        return a * 2

    @node(output_name="pid")
    def where(a: int) -> int:
        return os.getpid()

    @node(output_name="slow")
    def wait(x: float) -> float:
        time.sleep(x)
        return x

    @node(output_name="boom")
    def explode(a: int) -> int:
        raise ValueError(f"explode saw {a}")

    return {"inc": inc, "double": double, "where": where, "wait": wait, "explode": explode}


class BackendContract:
    """The suite every backend passes: results, order, errors with notes, timeouts, events, nesting.

    Subclass it in a test module with a ``Test`` name and implement ``make_backend``::

        class TestMyBackend(BackendContract):
            def make_backend(self):
                return MyBackend()
    """

    def make_backend(self) -> Any:
        """The backend under test (a fresh one per test)."""
        raise NotImplementedError

    def _pipeline(self, names: list[str], **config: Any) -> Any:
        from nestflow.core.pipeline import Pipeline

        nodes = _contract_nodes()
        return Pipeline([nodes[n] for n in names], name="contract", **config)

    def test_results_match_the_sequential_run(self) -> None:
        pipeline = self._pipeline(["inc", "double"])
        expected = pipeline.run(x=1)
        assert pipeline.with_backend(self.make_backend()).run(x=1) == expected == {"a": 2, "b": 4}

    def test_map_keeps_item_order(self) -> None:
        pipeline = self._pipeline(["wait"], backend=self.make_backend())
        delays = [0.03, 0.02, 0.01, 0.0]
        assert pipeline.map(x=delays, map_over="x") == {"slow": delays}

    def test_a_failure_keeps_its_type_and_gains_the_node_path(self) -> None:
        pipeline = self._pipeline(["inc", "explode"], backend=self.make_backend())
        try:
            pipeline.run(x=1)
        except ValueError as exc:
            assert "explode saw 2" in str(exc)
            assert any("contract > explode" in note for note in exc.__notes__)
        else:
            raise AssertionError("the failing node did not raise")

    def test_a_timeout_stops_waiting_for_the_node(self) -> None:
        import time

        from nestflow.errors import NodeTimeoutError

        pipeline = self._pipeline(["wait"], backend=self.make_backend(), timeout=0.2)
        started = time.perf_counter()
        try:
            pipeline.run(x=3.0)
        except NodeTimeoutError:
            assert time.perf_counter() - started < 2.5
        else:
            raise AssertionError("the node outlived its timeout without NodeTimeoutError")

    def test_events_fire_in_this_process(self) -> None:
        import os

        recorder = PidRecorder()
        pipeline = self._pipeline(
            ["inc", "where"], backend=self.make_backend(), callbacks=[recorder]
        )
        pipeline.run(x=1)
        assert recorder.names("node_end") == ["inc", "where"]
        assert set(recorder.pids) == {os.getpid()}

    def test_nested_pipelines_run_under_the_backend(self) -> None:
        from nestflow.core.pipeline import Pipeline

        inner = self._pipeline(["inc", "double"]).with_name("inner")
        outer = Pipeline([inner], name="outer", backend=self.make_backend())
        assert outer.run(x=2) == {"a": 3, "b": 6}
        mapped = Pipeline([inner.as_node(map_over="x")], name="outer", backend=self.make_backend())
        assert mapped.run(x=[1, 2]) == {"a": [2, 3], "b": [4, 6]}


class PidRecorder(RecordingCallback):
    """A recording callback that also notes the process id of every hook call."""

    def __init__(self) -> None:
        super().__init__()
        self.pids: list[int] = []

    def _add(self, event: tuple[Any, ...], ctx: CallbackContext) -> None:
        import os

        self.pids.append(os.getpid())
        super()._add(event, ctx)


@contextlib.contextmanager
def forced_driver(driver: str) -> Iterator[None]:
    """Run every pipeline started in this block on ``driver`` (``"sync"`` or ``"async"``).

    ``"async"`` sends levels the synchronous loop would take to the asynchronous driver,
    so a contract suite can compare the two on one scenario; ``"sync"`` is the default
    choice (levels that need concurrency always take the asynchronous driver). Which
    drivers ran is in ``report.drivers``.
    """
    if driver not in DRIVERS:
        raise ValueError(f"driver must be one of {', '.join(DRIVERS)}, got {driver!r}.")
    token = forced.set(driver)
    try:
        yield
    finally:
        forced.reset(token)
