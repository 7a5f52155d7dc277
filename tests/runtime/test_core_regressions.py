"""Behaviours the one execution core must keep, found by comparing it with the runners it
replaced: unread cache values never reach user code, broadcast inputs of mapped children,
outputs read at the root whatever level holds the cache, async nodes made again, and
cache write failures that stay the cache's."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from nestflow import CacheStoreError, DiskCache, LocalBackend, Pipeline, node
from nestflow.testing import forced_driver

DRIVERS = ["sync", "async"]


@node(output_name="a")
def tenfold(x: int) -> int:
    return x * 10


@node(output_name="b", cache=False)
def plus_one(a: int) -> int:
    return a + 1


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_uncached_node_after_a_hit_gets_the_value(tmp_path: Path, driver: str) -> None:
    pipeline = Pipeline([tenfold, plus_one], name="p", cache=DiskCache(tmp_path))
    with forced_driver(driver):
        assert pipeline.run(x=1) == {"a": 10, "b": 11}
        assert pipeline.run(x=1) == {"a": 10, "b": 11}  # `a` a hit, `b` runs on its value
        assert pipeline.map(x=[1, 2], map_over="x") == {"a": [10, 20], "b": [11, 21]}


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_child_without_a_cache_gets_the_values_of_its_parents_hits(
    tmp_path: Path, driver: str
) -> None:
    inner = Pipeline([plus_one], name="inner", cache=None)
    outer = Pipeline([tenfold, inner], name="outer", cache=DiskCache(tmp_path))
    with forced_driver(driver):
        outer.run(x=2)
        assert outer.run(x=2) == {"a": 20, "b": 21}


@node(output_name="y")
def add_offset(x: int, ax: int) -> int:
    return x + ax


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_broadcast_input_whose_name_ends_in_a_mapped_name_reaches_every_item(
    driver: str,
) -> None:
    inner = Pipeline([add_offset], name="inner")
    outer = Pipeline([inner.as_node(name="per", map_over="x")], name="outer")
    with forced_driver(driver):
        assert outer.run(x=[1, 2], ax=100) == {"y": [101, 102]}


@node(output_name="w", cache=False)
def same(x: int) -> int:
    return x


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_root_returns_read_values_when_only_a_child_has_a_cache(
    tmp_path: Path, driver: str
) -> None:
    inner = Pipeline([tenfold, same], name="inner", cache=DiskCache(tmp_path))
    outer = Pipeline([inner.as_node(name="inn")], name="outer")  # no cache, no callbacks
    with forced_driver(driver):
        outer.run(x=1)
        again = outer.run(x=1)
    assert again == {"a": 10, "w": 1}
    assert type(again["a"]) is int


@node(output_name="a")
async def slow_tenfold(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * 10


@node(output_name="b")
def add_k(a: int, k: int) -> int:
    return a + k


def _lose_values(folder: Path) -> None:
    (database,) = folder.glob("*.sqlite3")
    with sqlite3.connect(database) as connection:
        connection.execute("delete from blobs")


@pytest.mark.parametrize(
    "config",
    [{"backend": LocalBackend("threaded")}, {"backend": LocalBackend("async")}, {"timeout": 30.0}],
    ids=["threaded", "async", "timed"],
)
def test_an_async_node_whose_stored_value_was_lost_runs_again(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    def pipeline() -> Pipeline:
        return Pipeline([slow_tenfold, add_k], name="p", cache=DiskCache(tmp_path), **config)

    pipeline().run(x=1, k=1)
    _lose_values(tmp_path)
    with pytest.warns(Warning, match="stored value"):  # the lost value is reported once
        assert pipeline().run(x=1, k=2, output_name="b") == 12


class FullDisk(DiskCache):
    """A cache whose every write fails."""

    def store(self, *args: Any, **kwargs: Any) -> None:
        raise CacheStoreError("disk full")


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_failed_cache_write_is_the_caches_error_not_the_nodes(
    tmp_path: Path, driver: str
) -> None:
    calls: list[int] = []

    @node(output_name="a", on_error="continue", retries=2)
    def counted(x: int) -> int:
        calls.append(x)
        return x

    pipeline = Pipeline([counted], name="p", cache=FullDisk(tmp_path))
    with forced_driver(driver), pytest.raises(CacheStoreError, match="disk full"):
        pipeline.run(x=1)
    assert calls == [1], "the node ran once: neither retried nor continued past"
