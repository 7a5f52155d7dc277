"""Values a store dropped on its own (evicted to free memory, or expired), summed up per run.

A store that evicts by design (Redis under ``maxmemory``, or with a ``ttl``) loses values while
their entries remain; each such value is a miss, recomputed and stored again. One warning per
value flooded a run (a warm map over a full server found 180 of them), so a run gets one
summary instead: ``Cache.end_run`` gives it, and ``Cache.refresh`` or ``Cache.close`` give one
that no ``end_run`` collected.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["EvictionTally"]

SHOWN = 5  # nodes named in a summary; the rest are counted


class EvictionTally:
    """Values found missing under a present entry, by node, until the next summary.

    Not thread-safe on its own: ``Cache`` calls it under its lock.
    """

    __slots__ = ("_by_node",)

    def __init__(self) -> None:
        self._by_node: Counter[str] = Counter()

    def add(self, node: str) -> None:
        """Count one value of ``node`` that the store no longer had."""
        self._by_node[node] += 1

    def summary(self, label: str) -> str | None:
        """The warning for what was counted since the last summary (then forgotten), or None."""
        if not self._by_node:
            return None
        by_node, self._by_node = self._by_node, Counter()
        total = sum(by_node.values())
        nodes = ", ".join(f"'{node}' ({count})" for node, count in by_node.most_common(SHOWN))
        if len(by_node) > SHOWN:
            nodes += f" and {len(by_node) - SHOWN} more node(s)"
        were = "cached value was" if total == 1 else "cached values were"
        return (
            f"{label}: {total} {were} gone from the store though their entries remained "
            f"(evicted to free memory, or expired), for {nodes}. They were recomputed and stored "
            "again; results are correct. Expected the store to keep what it is given. Fix: give "
            "the server more memory (maxmemory) or a database of its own, or set ttl= so old "
            "entries expire before the server has to evict."
        )
