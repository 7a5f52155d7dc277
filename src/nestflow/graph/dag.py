"""Producers, dependencies, a deterministic topological order and cycle paths.

The functions here work on plain shapes (an id, the names a node consumes and the
names it publishes), so they know nothing of functions, pipelines or execution.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shape:
    """What the graph needs to know of one node."""

    id: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Graph:
    """The analysed graph: who publishes what, who depends on whom, and in which order."""

    shapes: tuple[Shape, ...]
    producers: dict[str, tuple[int, ...]]
    upstream: tuple[tuple[int, ...], ...]
    order: tuple[int, ...] | None
    cycle: tuple[int, ...]

    @property
    def duplicates(self) -> dict[str, tuple[int, ...]]:
        """Output names published by more than one node."""
        return {name: idx for name, idx in self.producers.items() if len(idx) > 1}

    def producer_of(self, name: str) -> int | None:
        """The index of the (first) node publishing ``name``, if any."""
        found = self.producers.get(name)
        return found[0] if found else None


def analyse(shapes: Sequence[Shape]) -> Graph:
    """Build the graph of ``shapes``: edges follow names, ties in order follow list order."""
    producers: dict[str, list[int]] = {}
    for index, shape in enumerate(shapes):
        for name in shape.outputs:
            producers.setdefault(name, []).append(index)
    upstream = tuple(_upstream_of(shape, producers) for shape in shapes)
    order = topological_order(upstream)
    cycle = () if order is not None else find_cycle(upstream)
    return Graph(
        shapes=tuple(shapes),
        producers={name: tuple(idx) for name, idx in producers.items()},
        upstream=upstream,
        order=order,
        cycle=cycle,
    )


def _upstream_of(shape: Shape, producers: dict[str, list[int]]) -> tuple[int, ...]:
    seen: dict[int, None] = {}
    for name in shape.inputs:
        for index in producers.get(name, ()):
            seen[index] = None
    return tuple(seen)


def topological_order(upstream: Sequence[Sequence[int]]) -> tuple[int, ...] | None:
    """Kahn's algorithm, always taking the lowest ready index; ``None`` when there is a cycle."""
    waiting = [len(set(deps)) for deps in upstream]
    downstream: list[list[int]] = [[] for _ in upstream]
    for index, deps in enumerate(upstream):
        for dep in set(deps):
            downstream[dep].append(index)
    ready = [index for index, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for child in downstream[index]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    return tuple(order) if len(order) == len(upstream) else None


def find_cycle(upstream: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """One cycle as node indices, closed (the first index repeated at the end); () if none."""
    state = [0] * len(upstream)  # 0 new, 1 on the current path, 2 finished
    for start in range(len(upstream)):
        if state[start] == 0:
            found = _cycle_from(start, upstream, state)
            if found:
                return found
    return ()


def _cycle_from(start: int, upstream: Sequence[Sequence[int]], state: list[int]) -> tuple[int, ...]:
    # Iterative depth-first search, so deep graphs cannot hit the recursion limit.
    path = [start]
    iterators = [iter(upstream[start])]
    state[start] = 1
    while iterators:
        dep = next(iterators[-1], None)
        if dep is None:
            state[path.pop()] = 2
            iterators.pop()
        elif state[dep] == 1:
            loop = path[path.index(dep) :]
            # Edges point from consumer to producer; reverse to read in the direction data flows.
            loop.reverse()
            return (*loop, loop[0])
        elif state[dep] == 0:
            state[dep] = 1
            path.append(dep)
            iterators.append(iter(upstream[dep]))
    return ()
