"""Retry: how often, and after how long, a failed node is tried again."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from nestflow.errors import NestflowError, NodeTimeoutError


@dataclass(frozen=True, slots=True)
class Retry:
    """Up to ``attempts`` retries; the k-th waits ``min(max_delay, backoff * factor**(k-1))`` s.

    Each wait is randomised by ±``jitter`` (relative). Only exceptions matching ``on`` are
    retried; errors nestflow raises itself (validation, serialization) never are.
    """

    attempts: int = 0
    backoff: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.1
    on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise TypeError(f"Retry(attempts=...) must be an int >= 0, got {self.attempts!r}.")
        if self.attempts < 0:
            raise ValueError(f"Retry(attempts=...) must be >= 0, got {self.attempts}.")
        for name in ("backoff", "factor", "max_delay", "jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"Retry({name}=...) must be >= 0, got {getattr(self, name)}.")
        on = self.on if isinstance(self.on, tuple) else (self.on,)
        object.__setattr__(self, "on", on)

    @classmethod
    def of(cls, value: Any) -> Retry:
        """A policy from what ``retries=`` accepts: an int or a ``Retry``."""
        if isinstance(value, Retry):
            return value
        found = _PLAIN.get(value) if type(value) is int else None
        if found is None:
            found = cls(attempts=int(value), backoff=0.0, jitter=0.0)
            if type(value) is int and len(_PLAIN) < 64:
                _PLAIN[value] = found
        return found

    def delay(self, retry: int) -> float:
        """Seconds to wait before the ``retry``-th retry (1-based)."""
        base = min(self.max_delay, self.backoff * self.factor ** (retry - 1))
        if self.jitter:
            base *= 1 + _JITTER.uniform(-self.jitter, self.jitter)
        return max(0.0, base)

    def allows(self, retry: int, error: BaseException) -> bool:
        """Whether a ``retry``-th retry may follow ``error``."""
        if retry > self.attempts:
            return False
        if isinstance(error, NestflowError) and not isinstance(error, NodeTimeoutError):
            return False
        return isinstance(error, self.on)


_JITTER = random.SystemRandom()
"""Jitter from the operating system: the user's ``random`` is never drawn from."""

_PLAIN: dict[int, Retry] = {}
"""``Retry.of(n)`` for plain ints, made once (it is looked up for every node attempt)."""
