"""The pieces scenarios are built from: a per-cell workspace, steps, and small node makers.

Every node writes one line to the workspace's call log (its name and process id) when
its function body runs, so a cell can tell which functions really ran, how often, and in
which process, whatever the report says. Functions close over plain strings only, so
cloudpickle ships them by value to worker processes and dask workers.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import cloudpickle

from nestflow import Node, Pipeline, node

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def note(log: str, name: str) -> None:
    """Append ``name`` and this process's id to the call log (an O_APPEND write: atomic)."""
    with open(log, "a", encoding="utf-8") as file:
        file.write(f"{name} {os.getpid()}\n")


@dataclass(frozen=True)
class Workspace:
    """The folder of one cell (call log, retry counters) and the cache folder it shares.

    Cells share one cache folder, each under its own ``cache_version``: their signatures
    never meet, so every cell starts cold, without paying for a new database each time.
    """

    root: Path
    cache_dir: Path

    @property
    def log(self) -> str:
        return str(self.root / "calls.log")

    @property
    def cache_version(self) -> str:
        return str(self.root)

    def counter(self, name: str) -> str:
        """A file whose size counts the calls of a flaky node, shared by every process."""
        return str(self.root / f"{name}.count")

    def calls(self) -> list[tuple[str, int]]:
        """Every logged call so far, as (node name, process id), in log order."""
        path = Path(self.log)
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [(name, int(pid)) for name, pid in (line.split() for line in lines)]


Prepare = Callable[[Workspace], None]


@dataclass(frozen=True)
class Step:
    """One call of a scenario, with what a cache must make of it.

    ``hits`` and ``misses`` are the cache counts the report must show when the cell has a
    cache (without one both are 0); ``misses=None`` means one miss per record of an execution
    that succeeded (failures store nothing). ``prepare`` runs before the call
    (it may damage the cache), and ``reopen`` gives the step a new cache object on the same
    folder, as a new process would open it.
    """

    kind: Literal["run", "map"]
    inputs: Mapping[str, Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    hits: int = 0
    misses: int | None = None
    cache_warnings: int = 0
    prepare: Prepare | None = None
    reopen: bool = False

    def cached(self, hits: int, misses: int, warnings: int = 0) -> Step:
        """This step with the cache counts a cached cell must report."""
        return replace(self, hits=hits, misses=misses, cache_warnings=warnings)

    def after(self, prepare: Prepare, reopen: bool = True) -> Step:
        """This step, preceded by ``prepare`` (on a reopened cache unless told otherwise)."""
        return replace(self, prepare=prepare, reopen=reopen)

    def reopened(self) -> Step:
        """This step on a new cache object over the same folder."""
        return replace(self, reopen=True)

    def call(self, pipeline: Pipeline) -> Any:
        """Run the step on ``pipeline``."""
        method = pipeline.run if self.kind == "run" else pipeline.map
        return method(dict(self.inputs), **self.options)


def run(inputs: Mapping[str, Any], **options: Any) -> Step:
    """A ``Pipeline.run`` step."""
    return Step("run", inputs, options)


def mapped(inputs: Mapping[str, Any], **options: Any) -> Step:
    """A ``Pipeline.map`` step."""
    return Step("map", inputs, options)


# --- node makers -------------------------------------------------------------------------------


def add(log: str, name: str, src: str, out: str, k: int = 1, **options: Any) -> Node:
    """``out = src + k``."""

    def add_k(value: int) -> int:
        note(log, name)
        return value + k

    return node(add_k, output_name=out, name=name, **options).with_inputs({"value": src})


def scale(log: str, name: str, src: str, out: str, k: int = 2, **options: Any) -> Node:
    """``out = src * k``."""

    def times_k(value: int) -> int:
        note(log, name)
        return value * k

    return node(times_k, output_name=out, name=name, **options).with_inputs({"value": src})


def join(log: str, name: str, left: str, right: str, out: str, **options: Any) -> Node:
    """``out = 100 * left + right``: order-sensitive, so swapped inputs show."""

    def joined(first: int, second: int) -> int:
        note(log, name)
        return 100 * first + second

    return node(joined, output_name=out, name=name, **options).with_inputs(
        {"first": left, "second": right}
    )


def total(log: str, name: str, src: str, out: str) -> Node:
    """``out = sum(src)`` of a list."""

    def summed(values: list[int]) -> int:
        note(log, name)
        return sum(values)

    return node(summed, output_name=out, name=name).with_inputs({"values": src})


def async_add(log: str, name: str, src: str, out: str, k: int = 1) -> Node:
    """``out = src + k`` as an ``async def`` node that yields to the loop once."""

    async def add_later(value: int) -> int:
        note(log, name)
        await asyncio.sleep(0)
        return value + k

    return node(add_later, output_name=out, name=name).with_inputs({"value": src})


def fail_on(
    log: str,
    name: str,
    src: str,
    out: str,
    bad: int,
    error: type[Exception] = ValueError,
    **options: Any,
) -> Node:
    """``out = src``, but raises ``error`` when ``src == bad``."""

    def checked(value: int) -> int:
        note(log, name)
        if value == bad:
            raise error(f"{name} rejects {value}")
        return value

    return node(checked, output_name=out, name=name, **options).with_inputs({"value": src})


def async_fail_on(log: str, name: str, src: str, out: str, bad: int) -> Node:
    """``fail_on`` as an ``async def`` node."""

    async def checked_later(value: int) -> int:
        note(log, name)
        await asyncio.sleep(0)
        if value == bad:
            raise ValueError(f"{name} rejects {value}")
        return value

    return node(checked_later, output_name=out, name=name).with_inputs({"value": src})


def flaky(
    log: str, name: str, src: str, out: str, counter: str, failures: int, **options: Any
) -> Node:
    """``out = src * 10`` after ``failures`` failed calls, counted in a file (across processes)."""

    def sometimes(value: int) -> int:
        note(log, name)
        with open(counter, "a", encoding="utf-8") as file:
            file.write(".")
        calls = os.path.getsize(counter)
        if calls <= failures:
            raise ConnectionError(f"{name} call {calls} failed")
        return value * 10

    return node(sometimes, output_name=out, name=name, **options).with_inputs({"value": src})


def sleepy(log: str, name: str, src: str, out: str, seconds: float, **options: Any) -> Node:
    """``out = src`` after sleeping ``seconds`` (a blocking sleep)."""

    def slow(value: int) -> int:
        note(log, name)
        time.sleep(seconds)
        return value

    return node(slow, output_name=out, name=name, **options).with_inputs({"value": src})


def gil_holder(log: str, name: str, src: str, out: str, **options: Any) -> Node:
    """``out = src`` after one long C call, which holds the GIL until it returns."""

    def busy(value: int) -> int:
        note(log, name)
        sum(range(5_000_000))
        return value

    return node(busy, output_name=out, name=name, **options).with_inputs({"value": src})


# --- cache damage ------------------------------------------------------------------------------


LATEST = "SELECT blob_key FROM entries WHERE node = ? ORDER BY created DESC LIMIT 1"


def _damage(folder: Path, node_path: str, statement: str) -> None:
    """Apply ``statement`` to the latest stored value of the node at ``node_path``.

    Cells run one after the other, so the latest entry of that node is this cell's.
    """
    database = folder / "cache.sqlite3"
    if not database.exists():
        return
    with sqlite3.connect(database) as conn:
        keys = conn.execute(LATEST, (node_path,)).fetchall()
        assert keys, f"no stored value of node `{node_path}` to damage"
        conn.executemany(statement, keys)
    conn.close()


def delete_value(node_path: str) -> Prepare:
    """Delete the stored value of the node at ``node_path`` (its entry stays)."""

    def delete(ws: Workspace) -> None:
        _damage(ws.cache_dir, node_path, "DELETE FROM blobs WHERE key = ?")

    return delete


def corrupt_value(node_path: str) -> Prepare:
    """Overwrite the stored value of the node at ``node_path`` with bytes that are not it."""

    def corrupt(ws: Workspace) -> None:
        _damage(ws.cache_dir, node_path, "UPDATE blobs SET data = X'00ff00' WHERE key = ?")

    return corrupt
