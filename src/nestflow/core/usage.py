"""``nestflow.record_usage``: counters a node reports (LLM tokens, API calls), kept per run.

>>> from nestflow import node, Pipeline, record_usage
>>> @node(output_name="reply")
... def ask(prompt: str) -> str:
...     record_usage("llm_tokens", len(prompt.split()))
...     return prompt.upper()
>>> Pipeline([ask]).run({"prompt": "two words"}).report.usage
{'llm_tokens': 2.0}

A run keeps one ``Usage``; the runtime makes it current for the run (a context variable, so
the node calls of a thread pool add to it too). Calls that run in worker processes (parallel
nodes, map items shipped to workers, dask) collect their own and send them back with their
results, where they are added to the run's, as events are relayed. A service run reports the
totals in its audit record (SPEC 12.5): the called organisation pays.
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

from nestflow.errors import InvalidOptionError


class Usage:
    """Named amounts, added to from any thread."""

    __slots__ = ("_amounts", "_lock")

    def __init__(self) -> None:
        self._amounts: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, name: str, amount: float) -> None:
        """Add ``amount`` to the counter ``name``."""
        with self._lock:
            self._amounts[name] = self._amounts.get(name, 0.0) + amount

    def merge(self, amounts: Mapping[str, float]) -> None:
        """Add every counter of ``amounts`` (what a worker collected)."""
        with self._lock:
            for name, amount in amounts.items():
                self._amounts[name] = self._amounts.get(name, 0.0) + amount

    def totals(self) -> dict[str, float]:
        """A copy of the counters, by name."""
        with self._lock:
            return dict(self._amounts)

    def __bool__(self) -> bool:
        return bool(self._amounts)


class Meter(Protocol):
    """What ``record_usage`` adds to: a ``Usage``, or a run that makes one when first used."""

    def add(self, name: str, amount: float) -> None: ...

    def merge(self, amounts: Mapping[str, float]) -> None: ...


_current: contextvars.ContextVar[Meter | None] = contextvars.ContextVar(
    "nestflow_usage", default=None
)
METER = _current
"""What ``record_usage`` adds to here: the runtime sets it for each run (``METER.set(run)``,
then ``METER.reset(token)``), directly, as every run does it."""


def record_usage(name: str, amount: float = 1) -> None:
    """Add ``amount`` to the counter ``name`` of the run this code is part of.

    Call it from a node (or anything a node calls): the totals appear in the run's report
    (``report.usage``) and, for a run started by the nestflow service, in its audit record.
    Outside a run it does nothing, so a node function still runs on its own in a test.

    Raises ``InvalidOptionError`` when ``name`` is not a non-empty str or ``amount`` is not
    a finite number.
    """
    if not isinstance(name, str) or not name:
        raise InvalidOptionError(
            f"record_usage(name, amount) takes a non-empty str name, got {name!r}; "
            'name the counter, e.g. record_usage("llm_tokens", 512).'
        )
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount):
        raise InvalidOptionError(
            f"record_usage({name!r}, amount) takes a finite number, got {amount!r}; "
            "pass how much was used, e.g. the number of tokens."
        )
    usage = _current.get()
    if usage is not None:
        usage.add(name, float(amount))


def current() -> Meter | None:
    """What ``record_usage`` adds to here (``None`` outside a run)."""
    return _current.get()


@contextmanager
def collecting(usage: Usage) -> Iterator[Usage]:
    """Make ``usage`` the one ``record_usage`` adds to inside."""
    with counting(usage):
        yield usage


@contextmanager
def counting(meter: Meter) -> Iterator[None]:
    """Make ``meter`` (a ``Usage``, or a run) what ``record_usage`` adds to inside."""
    token = _current.set(meter)
    try:
        yield
    finally:
        _current.reset(token)
