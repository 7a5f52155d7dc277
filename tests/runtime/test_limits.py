"""Run guards: ``Limits(max_total_steps, max_depth, memory_limit_mb)`` in the one node step."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import nestflow.guards
from nestflow import DiskCache, LocalBackend, Pipeline, RecursionDepthError, node
from nestflow.core.limits import Limits
from nestflow.errors import InvalidOptionError, MemoryLimitError, MemoryWarning, StepLimitError


@node(output_name="y")
def inc(x: int) -> int:
    return x + 1


@node(output_name="z")
def pid_of(y: int) -> int:
    return os.getpid()


INNER = Pipeline([inc], name="inner")

MAP_MODES = {
    "sequential": LocalBackend(),
    "threaded": LocalBackend(map_execution="threaded", max_workers=3),
    "async": LocalBackend(map_execution="async"),
    "parallel": LocalBackend(map_execution="parallel", max_workers=2),
}


@pytest.mark.parametrize("mode", list(MAP_MODES))
def test_the_step_limit_stops_a_map_before_the_execution_that_would_pass_it(mode: str) -> None:
    outer = Pipeline(
        [INNER.as_node(map_over="x")],
        name="outer",
        limits=Limits(max_total_steps=5),
        backend=MAP_MODES[mode],
    )
    assert outer.run(x=[1, 2, 3, 4, 5])["y"] == [2, 3, 4, 5, 6]
    with pytest.raises(StepLimitError) as caught:
        outer.run(x=list(range(10)))
    message = str(caught.value)
    assert "limit of 5 node executions" in message
    assert "outer > inner > inc" in message
    assert "max_total_steps" in message


def test_the_count_covers_the_whole_run_and_cache_hits_are_not_executions(
    tmp_path: Any,
) -> None:
    @node(output_name="w")
    def twice(y: list[int]) -> list[int]:
        return [2 * v for v in y]

    outer = Pipeline(
        [INNER.as_node(map_over="x"), twice],
        name="outer",
        limits=Limits(max_total_steps=3),
        cache=DiskCache(tmp_path),
    )
    with pytest.raises(StepLimitError, match="outer > twice` would be execution 4"):
        outer.run(x=[1, 2, 3])
    outer.with_limits(Limits(max_total_steps=4)).run(x=[1, 2, 3])
    # Everything is stored now: a run of hits executes nothing, whatever the limit.
    warm = outer.with_limits(Limits(max_total_steps=0)).run(x=[1, 2, 3])
    assert warm["w"] == [4, 6, 8]


def test_a_guard_is_never_continued_past() -> None:
    inner = Pipeline([inc], name="inner")
    outer = Pipeline(
        [inner.as_node(map_over="x", on_error="continue")],
        name="outer",
        limits=Limits(max_total_steps=2),
    )
    with pytest.raises(StepLimitError):
        outer.run(x=[1, 2, 3])
    flat = Pipeline([inc.with_options(on_error="continue")], limits=Limits(max_total_steps=0))
    with pytest.raises(StepLimitError):
        flat.run(x=1)
    mapped = Pipeline([inc], limits=Limits(max_total_steps=1))
    with pytest.raises(StepLimitError):
        mapped.map(x=[1, 2], map_over="x", on_error="continue")


def _tower(depth: int) -> Pipeline:
    level = Pipeline([inc], name="level0")
    for n in range(1, depth + 1):
        level = Pipeline([level.as_node(name=f"in{n}")], name=f"level{n}")
    return level


def test_entering_a_level_deeper_than_max_depth_fails_with_the_chain() -> None:
    tower = _tower(3)
    assert tower.with_limits(Limits(max_depth=3)).run(x=1)["y"] == 2
    with pytest.raises(RecursionDepthError) as caught:
        tower.with_limits(Limits(max_depth=2)).run(x=1)
    message = str(caught.value)
    assert "level3 -> level2 -> level1 -> level0" in message
    assert "4. level0  (depth 3)  <- over the limit" in message


def test_limits_merge_field_by_field_down_the_levels() -> None:
    inner = Pipeline([inc], name="inner", limits=Limits(max_depth=5))
    outer = Pipeline([inner.as_node(map_over="x")], name="outer", limits=Limits(max_total_steps=2))
    with pytest.raises(StepLimitError, match="limit of 2 node executions"):
        outer.run(x=[1, 2, 3])
    lifted = Pipeline([inner.with_limits(Limits(max_total_steps=None)).as_node(map_over="x")])
    assert lifted.with_limits(Limits(max_total_steps=1)).run(x=[1, 2, 3])["y"] == [2, 3, 4]
    described = outer.describe_config()
    assert "limits: max_total_steps=2*" in described


@pytest.fixture
def probe() -> Iterator[list[int]]:
    """The memory readings the guard sees, in MiB (the last one repeats)."""
    readings: list[int] = []
    seen = iter(())

    def reading() -> int:
        nonlocal seen
        try:
            return next(seen) * 2**20
        except StopIteration:
            return readings[-1] * 2**20

    original = nestflow.guards.memory_probe
    nestflow.guards.memory_probe = reading

    def load(values: list[int]) -> None:
        nonlocal seen
        readings[:] = values
        seen = iter(values)

    readings.append(0)
    yield load  # type: ignore[misc]
    nestflow.guards.memory_probe = original


def test_crossing_the_warning_level_warns_once_and_the_limit_stops_the_run(probe: Any) -> None:
    # Two readings per execution (before and after): 100, 800 (warn), 850, 900, 500 (back
    # under), 790 (warn again), 1100 (over the limit at the next start).
    probe([100, 800, 850, 900, 500, 790, 1100])
    pipeline = Pipeline([INNER.as_node(map_over="x")], limits=Limits(memory_limit_mb=1000))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(MemoryLimitError, match="over its memory limit of 1000 MiB"):
            pipeline.run(x=list(range(10)))
    messages = [str(w.message) for w in seen if issubclass(w.category, MemoryWarning)]
    assert len(messages) == 2
    assert "80 % of its memory limit of 1000 MiB" in messages[0]
    assert "79 % of its memory limit" in messages[1]


def test_a_warning_level_can_be_set_and_a_run_under_it_is_quiet(probe: Any) -> None:
    probe([100, 200, 300])
    pipeline = Pipeline([INNER.as_node(map_over="x")], limits=Limits(memory_limit_mb=1000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pipeline.run(x=[1, 2])["y"] == [2, 3]
    probe([100, 300])
    low = pipeline.with_limits(Limits(memory_limit_mb=1000, memory_warning_mb=250))
    with pytest.warns(MemoryWarning, match="30 %"):
        low.run(x=[1])


def test_the_default_probe_reads_this_process() -> None:
    used = nestflow.guards.resident_bytes()
    assert used > 10 * 2**20


@pytest.mark.parametrize(
    "make",
    [
        lambda: Limits(max_total_steps=-1),
        lambda: Limits(max_depth=1.5),
        lambda: Limits(memory_limit_mb=0),
        lambda: Pipeline([inc], limits={"max_total_steps": 3}),
    ],
    ids=["negative", "float-depth", "zero-memory", "not-limits"],
)
def test_bad_limits_say_what_was_expected(make: Any) -> None:
    with pytest.raises(InvalidOptionError):
        make()


# --- max_run_seconds ------------------------------------------------------------------------


class Clocked:
    """Nodes that note which of them started; the first one waits past the run's limit."""

    started: list[str] = []


@node(output_name="a")
def slow_first(x: int) -> int:
    Clocked.started.append("slow_first")
    import time

    time.sleep(0.3)
    return x


@node(output_name="b")
def then_this(a: int) -> int:
    Clocked.started.append("then_this")
    return a


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_past_the_run_time_limit_no_node_starts(driver: str) -> None:
    from nestflow.errors import TimeLimitError
    from nestflow.runtime.drivers import forced

    Clocked.started = []
    pipeline = Pipeline([slow_first, then_this], name="timed")
    token = forced.set(driver if driver == "async" else None)
    try:
        assert pipeline.with_limits(Limits(max_run_seconds=5)).run(x=1)["b"] == 1
        Clocked.started = []
        with pytest.raises(TimeLimitError) as caught:
            pipeline.with_limits(Limits(max_run_seconds=0.1)).run(x=1)
    finally:
        forced.reset(token)
    assert Clocked.started == ["slow_first"]
    message = str(caught.value)
    assert "time limit of 0.1 s (max_run_seconds)" in message
    assert "timed > then_this" in message


def test_the_run_time_limit_reaches_map_items_in_worker_processes() -> None:
    """The clock goes on in a worker: an item starts with the time the run already spent
    (0.3 s here), so its second node, 0.6 s into the run, is past the 0.5 s limit."""
    from nestflow.errors import TimeLimitError

    @node(output_name="xs")
    def prepare(n: int) -> list[int]:
        import time

        time.sleep(0.3)
        return list(range(n))

    @node(output_name="y")
    def nap(x: int) -> int:
        import time

        time.sleep(0.3)
        return x

    inner = Pipeline([nap, then_this.with_inputs({"a": "y"})], name="napper")
    outer = Pipeline(
        [prepare, inner.as_node(map_over="xs", input_mapping={"xs": "x"})],
        name="outer",
        limits=Limits(max_run_seconds=0.5),
        backend=LocalBackend(map_execution="parallel", max_workers=2),
    )
    # The item's second node is past the limit; on a slow start of the worker processes,
    # its first one already is: either way a node inside the item is the one not started.
    with pytest.raises(TimeLimitError, match=r"outer > napper > (then_this|nap)`"):
        outer.run(n=2)


@pytest.mark.parametrize("bad", [0, -1, "5", True, float("nan")])
def test_a_run_time_limit_must_be_a_positive_number(bad: Any) -> None:
    with pytest.raises(InvalidOptionError, match="max_run_seconds must be a positive number"):
        Limits(max_run_seconds=bad)


def test_the_run_time_limit_is_shown_with_the_other_limits() -> None:
    assert Limits(max_run_seconds=2.5).label == "limits: max_run_seconds=2.5"
