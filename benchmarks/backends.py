"""Backend figures: async and parallel maps, and DaskBackend against plain dask."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ProcessPoolExecutor
from time import perf_counter
from typing import Any

from benchmarks.core import Row
from benchmarks.timing import once
from nestflow import DaskBackend, LocalBackend, Pipeline, node

ASYNC_ITEMS = 200
CPU_ITEMS = 8
DASK_ITEMS = 10_000


@node(output_name="slept")
async def nap(x: int) -> int:
    await asyncio.sleep(0.05)
    return x


def spin(n: int) -> int:
    """Pure-Python CPU work."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


@node(output_name="spun")
def spin_node(n: int) -> int:
    return spin(n)


def _calibrate(seconds: float = 0.25) -> int:
    n = 200_000
    while True:
        started = perf_counter()
        spin(n)
        took = perf_counter() - started
        if took > 0.05:
            return int(n * seconds / took)
        n *= 2


def async_row() -> Row:
    """200 items each awaiting 50 ms: wall seconds, against asyncio.gather."""
    pipeline = Pipeline([nap], name="naps", backend=LocalBackend(map_execution="async"))
    xs = list(range(ASYNC_ITEMS))

    async def plain() -> list[int]:
        async def one(x: int) -> int:
            await asyncio.sleep(0.05)
            return x

        return await asyncio.gather(*(one(x) for x in xs))

    row = Row(f"async map, {ASYNC_ITEMS} × 50 ms sleep: wall", "s", 0.0, 0.0, "<= 0.06")
    row.nestflow = once(lambda: pipeline.map(x=xs, map_over="x"))
    row.baseline = once(lambda: asyncio.run(plain()))
    return row


def parallel_row() -> Row:
    """8 items of ~0.25 s CPU on the parallel map: speedup over the sequential map."""
    n = _calibrate()
    ns = [n] * CPU_ITEMS
    sequential = Pipeline([spin_node], name="spin")
    parallel = sequential.with_backend(LocalBackend(map_execution="parallel"))
    row = Row(f"parallel map, {CPU_ITEMS} × 0.25 s CPU: speedup", "x", 0.0, 0.0, ">= 1.85")
    seq_time = once(lambda: sequential.map(n=ns, map_over="n"), repeat=1, warm=False)
    row.nestflow = seq_time / once(lambda: parallel.map(n=ns, map_over="n"), repeat=2)
    with ProcessPoolExecutor() as pool:
        list(pool.map(spin, [1000] * 4))
        row.baseline = seq_time / once(lambda: list(pool.map(spin, ns)), repeat=2, warm=False)
    return row


def fa(x: int) -> int:
    """The trio's first step (importable: dask ships it by reference, as users' code is)."""
    return x + 1


def fb(a: int) -> int:
    """The trio's second step."""
    return a * 2


def fc(b: int) -> int:
    """The trio's third step."""
    return b - 3


def trio_item(x: int) -> int:
    """The whole trio as one function: what a plain ``client.map`` runs per item."""
    return fc(fb(fa(x)))


def dask_row() -> Row:
    """10,000 items of a trivial 3-node pipeline on a LocalCluster, against client.map."""
    xs = list(range(DASK_ITEMS))
    row = Row(f"dask map, {DASK_ITEMS:,} items: items/s", "items/s", 0.0, 0.0, ">= 0.8 × plain")
    with DaskBackend(n_workers=2) as backend:
        steps = [node(fa, output_name="a"), node(fb, output_name="b"), node(fc, output_name="c")]
        pipeline = Pipeline(steps, name="trio", backend=backend)
        client = backend.client
        pipeline.map(x=xs[:100], map_over="x")  # warm: workers import the module once
        row.nestflow = DASK_ITEMS / once(lambda: pipeline.map(x=xs, map_over="x"), repeat=1)

        def plain() -> list[Any]:
            return client.gather(client.map(trio_item, xs, pure=False))

        row.baseline = DASK_ITEMS / once(plain, repeat=1)
    return row


def rows() -> list[Row]:
    """Every backend figure, in one run."""
    return [async_row(), parallel_row(), dask_row()]


if __name__ == "__main__":
    started = time.perf_counter()
    for row in rows():
        print(row)
    print(f"{time.perf_counter() - started:.1f} s")
