"""Foundation figures: per-node overhead, build time, fan-out, nesting and map throughput."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from benchmarks import peers
from benchmarks.shapes import CHAIN, FAN, chain, fan, plain_chain, trio
from benchmarks.timing import best, once
from nestflow import Pipeline, node

MAP_ITEMS = 100_000


@dataclass
class Row:
    """One figure: nestflow's value, the plain-Python baseline, peers, and the target."""

    name: str
    unit: str
    nestflow: float
    baseline: float
    target: str
    peers: dict[str, float] = field(default_factory=dict)


def nodes_of(funcs: list[Callable[..., Any]], outputs: list[str]) -> list[Any]:
    """Decorate generated functions as nestflow nodes."""
    return [node(f, output_name=o) for f, o in zip(funcs, outputs, strict=True)]


def chain_rows() -> list[Row]:
    """Chain of 100 trivial nodes: µs per node, and build time."""
    funcs, outs = chain()
    nodes = nodes_of(funcs, outs)
    pipeline = Pipeline(nodes, name="chain")
    last = outs[-1]
    per_node = best(lambda: pipeline.run(v0=0), 2000) / CHAIN * 1e6
    baseline = best(lambda: plain_chain(funcs)(0), 2000) / CHAIN * 1e6

    def first_run() -> None:
        Pipeline(nodes, name="chain").run(v0=0, output_name=last)

    build_ms = best(lambda: Pipeline(nodes, name="chain"), 200) * 1e3
    first_ms = best(first_run, 100) * 1e3
    row = Row("chain of 100: per node", "µs", per_node, baseline, "<= 0.6")
    build_row = Row("chain of 100: build", "ms", build_ms, 0.0, "<= 1")
    first_row = Row("chain of 100: build + plan + first run", "ms", first_ms, 0.0, "-")
    for peer, make in peers.chain_runners(funcs, outs).items():
        row.peers[peer] = best(make, 50) / CHAIN * 1e6
    return [row, build_row, first_row]


def fan_row() -> Row:
    """1 -> 50 -> 1: µs per run."""
    funcs, outs = fan()
    pipeline = Pipeline(nodes_of(funcs, outs), name="fan")
    head, *branches, tail = funcs

    def plain() -> int:
        h = head(1)
        return tail(*[b(h) for b in branches])

    row = Row(f"fan-out 1->{FAN}->1: per run", "µs", 0.0, 0.0, "<= 40")
    row.nestflow = best(lambda: pipeline.run(x=1, output_name="total"), 2000) * 1e6
    row.baseline = best(plain, 2000) * 1e6
    for peer, make in peers.fan_runners(funcs, outs).items():
        row.peers[peer] = best(make, 200) * 1e6
    return row


def nested_pipeline() -> Pipeline:
    """Three levels: outer[mid[inner[fa, fb], fc]]."""
    (fa, fb, fc), (a, b, c) = trio()
    inner = Pipeline([node(fa, output_name=a), node(fb, output_name=b)], name="inner")
    mid = Pipeline([inner, node(fc, output_name=c)], name="mid")
    return Pipeline([mid], name="outer")


def nested_row() -> Row:
    """A 3-level nested pipeline: µs per run."""
    outer = nested_pipeline()
    (fa, fb, fc), _ = trio()
    row = Row("3-level nested: per run", "µs", 0.0, 0.0, "<= 10")
    row.nestflow = best(lambda: outer.run(x=1), 20000) * 1e6
    row.baseline = best(lambda: fc(fb(fa(1))), 20000) * 1e6
    for peer, make in peers.nested_runners().items():
        row.peers[peer] = best(make, 500) * 1e6
    return row


def map_row() -> Row:
    """A 3-node pipeline mapped over 100,000 items: items per second."""
    funcs, outs = trio()
    pipeline = Pipeline(nodes_of(funcs, outs), name="trio")
    fa, fb, fc = funcs
    xs = list(range(MAP_ITEMS))

    def plain() -> dict[str, list[int]]:
        columns: dict[str, list[int]] = {"a": [], "b": [], "c": []}
        for x in xs:
            a = fa(x)
            b = fb(a)
            columns["a"].append(a)
            columns["b"].append(b)
            columns["c"].append(fc(b))
        return columns

    row = Row(f"3-node map over {MAP_ITEMS:,}: items/s", "items/s", 0.0, 0.0, ">= 300,000")
    row.nestflow = MAP_ITEMS / once(lambda: pipeline.map(x=xs, map_over="x"))
    row.baseline = MAP_ITEMS / once(plain)
    for peer, (count, make) in peers.map_runners(funcs, outs).items():
        start = perf_counter()
        make()
        row.peers[peer] = count / (perf_counter() - start)
    return row


def rows() -> list[Row]:
    """Every foundation figure, in one run."""
    return [*chain_rows(), fan_row(), nested_row(), map_row()]
