"""LocalBackend: the user-facing description of how a level schedules nodes and map items."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final, Literal

from nestflow.errors import InvalidOptionError

if TYPE_CHECKING:
    from nestflow.engines.local import LocalSession

Mode = Literal["sequential", "threaded", "async", "parallel"]
MODES: Final = ("sequential", "threaded", "async", "parallel")


def _check_mode(dimension: str, mode: object) -> None:
    if mode not in MODES:
        raise InvalidOptionError(
            f"Unknown {dimension} mode {mode!r}. Expected one of: {', '.join(MODES)}; "
            f"for example LocalBackend({dimension}='threaded')."
        )


class LocalBackend:
    """Run nodes and map items in this machine's threads, event loop or processes.

    ``node_execution`` schedules the nodes of one run (or one map item);
    ``map_execution`` distributes the items of a map. The two are independent.
    """

    __slots__ = ("map_execution", "max_workers", "node_execution")

    node_execution: Mode
    map_execution: Mode
    max_workers: int | None

    def __init__(
        self,
        node_execution: Mode = "sequential",
        map_execution: Mode = "sequential",
        max_workers: int | None = None,
    ) -> None:
        _check_mode("node_execution", node_execution)
        _check_mode("map_execution", map_execution)
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise InvalidOptionError(
                f"max_workers must be an int >= 1 or None (a default per pool), got "
                f"{max_workers!r}."
            )
        object.__setattr__(self, "node_execution", node_execution)
        object.__setattr__(self, "map_execution", map_execution)
        object.__setattr__(self, "max_workers", max_workers)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("LocalBackend is immutable; create a new one.")

    def __repr__(self) -> str:
        return (
            f"LocalBackend(node_execution={self.node_execution!r}, "
            f"map_execution={self.map_execution!r}, max_workers={self.max_workers!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LocalBackend):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[type[LocalBackend], tuple[str, str, int | None]]:
        return (LocalBackend, self._key())

    def _key(self) -> tuple[str, str, int | None]:
        return (self.node_execution, self.map_execution, self.max_workers)

    def workers(self, mode: str) -> int:
        """The pool size used for ``mode``: ``max_workers`` or the per-pool default."""
        if mode == "sequential":
            return 1
        if self.max_workers is not None:
            return self.max_workers
        cpus = os.cpu_count() or 1
        return cpus if mode == "parallel" else min(32, cpus + 4)

    def open(self) -> LocalSession:
        """A protocol session running calls on this machine (see ``engines/local.py``)."""
        from nestflow.engines.local import LocalSession

        return LocalSession(self)

    @property
    def is_sequential(self) -> bool:
        """Both dimensions run one thing at a time."""
        return self.node_execution == "sequential" and self.map_execution == "sequential"

    def _describe(self, mode: str) -> str:
        if mode in ("threaded", "parallel"):
            return f"{mode}×{self.workers(mode)}"
        return "seq" if mode == "sequential" else mode

    @property
    def label(self) -> str:
        """``Local(seq)``, ``Local(threaded×4)``, or ``Local(nodes=async, map=parallel×8)``."""
        if self.node_execution == self.map_execution:
            return f"Local({self._describe(self.node_execution)})"
        return (
            f"Local(nodes={self._describe(self.node_execution)}, "
            f"map={self._describe(self.map_execution)})"
        )
