"""Retries, timeouts and on_error="continue" (SPEC 7.6-7.8, A6.5, A7.8-A7.10).

Sleeps stay at 0.3 s or less, except where an acceptance item asks for a 2 s node that a
timeout must cut short (A6.5, A7.10); those tests assert that the run ends well before.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from time import perf_counter
from typing import Any

import pytest

import nestflow
from nestflow import (
    ErrorRecord,
    LocalBackend,
    NodeRecord,
    NodeTimeoutError,
    Pipeline,
    Retry,
    RunReport,
    node,
)
from nestflow.testing import RecordingCallback


class Flaky:
    """Fails with ``error`` for the first ``failures`` calls, then returns ``x * 10``."""

    def __init__(self, failures: int, error: type[Exception] = ValueError) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[float] = []

    def __call__(self, x: int) -> int:
        self.calls.append(perf_counter())
        if len(self.calls) <= self.failures:
            raise self.error(f"attempt {len(self.calls)} failed")
        return x * 10


def flaky_node(flaky: Flaky, **options: Any) -> nestflow.Node:
    return node(flaky, output_name="y", name="flaky", **options)


def record_of(report: RunReport, name: str) -> NodeRecord:
    (found,) = [r for r in report.records if r.node == name]
    return found


def statuses(report: RunReport) -> dict[str, str]:
    return {r.node: r.status for r in report.records}


# --- A7.8: retries -----------------------------------------------------------------------------


def test_a7_8_node_failing_twice_succeeds_with_two_retries_and_reports_three_attempts() -> None:
    flaky = Flaky(failures=2)
    result = Pipeline([flaky_node(flaky, retries=2)], name="p").run(x=4)
    assert result == {"y": 40}
    assert len(flaky.calls) == 3
    record = record_of(result.report, "flaky")
    assert record.attempts == 3
    assert record.status == "executed"
    assert result.report.status == "ok"
    assert result.report.errors == []


def test_a7_8_too_few_retries_raise_the_last_error_after_every_attempt() -> None:
    flaky = Flaky(failures=2)
    with pytest.raises(ValueError, match="attempt 2 failed") as info:
        Pipeline([flaky_node(flaky, retries=1)], name="p").run(x=4)
    assert len(flaky.calls) == 2
    assert any("attempts 2" in note for note in info.value.__notes__)


def test_a7_8_retry_backoff_waits_grow_by_the_factor() -> None:
    flaky = Flaky(failures=2)
    pipeline = Pipeline([flaky_node(flaky, retries=Retry(attempts=2, backoff=0.1))], name="p")
    assert pipeline.run(x=1) == {"y": 10}
    first, second, third = flaky.calls
    assert second - first >= 0.09
    assert third - second >= 0.18


def test_a7_8_node_start_fires_per_attempt_with_ctx_attempt_and_node_end_once(
    recorder: RecordingCallback,
) -> None:
    flaky = Flaky(failures=2)
    pipeline = Pipeline([flaky_node(flaky, retries=2)], name="p", callbacks=[recorder])
    assert pipeline.run(x=1) == {"y": 10}
    starts = [
        ctx.attempt
        for e, ctx in zip(recorder.events, recorder.contexts, strict=True)
        if e[0] == "node_start"
    ]
    assert starts == [1, 2, 3]
    assert recorder.names("node_end") == ["flaky"]
    assert recorder.names("error") == []


def test_a7_8_retries_are_inherited_from_the_pipeline() -> None:
    flaky = Flaky(failures=2)
    assert Pipeline([flaky_node(flaky)], name="p", retries=2).run(x=1) == {"y": 10}
    assert len(flaky.calls) == 3


def test_a7_8_retries_are_inherited_from_an_enclosing_pipeline() -> None:
    flaky = Flaky(failures=1)
    inner = Pipeline([flaky_node(flaky)], name="inner")
    result = Pipeline([inner], name="outer", retries=1).run(x=1)
    assert result == {"y": 10}
    assert record_of(result.report, "flaky").attempts == 2


def test_a7_8_explicit_zero_retries_on_the_node_beats_the_pipeline_value() -> None:
    flaky = Flaky(failures=1)
    pipeline = Pipeline([flaky_node(flaky, retries=0)], name="p", retries=2)
    with pytest.raises(ValueError, match="attempt 1 failed"):
        pipeline.run(x=1)
    assert len(flaky.calls) == 1


def test_a7_8_nestflow_errors_are_never_retried() -> None:
    calls: list[int] = []

    @node(output_name=("low", "high"))
    def bounds(x: int) -> tuple[int, int, int]:
        calls.append(x)
        return x, x, x  # three values for two names: NodeOutputError

    with nestflow.capture() as cap, pytest.raises(nestflow.NodeOutputError):
        Pipeline([bounds], name="p", retries=2).run(x=1)
    assert calls == [1]
    assert cap.last.errors[0].attempts == 1


def test_a7_8_serialization_errors_are_never_retried() -> None:
    @node(output_name="held")
    def hold(guard: Any) -> bool:
        return guard is not None

    pipeline = Pipeline(
        [hold], name="p", retries=2, backend=LocalBackend(node_execution="parallel", max_workers=1)
    )
    with nestflow.capture() as cap, pytest.raises(nestflow.SerializationError):
        pipeline.run(guard=threading.Lock())
    (error,) = cap.last.errors
    assert error.attempts == 1
    assert record_of(cap.last, "hold").attempts == 1


def test_a7_8_retry_on_limits_which_exceptions_are_retried() -> None:
    policy = Retry(attempts=2, backoff=0.0, on=(KeyError,))
    wrong_kind = Flaky(failures=1, error=ValueError)
    with pytest.raises(ValueError):
        Pipeline([flaky_node(wrong_kind, retries=policy)], name="p").run(x=1)
    assert len(wrong_kind.calls) == 1
    right_kind = Flaky(failures=1, error=KeyError)
    assert Pipeline([flaky_node(right_kind, retries=policy)], name="p").run(x=1) == {"y": 10}
    assert len(right_kind.calls) == 2


# --- A7.9: on_error="continue" -----------------------------------------------------------------


@node(output_name="a")
def make_a(x: int) -> int:
    return x + 1


@node(output_name="b", name="b", on_error="continue")
def fail_b(a: int) -> int:
    raise ValueError(f"b cannot use {a}")


@node(output_name="d")
def make_d(x: int) -> int:
    return x * 100


def test_a7_9_continued_failure_skips_dependants_and_runs_independent_branches(
    recorder: RecordingCallback,
) -> None:
    c_calls: list[int] = []

    @node(output_name="c", name="c")
    def use_b(b: int) -> int:
        c_calls.append(b)
        return b * 2

    pipeline = Pipeline([make_a, fail_b, use_b, make_d], name="p", callbacks=[recorder])
    result = pipeline.run(x=1)
    assert result == {"a": 2, "b": None, "c": None, "d": 100}
    assert c_calls == []
    report = result.report
    assert report.status == "partial"
    by_node = statuses(report)
    assert by_node["b"] == "failed"
    assert by_node["c"] == "skipped"
    assert by_node["make_a"] == by_node["make_d"] == "executed"
    assert "p > b" in (record_of(report, "c").error or "")
    (error,) = report.errors
    assert isinstance(error, ErrorRecord)
    assert error.node_path == "p > b"
    assert error.exception_type == "ValueError"
    assert error.message == "b cannot use 2"
    assert "b cannot use 2" in error.traceback
    assert error.attempts == 1
    assert [e for e in recorder.events if e[0] == "error"] == [("error", "b", "ValueError")]


def test_a7_9_continue_applies_after_retries_are_used_up() -> None:
    flaky = Flaky(failures=5)
    pipeline = Pipeline([flaky_node(flaky, retries=1, on_error="continue"), make_d], name="p")
    result = pipeline.run(x=1)
    assert result == {"y": None, "d": 100}
    assert len(flaky.calls) == 2
    assert result.report.errors[0].attempts == 2


@node(output_name="u")
def make_u(x: int) -> int:
    return x + 1


@node(output_name="v")
def fail_v(u: int) -> int:
    raise RuntimeError(f"v failed on {u}")


def test_s7_8_continue_on_a_nested_pipeline_node_nulls_its_outputs_and_skips_dependants(
    recorder: RecordingCallback,
) -> None:
    after_calls: list[Any] = []

    @node(output_name="w")
    def after(u: int) -> int:
        after_calls.append(u)
        return u

    inner = Pipeline([make_u, fail_v], name="inner")
    outer = Pipeline(
        [inner.as_node(on_error="continue"), after, make_d], name="outer", callbacks=[recorder]
    )
    result = outer.run(x=1)
    assert result == {"u": None, "v": None, "w": None, "d": 100}
    assert after_calls == []
    report = result.report
    assert report.status == "partial"
    (error,) = report.errors
    assert error.node_path == "outer > inner > fail_v"
    assert error.exception_type == "RuntimeError"
    assert statuses(report)["after"] == "skipped"
    assert statuses(report)["make_d"] == "executed"
    assert [e for e in recorder.events if e[0] == "error"] == [("error", "fail_v", "RuntimeError")]


def test_s7_8_nested_continue_hides_only_mapped_outputs() -> None:
    inner = Pipeline([make_u, fail_v], name="inner")
    node_ = inner.as_node(output_mapping={"v": "vee"}, on_error="continue")
    result = Pipeline([node_, make_d], name="outer").run(x=1)
    assert result == {"vee": None, "d": 100}
    assert result.report.status == "partial"


# --- A6.5: timeouts inherited down the nesting -------------------------------------------------


def sleeper(name: str = "slow") -> nestflow.Node:
    """A sync node sleeping ``delay`` seconds and returning it."""

    def nap(delay: float) -> float:
        time.sleep(delay)
        return delay

    return node(nap, output_name="slept", name=name)


def test_a6_5_root_timeout_stops_a_node_two_levels_down_early() -> None:
    l3 = Pipeline([sleeper()], name="L3")
    l2 = Pipeline([l3], name="L2")
    l1 = Pipeline([l2], name="L1", timeout=0.5)
    started = perf_counter()
    with pytest.raises(TimeoutError) as info:
        l1.run(delay=2.0)
    assert perf_counter() - started < 1.5
    assert isinstance(info.value, NodeTimeoutError)
    assert isinstance(info.value, nestflow.NestflowError)


def test_a6_5_middle_level_timeout_overrides_the_root_and_lets_the_node_finish() -> None:
    l3 = Pipeline([sleeper()], name="L3")
    l2 = Pipeline([l3], name="L2", timeout=5)
    l1 = Pipeline([l2], name="L1", timeout=0.5)
    started = perf_counter()
    assert l1.run(delay=0.6) == {"slept": 0.6}
    assert perf_counter() - started >= 0.6


# --- SPEC 7.6: per-node timeout values ---------------------------------------------------------


def test_s7_6_explicit_none_timeout_on_the_node_beats_the_pipeline_timeout() -> None:
    limited = Pipeline([sleeper()], name="p", timeout=0.1)
    with pytest.raises(NodeTimeoutError):
        limited.run(delay=0.3)
    lifted = Pipeline([sleeper().with_options(timeout=None)], name="p", timeout=0.1)
    assert lifted.run(delay=0.3) == {"slept": 0.3}


def test_s7_6_timed_out_attempt_counts_as_a_failure_for_retries() -> None:
    calls: list[int] = []

    @node(output_name="y", timeout=0.1, retries=1)
    def slow_once(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            time.sleep(0.3)
        return x * 2

    result = Pipeline([slow_once], name="p").run(x=3)
    assert result == {"y": 6}
    assert len(calls) == 2
    assert record_of(result.report, "slow_once").attempts == 2


def test_s7_6_timeout_message_names_path_limit_and_pipeline_that_set_it() -> None:
    inner = Pipeline([sleeper()], name="inner")
    mid = Pipeline([inner], name="mid", timeout=0.1)
    top = Pipeline([mid], name="top")
    with pytest.raises(NodeTimeoutError) as info:
        top.run(delay=0.3)
    message = str(info.value)
    path = "top > mid > inner > slow"
    assert path in message
    assert "0.1" in message
    assert "mid" in message.replace(path, ""), "the message should say where the limit was set"


def test_s7_6_timeout_message_names_the_node_when_the_node_set_it() -> None:
    pipeline = Pipeline([sleeper("stalls").with_options(timeout=0.1)], name="p", timeout=9)
    with pytest.raises(NodeTimeoutError) as info:
        pipeline.run(delay=0.3)
    message = str(info.value)
    assert "p > stalls" in message
    assert "0.1" in message
    assert "node" in message.replace("p > stalls", "")


# --- A7.10: stopping the work ------------------------------------------------------------------


def test_a7_10_async_node_past_its_timeout_is_cancelled_and_its_finally_runs() -> None:
    cleanup: list[str] = []

    @node(output_name="y", timeout=0.2)
    async def stuck(x: int) -> int:
        try:
            await asyncio.sleep(2)
        finally:
            cleanup.append("finally ran")
        return x

    started = perf_counter()
    with pytest.raises(NodeTimeoutError):
        Pipeline([stuck], name="p").run(x=1)
    assert perf_counter() - started < 1.5
    assert cleanup == ["finally ran"]


def test_a7_10_parallel_node_past_its_timeout_kills_its_worker_and_the_pool_keeps_serving(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "worker.pid"

    @node(output_name="pid")
    def where(x: int) -> int:
        return os.getpid()

    @node(output_name="pid", name="stall", timeout=0.5)
    def stall(x: int) -> int:
        pid_file.write_text(str(os.getpid()))
        time.sleep(2)
        return os.getpid()

    one_worker = LocalBackend(node_execution="parallel", max_workers=1)
    healthy = Pipeline([where], name="p", backend=one_worker)
    first_pid = healthy.run(x=1, output_name="pid")  # untimed: starts the worker
    assert first_pid != os.getpid()

    started = perf_counter()
    with pytest.raises(NodeTimeoutError):
        Pipeline([stall], name="p", backend=one_worker).run(x=1)
    assert perf_counter() - started < 1.5
    stalled_pid = int(pid_file.read_text())
    assert stalled_pid == first_pid
    with pytest.raises(ProcessLookupError):
        os.kill(stalled_pid, 0)  # the worker running the call was terminated

    later_pid = healthy.run(x=1, output_name="pid")
    assert later_pid not in (os.getpid(), stalled_pid)
