"""The run guards of ``Limits``: a step count, a depth check and a memory watch.

The node step asks ``before`` ahead of every execution of a node whose level has limits
in force, and ``after`` once it ends; a nested step asks ``entering`` before its level
starts. What a guard finds stops the run: a ``GuardError`` is never continued past
(``on_error="continue"`` and maps that keep going raise it all the same).
"""

from __future__ import annotations

import itertools
import threading
import warnings
from time import perf_counter
from typing import TYPE_CHECKING, Any

from nestflow import guards
from nestflow.core.limits import MIB, Limits
from nestflow.errors import (
    MemoryLimitError,
    MemoryWarning,
    RecursionDepthError,
    StepLimitError,
    TimeLimitError,
)

if TYPE_CHECKING:
    from nestflow.runtime.context import Level, RunState

SAMPLE_EVERY_S = 1.0
"""How often the memory of a run is sampled while a node runs."""


def counter_of(run: RunState) -> Any:
    """The run's execution counter, made at its first use."""
    found = run.step_count
    if found is None:
        with _MAKING:
            found = run.step_count
            if found is None:
                found = run.step_count = itertools.count(run.steps_taken + 1)
    return found


def take(run: RunState) -> int:
    """Count one more execution of ``run``; its number in the run."""
    number: int = next(counter_of(run))  # atomic: threads of one run share the count
    run.steps_taken = number
    return number


def room(run: RunState, wanted: int, limit: int) -> int:
    """Count up to ``wanted`` executions of ``run`` without passing ``limit``; how many were
    (each number is taken once, so threads sharing the count never both get one)."""
    counter = counter_of(run)
    for done in range(wanted):
        number: int = next(counter)
        run.steps_taken = number
        if number > limit:
            return done
    return wanted


def add(run: RunState, executions: int) -> None:
    """Count what a map item run elsewhere executed."""
    counter = counter_of(run)
    for _ in range(executions):
        run.steps_taken = next(counter)


def before(level: Level, node_id: str, limits: Limits) -> None:
    """Ahead of an execution: count it, and check memory (either may stop the run)."""
    run = level.run
    limit = limits.value("max_total_steps")
    if limit is not None:
        taken = take(run)
        if taken > limit:
            raise over_limit(level, node_id, limit, taken)
    if limits.value("memory_limit_mb") is not None:
        watch_of(run, limits).check(level)
    seconds = limits.value("max_run_seconds")
    if seconds is not None and perf_counter() - run.started > seconds:
        raise out_of_time(level, node_id, seconds, perf_counter() - run.started)


def out_of_time(level: Level, node_id: str, limit: float, taken: float) -> TimeLimitError:
    """The error for a node that would start ``taken`` seconds into a run limited to ``limit``."""
    return TimeLimitError(
        f"The run reached its time limit of {limit:g} s (max_run_seconds): node "
        f"`{level.path(node_id)}` would start {taken:.2f} s into it, so it was not started. "
        "Raise the limit (Limits(max_run_seconds=...)) or make the run shorter."
    )


def over_limit(level: Level, node_id: str, limit: int, number: int) -> StepLimitError:
    """The error for execution ``number`` of the run, of node ``node_id`` at ``level``."""
    return StepLimitError(
        f"The run reached its limit of {limit} node executions (max_total_steps): "
        f"node `{level.path(node_id)}` would be execution {number}. "
        "Raise the limit (Limits(max_total_steps=...), or max_total_steps: in the "
        "workflow's config), or run on fewer items."
    )


def after(level: Level, limits: Limits) -> None:
    """Once an execution ends: sample memory again (a crossing stops what comes next)."""
    if limits.value("memory_limit_mb") is not None:
        watch_of(level.run, limits).sample(level)


def entering(depth: int, hierarchy: tuple[str, ...], child_name: str, limit: int) -> None:
    """Before a nested level at ``depth`` (below the pipelines ``hierarchy``) starts: its
    depth against ``max_depth``."""
    if depth <= limit:
        return
    chain = [*hierarchy, child_name]
    lines = [f"nesting deeper than max_depth {limit}: {' -> '.join(chain)}"]
    for number, name in enumerate(chain, 1):
        note = "  <- over the limit" if number - 1 > limit else ""
        lines.append(f"  {number}. {name}  (depth {number - 1}){note}")
    lines.append(
        "Raise the limit (Limits(max_depth=...), or max_depth: in the workflow's config) if "
        "the data is this deep, or stop the recursion earlier with a condition."
    )
    raise RecursionDepthError("\n".join(lines))


class MemoryWatch:
    """The memory of one run's coordinating process against its limit."""

    __slots__ = ("_stop", "_thread", "exceeded", "limit", "lock", "over_warning", "warn_at")

    def __init__(self, limits: Limits) -> None:
        limit_mb = float(limits.value("memory_limit_mb"))
        warning_mb = limits.value("memory_warning_mb")
        self.limit = int(limit_mb * MIB)
        self.warn_at = int((0.75 * limit_mb if warning_mb is None else warning_mb) * MIB)
        self.over_warning = False
        self.exceeded: str | None = None
        """Why the run stops (the first reading over the limit), once one was seen."""
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, level: Level) -> None:
        """Sample now; raise when the limit was crossed (now or at an earlier reading)."""
        self.sample(level)
        if self.exceeded is not None:
            raise MemoryLimitError(self.exceeded)
        if self._thread is None:
            self._start(level)

    def sample(self, level: Level) -> None:
        """One reading: warn on crossing the warning level, note crossing the limit."""
        used = guards.memory_probe()
        with self.lock:
            crossed = used >= self.warn_at and not self.over_warning
            self.over_warning = used >= self.warn_at
            if used >= self.limit and self.exceeded is None:
                self.exceeded = (
                    f"The run used {used / MIB:.0f} MiB, over its memory limit of "
                    f"{self.limit / MIB:.0f} MiB (memory_limit_mb), at `{level.plan.name}` "
                    f"(depth {level.depth}); no new node was started. Raise the limit, or "
                    "process fewer items at once."
                )
        if crossed:
            warnings.warn(
                MemoryWarning(
                    f"The run uses {used / MIB:.0f} MiB, {100 * used / self.limit:.0f} % of "
                    f"its memory limit of {self.limit / MIB:.0f} MiB, at pipeline "
                    f"`{level.plan.name}` (depth {level.depth})."
                ),
                stacklevel=2,
            )

    def _start(self, level: Level) -> None:
        def sampling() -> None:
            while not self._stop.wait(SAMPLE_EVERY_S):
                try:
                    self.sample(level)
                except Exception:
                    return

        self._thread = threading.Thread(target=sampling, name="nestflow-memory", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop sampling (the run has finished)."""
        self._stop.set()


def watch_of(run: RunState, limits: Limits) -> MemoryWatch:
    """The run's memory watch, made at its first check."""
    found: Any = run.memory
    if found is None:
        with _MAKING:
            found = run.memory
            if found is None:
                found = run.memory = MemoryWatch(limits)
    assert isinstance(found, MemoryWatch)
    return found


_MAKING = threading.Lock()
"""Guards the making of a run's memory watch (two threads of one run may ask at once)."""
