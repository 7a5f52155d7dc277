"""Cache figures: full hits in this process and a new one, cold and warm maps, Disk and Redis."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Any

from benchmarks.core import Row, nodes_of
from benchmarks.shapes import CHAIN, chain, trio
from benchmarks.timing import best
from nestflow import Cache, DiskCache, Pipeline, RedisCache

MAP_ITEMS = 10_000

NEW_PROCESS = """
import json, sys, time
sys.path.insert(0, sys.argv[2])
from benchmarks.shapes import chain
from benchmarks.core import nodes_of
from nestflow import DiskCache, Pipeline
import nestflow.runtime.api  # module imports are not cache reads: keep them out of the timing
funcs, outs = chain()
pipeline = Pipeline(nodes_of(funcs, outs), name="chain", cache=DiskCache(sys.argv[1]))
started = time.perf_counter()
result = pipeline.run(v0=0, output_name=outs[-1])
took = time.perf_counter() - started
assert result == len(funcs), result
assert pipeline.run(v0=0).report.cache_hits == len(funcs)
print(json.dumps(took))
"""


def chain_rows(folder: Path) -> list[Row]:
    """Chain of 100 trivial nodes, fully cached: µs per node here and in a new process."""
    funcs, outs = chain()
    pipeline = Pipeline(nodes_of(funcs, outs), name="chain", cache=DiskCache(folder))
    last = outs[-1]
    pipeline.run(v0=0)  # fills the cache
    here = Row("chain of 100, full DiskCache hit: per node", "µs", 0.0, 0.0, "<= 2")
    here.nestflow = best(lambda: pipeline.run(v0=0, output_name=last), 50) / CHAIN * 1e6
    fresh = Row("chain of 100, hit from a new process: per node", "µs", 0.0, 0.0, "<= 8")
    root = str(Path(__file__).resolve().parents[1])
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", NEW_PROCESS, str(folder), root],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout))
    fresh.nestflow = min(runs) / CHAIN * 1e6
    return [here, fresh]


def map_rows(make: Any, label: str) -> list[Row]:
    """A 3-node map over 10,000 items into an empty cache, then fully warm: items/s."""
    funcs, outs = trio()
    cache = make()
    pipeline = Pipeline(nodes_of(funcs, outs), name="trio", cache=cache)
    xs = list(range(MAP_ITEMS))
    started = perf_counter()
    pipeline.map(x=xs, map_over="x")
    cold = Row(f"3-node map over 10,000 into empty {label}: items/s", "items/s", 0.0, 0.0, "")
    cold.nestflow = MAP_ITEMS / (perf_counter() - started)
    same = Row(f"  same map again, same {label} object: items/s", "items/s", 0.0, 0.0, "")
    started = perf_counter()
    pipeline.map(x=xs, map_over="x")
    same.nestflow = MAP_ITEMS / (perf_counter() - started)
    warm = Row(f"  same map, new {label} on the same store: items/s", "items/s", 0.0, 0.0, "")
    again = pipeline.with_cache(make(reuse=cache))
    started = perf_counter()
    again.map(x=xs, map_over="x")
    warm.nestflow = MAP_ITEMS / (perf_counter() - started)
    if label == "DiskCache":
        cold.target, same.target, warm.target = ">= 20,000", ">= 50,000", ">= 50,000"
    return [cold, same, warm]


def _disk() -> Any:
    folder = Path(tempfile.mkdtemp(prefix="nestflow-bench-"))

    def make(reuse: Cache | None = None) -> Cache:
        return DiskCache(folder)  # a new object on the same folder: nothing known in memory

    return make


@contextmanager
def _redis_server() -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def rows() -> list[Row]:
    """Every cache figure, in one run."""
    folder = Path(tempfile.mkdtemp(prefix="nestflow-bench-"))
    found = [*chain_rows(folder), *map_rows(_disk(), "DiskCache")]
    with _redis_server() as url:
        if url is not None:

            def redis(reuse: Cache | None = None) -> Cache:
                return RedisCache(url, prefix="bench")

            found += map_rows(redis, "RedisCache")
    return found


if __name__ == "__main__":
    for row in rows():
        print(row)
