"""Pure scheduling state (ready, running, done) shared by every concurrent engine."""

from __future__ import annotations

from collections.abc import Sequence


class Schedule:
    """Which steps may start: a step is ready once every step it depends on is done.

    ``upstream[i]`` lists the steps that step ``i`` waits for. Ready steps are handed
    out lowest index first, so ties follow execution order.
    """

    __slots__ = ("_downstream", "_ready", "_waiting", "done", "running")

    def __init__(self, upstream: Sequence[Sequence[int]]) -> None:
        self._waiting = [len(set(deps)) for deps in upstream]
        self._downstream: list[list[int]] = [[] for _ in upstream]
        for index, deps in enumerate(upstream):
            for dep in set(deps):
                self._downstream[dep].append(index)
        self._ready = [i for i, count in enumerate(self._waiting) if count == 0]
        self.running: set[int] = set()
        self.done: set[int] = set()

    def take(self) -> list[int]:
        """Every ready step, now marked running."""
        taken, self._ready = sorted(self._ready), []
        self.running.update(taken)
        return taken

    def finish(self, index: int) -> None:
        """Mark ``index`` done and release the steps that were waiting only for it."""
        self.running.discard(index)
        self.done.add(index)
        for child in self._downstream[index]:
            self._waiting[child] -= 1
            if self._waiting[child] == 0:
                self._ready.append(child)

    @property
    def finished(self) -> bool:
        """No step is ready or running."""
        return not self._ready and not self.running
