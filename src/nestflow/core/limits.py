"""Limits: the guards a run keeps, a configuration aspect inherited like the others.

``Pipeline(..., limits=Limits(max_total_steps=1000))`` applies to that pipeline's level and
every level below it unless one sets its own. A level's ``Limits`` is merged over what it
inherits field by field: a field left ``UNSET`` inherits, ``None`` lifts the limit.

* ``max_total_steps``: node executions in the whole run, map items included (cache hits are
  not executions). The execution that would pass it fails the run with ``StepLimitError``.
* ``max_depth``: the deepest level (the root is depth 0). Entering a deeper one fails the
  run with ``RecursionDepthError``.
* ``memory_limit_mb`` / ``memory_warning_mb`` (MiB): the resident memory of the coordinating
  process, sampled before and after every node execution and every second while one runs.
  Crossing the warning level (default 75 % of the limit) warns once per crossing with
  ``MemoryWarning``; crossing the limit stops new node executions with ``MemoryLimitError``.
* ``max_run_seconds``: the wall-clock time of the whole run. No node execution starts once it
  has passed: the next one fails the run with ``TimeLimitError``. A node already running is
  not interrupted (its own ``timeout=`` does that).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from nestflow.core.config import UNSET, Unset
from nestflow.errors import InvalidOptionError

MIB = 2**20


@dataclass(frozen=True, slots=True)
class Limits:
    """Guards of a run; ``UNSET`` fields inherit, ``None`` lifts a limit."""

    max_total_steps: int | Unset | None = UNSET
    max_depth: int | Unset | None = UNSET
    memory_limit_mb: float | Unset | None = UNSET
    memory_warning_mb: float | Unset | None = UNSET
    max_run_seconds: float | Unset | None = UNSET

    def __post_init__(self) -> None:
        problems = []
        for name in ("max_total_steps", "max_depth"):
            value = getattr(self, name)
            if value in (UNSET, None):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"{name} must be an int >= 0 or None (no limit); got {value!r}")
        for name in ("memory_limit_mb", "memory_warning_mb"):
            value = getattr(self, name)
            if value in (UNSET, None):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                problems.append(f"{name} must be a positive number of MiB or None; got {value!r}")
        seconds = self.max_run_seconds
        if seconds not in (UNSET, None) and (
            isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0
        ):
            problems.append(
                f"max_run_seconds must be a positive number of seconds or None; got {seconds!r}"
            )
        if problems:
            raise InvalidOptionError("Invalid Limits(...):\n  " + "\n  ".join(problems))

    def over(self, inherited: Limits) -> Limits:
        """These limits where set, ``inherited`` elsewhere."""
        merged = {
            f.name: inherited_value if (own := getattr(self, f.name)) is UNSET else own
            for f in fields(self)
            for inherited_value in (getattr(inherited, f.name),)
        }
        return Limits(**merged)

    @property
    def counts(self) -> bool:
        """Whether node executions are counted (``max_total_steps``)."""
        return self.max_total_steps not in (UNSET, None)

    @property
    def watches_memory(self) -> bool:
        """Whether memory is sampled around every execution (``memory_limit_mb``)."""
        return self.memory_limit_mb not in (UNSET, None)

    @property
    def times(self) -> bool:
        """Whether the run's wall-clock time is limited (``max_run_seconds``)."""
        return self.max_run_seconds not in (UNSET, None)

    @property
    def checks_each_step(self) -> bool:
        """Whether something is checked before every node execution besides the count
        (memory, time): such a level runs no stretch of plain calls."""
        return self.watches_memory or self.times

    @property
    def any(self) -> bool:
        """Whether some limit is in force (a run then checks it at every execution)."""
        return any(getattr(self, f.name) not in (UNSET, None) for f in fields(self))

    def value(self, name: str) -> Any:
        """A field's limit, ``None`` when none is in force."""
        found = getattr(self, name)
        return None if found is UNSET else found

    @property
    def label(self) -> str:
        """``limits: max_total_steps=5, max_depth=3`` (``limits: none`` when none)."""
        shown = [f"{f.name}={self.value(f.name)}" for f in fields(self) if self.value(f.name)]
        return f"limits: {', '.join(shown) or 'none'}"


NO_LIMITS = Limits(None, None, None, None, None)
"""The library default: nothing limited."""


def limits_problem(value: Any) -> str | None:
    """Why ``value`` is not a ``limits=`` setting."""
    if isinstance(value, Limits):
        return None
    return (
        f"expected Limits(...), got {type(value).__name__} {value!r}. Write "
        "limits=Limits(max_total_steps=1000, max_depth=10)."
    )
