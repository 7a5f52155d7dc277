"""The nodes that requested outputs need: the ancestors of their producers."""

from __future__ import annotations

from collections.abc import Iterable

from nestflow.graph.dag import Graph


def ancestors(graph: Graph, targets: Iterable[int]) -> frozenset[int]:
    """``targets`` and every node they transitively depend on."""
    seen: set[int] = set()
    stack = list(targets)
    while stack:
        index = stack.pop()
        if index not in seen:
            seen.add(index)
            stack.extend(graph.upstream[index])
    return frozenset(seen)
