"""Fan an event out to a level's callbacks; a failing callback is a warning, never a failure."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from typing import Any

from nestflow.errors import CallbackWarning


class Dispatcher:
    """Serialises the hook calls of one run and keeps count of callback failures."""

    __slots__ = ("_handlers", "_lock", "_warned", "failures")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._warned: set[tuple[int, str]] = set()
        self._handlers: dict[tuple[int, str], tuple[Sequence[Any], list[tuple[Any, Any]]]] = {}
        self.failures = 0

    def handlers(self, callbacks: Sequence[Any], hook: str) -> list[tuple[Any, Any]]:
        """``(callback, its hook)`` for the callbacks that implement ``hook``, in list order."""
        found = self._handlers.get((id(callbacks), hook))
        if found is None or found[0] is not callbacks:
            pairs = [(c, getattr(c, hook)) for c in callbacks if _overrides(c, hook)]
            found = self._handlers[(id(callbacks), hook)] = (callbacks, pairs)
        return found[1]

    def call_alone(self, handlers: Sequence[Any], hook: str, args: tuple[Any, ...]) -> None:
        """Call ``handlers`` (from :meth:`handlers`) with ``args``, as :meth:`emit` does, but
        without its lock: for a run whose events all come from one thread."""
        for callback, handler in handlers:
            try:
                handler(*args)
            except Exception as exc:  # a callback must never change a run's outcome
                self.failed(callback, hook, exc)

    def failed(self, callback: Any, hook: str, exc: Exception) -> None:
        """Count a hook that raised; the first failure of each (callback, hook) is a warning."""
        with self._lock:
            self._report(callback, hook, exc)

    def listening(self, callbacks: Sequence[Any], hook: str) -> bool:
        """Whether any of ``callbacks`` implements ``hook`` (the base class's are no-ops)."""
        return bool(self.handlers(callbacks, hook))

    def emit(self, callbacks: Sequence[Any], hook: str, args: tuple[Any, ...]) -> None:
        """Call ``hook(*args)`` on every callback in list order."""
        with self._lock:
            self.call_alone(self.handlers(callbacks, hook), hook, args)

    def _report(self, callback: Any, hook: str, exc: Exception) -> None:
        self.failures += 1
        key = (id(callback), hook)
        if key in self._warned:
            return
        self._warned.add(key)
        warnings.warn(
            f"Callback {type(callback).__name__}.{hook} raised {type(exc).__name__}: {exc}. "
            "The run continues; further failures of this hook are counted in "
            "report.callback_failures.",
            CallbackWarning,
            stacklevel=2,
        )


def implements(callbacks: Sequence[Any], hook: str) -> bool:
    """Whether any of ``callbacks`` implements ``hook`` (no run needed to ask)."""
    return any(_overrides(callback, hook) for callback in callbacks)


_OVERRIDES: dict[tuple[type, str], bool] = {}


def _overrides(callback: Any, hook: str) -> bool:
    kind = type(callback)
    found = _OVERRIDES.get((kind, hook))
    if found is None:
        from nestflow.callbacks.events import PipelineCallback

        mine = getattr(kind, hook, None)
        found = _OVERRIDES[(kind, hook)] = mine is not getattr(PipelineCallback, hook, None)
    return found or hook in getattr(callback, "__dict__", {})
