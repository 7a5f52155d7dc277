"""Chains: a scatter over 10,000 elements against the same pipeline written by hand, and the
time a 20-step chain takes to build.

A chain compiles into the pipeline one would write with ``as_node(map_over=...)``, so the
two runs should cost the same; the build is a few node copies and one ``Pipeline``.
"""

from __future__ import annotations

import gc

from benchmarks.core import Row
from benchmarks.timing import best, once
from nestflow import Chain, Pipeline, node, step

ELEMENTS = 10_000
STEPS = 20


def numbers(n: int) -> list[int]:
    return list(range(n))


def inc(numbers: int) -> int:
    return numbers + 1


def double(inc: int) -> int:
    return inc * 2


def total(double: list[int]) -> int:
    return sum(double)


def chained() -> Pipeline:
    """numbers -> per element: inc -> double -> gathered -> total, as a chain."""
    flow = (
        Chain("n")
        << step(numbers).scatter()
        << step(inc)
        << step(double).aggregate()
        << step(total)
    )
    return flow.build(name="chained")


def by_hand() -> Pipeline:
    """The same flow written with ``as_node(map_over=...)``."""
    each = Pipeline([node(inc), node(double)], name="numbers_each")
    mapped = each.as_node(name="numbers_each", map_over="numbers")
    return Pipeline([node(numbers), mapped, node(total)], name="by_hand")


def scatter_row() -> Row:
    """Items per second through the segment, chain and hand-written, in the same run."""
    chain, hand = chained(), by_hand()
    expected = 2 * sum(range(1, ELEMENTS + 1))
    assert chain.run(n=ELEMENTS)["total"] == hand.run(n=ELEMENTS)["total"] == expected
    row = Row(
        f"chain scatter over {ELEMENTS:,}, 2 steps + aggregate: items/s",
        "items/s",
        0.0,
        0.0,
        ">= 1/1.3 × by hand",
    )
    row.nestflow, row.baseline = (ELEMENTS / t for t in _interleaved(chain, hand))
    return row


def _interleaved(*pipelines: Pipeline, rounds: int = 7) -> list[float]:
    """The best time of one run of each pipeline, taken in turns (so both see the same
    machine load), each after a collection and with the collector paused, as ``best``."""
    times: list[list[float]] = [[] for _ in pipelines]
    for _ in range(rounds):
        for pipeline, kept in zip(pipelines, times, strict=True):
            gc.collect()
            gc.disable()
            try:
                kept.append(once(lambda p=pipeline: p.run(n=ELEMENTS), repeat=1, warm=False))
            finally:
                gc.enable()
    return [min(kept) for kept in times]


SCATTER, AGGREGATE = 5, 14


def _steps() -> list[object]:
    """``s0(v)``, then ``s{i}(x)``: each takes the previous value by rule 3; ``s5`` returns a
    list (scattered), ``s15`` receives the gathered list."""
    bodies = {0: "def s0(v):\n    return v", SCATTER: "def s5(x):\n    return [x, x + 1]"}
    bodies[AGGREGATE + 1] = "def s15(x):\n    return sum(x)"
    source = "\n".join(bodies.get(i, f"def s{i}(x):\n    return x + {i}") for i in range(STEPS))
    namespace: dict[str, object] = {}
    exec(compile(source, "<benchmark-chain>", "exec"), namespace)
    return [namespace[f"s{i}"] for i in range(STEPS)]


def _written(funcs: list[object]) -> Chain:
    flow = Chain("v")
    for index, func in enumerate(funcs):
        made = step(func)
        if index == SCATTER:
            made = made.scatter()
        elif index == AGGREGATE:
            made = made.aggregate()
        flow = flow << made
    return flow


def build_rows() -> list[Row]:
    """A 20-step chain (one scatter, one aggregate): build it; write and build it."""
    funcs = _steps()
    chain = _written(funcs)
    # 1 -> +1..+4 -> [11, 12] -> +6..+14 each -> [101, 102] -> 203 -> +16..+19
    assert chain.build().run(v=1)["s19"] == 273

    build_ms = best(chain.build, 200) * 1e3
    written_ms = best(lambda: _written(funcs).build(), 200) * 1e3
    return [
        Row(f"chain of {STEPS} steps: build", "ms", build_ms, 0.0, "< 1-2"),
        Row(f"chain of {STEPS} steps: step() each + build", "ms", written_ms, 0.0, "-"),
    ]


def rows() -> list[Row]:
    """Every chain figure, in one run."""
    return [scatter_row(), *build_rows()]
