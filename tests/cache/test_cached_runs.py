"""Caching in runs and maps (SPEC 8.1, 8.4, 8.6-8.8 and the cache items of section 6).

Call logs prove what ran; a BlobStore wrapper counting reads proves what was loaded.
"""

from __future__ import annotations

import importlib.util
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import nestflow
from nestflow import (
    UNSET,
    CacheWarning,
    DiskCache,
    LocalBackend,
    Pipeline,
    RedisCache,
    UnhashableInputError,
    node,
)
from nestflow.cache.store import Cache
from nestflow.testing import RecordingCallback

CALLS: list[str] = []


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


@pytest.fixture
def fresh_cache(tmp_path: Path) -> Callable[[], DiskCache]:
    made = iter(range(1000))
    return lambda: DiskCache(tmp_path / f"cache{next(made)}")


@pytest.fixture(params=["disk", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Cache]]:
    """New empty caches of one kind: DiskCache, or RedisCache on the real test server (A8.12)."""
    made: list[Cache] = []

    def make() -> Cache:
        if request.param == "disk":
            cache: Cache = DiskCache(tmp_path / f"store{len(made)}")
        else:
            url = request.getfixturevalue("redis_db")
            cache = RedisCache(url, prefix=f"t{len(made)}")
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


class CountingBlobs:
    """A BlobStore wrapper counting reads per key."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads: list[str] = []

    def read(self, key: str) -> bytes | None:
        self.reads.append(key)
        return self.inner.read(key)

    def write_many(self, items: Any) -> None:
        self.inner.write_many(items)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def clear(self) -> None:
        self.inner.clear()


def counting(inner: Cache) -> tuple[Cache, CountingBlobs]:
    blobs = CountingBlobs(inner.blobs)
    return Cache(inner.meta, blobs, label="counting"), blobs


# --- A6.1-A6.3, A6.6: the cache aspect along the call chain -----------------------------------


@node(output_name="a")
def fa(x: int) -> int:
    CALLS.append("fa")
    return x + 1


@node(output_name="b")
def fb(a: int) -> int:
    CALLS.append("fb")
    return a * 10


@node(output_name="c")
def fc(b: int) -> int:
    CALLS.append("fc")
    return b - 1


def test_a6_1_cache_and_callbacks_on_the_root_reach_every_level(fresh_cache: Any) -> None:
    rec = RecordingCallback()
    l3 = Pipeline([fa], name="L3")
    l2 = Pipeline([l3, fb], name="L2")
    l1 = Pipeline([l2, fc], name="L1", cache=fresh_cache(), callbacks=[rec])
    assert l1.run(x=1) == {"a": 2, "b": 20, "c": 19}
    assert {"fa", "fb", "fc"} <= set(rec.names("node_start"))
    CALLS.clear()
    assert l1.run(x=1) == {"a": 2, "b": 20, "c": 19}
    assert CALLS == []


def test_a6_2_an_inner_cache_keeps_the_inner_results(fresh_cache: Any) -> None:
    rec1, rec3 = RecordingCallback(), RecordingCallback()
    c3 = fresh_cache()
    l3 = Pipeline([fa], name="L3", cache=c3, callbacks=[rec3])
    l2 = Pipeline([l3, fb], name="L2")
    l1 = Pipeline([l2, fc], name="L1", cache=fresh_cache(), callbacks=[rec1])
    l1.run(x=1)
    assert rec3.names("node_start") == ["fa"]
    assert "fa" not in rec1.names("node_start")
    assert {"fb", "fc"} <= set(rec1.names("node_start"))
    CALLS.clear()
    assert Pipeline([fa], name="alone", cache=c3).run(x=1) == {"a": 2}
    assert CALLS == [], "fa's result is stored in L3's cache"


def test_a6_3_cache_none_disables_a_subtree_while_the_outer_level_stays_warm(
    fresh_cache: Any,
) -> None:
    l3 = Pipeline([fa], name="L3")
    l2 = Pipeline([l3, fb], name="L2", cache=None)
    l1 = Pipeline([l2, fc], name="L1", cache=fresh_cache())
    l1.run(x=1)
    l1.run(x=1)
    assert CALLS == ["fa", "fb", "fc", "fa", "fb"]


def test_a6_6_one_child_under_two_parents_shares_nothing_through_the_child(
    fresh_cache: Any,
) -> None:
    l3 = Pipeline([fa], name="L3")
    p = Pipeline([l3, fb], name="P", cache=fresh_cache())
    q = Pipeline([l3, fb], name="Q", cache=fresh_cache())
    p.run(x=1)
    CALLS.clear()
    q.run(x=1)
    assert CALLS == ["fa", "fb"], "Q's first run calls fa again"
    CALLS.clear()
    assert l3.run(x=1) == {"a": 2}
    assert CALLS == ["fa"], "standalone, L3 has no cache"


def test_a2_7_with_cache_returns_a_new_pipeline(tmp_path: Path) -> None:
    p = Pipeline([fa], name="p")
    q = p.with_cache(DiskCache(tmp_path))
    assert q is not p
    assert p.cache is UNSET
    assert q.cache.label == f"DiskCache({tmp_path})"


# --- A8.1, A8.4, A8.5 ---------------------------------------------------------------------------


def test_a8_1_same_input_hits_new_input_and_new_body_miss(store: Callable[[], Cache]) -> None:
    cache = store()

    @node(output_name="y")
    def add1(x: int) -> int:
        CALLS.append("add1")
        return x + 1

    pipeline = Pipeline([add1], name="p", cache=cache)
    assert [pipeline.run(x=v, output_name="y") for v in (5, 5, 10)] == [6, 6, 11]
    assert CALLS == ["add1", "add1"]

    @node(output_name="y")  # type: ignore[no-redef]
    def add1(x: int) -> int:
        CALLS.append("add1 v2")
        return x + 2

    assert Pipeline([add1], name="p", cache=cache).run(x=5, output_name="y") == 7
    assert CALLS[-1] == "add1 v2"


def test_a8_4_none_is_cached_and_values_are_type_exact(store: Callable[[], Cache]) -> None:
    cache = store()

    @node(output_name="nothing")
    def returns_none(x: Any) -> None:
        CALLS.append("none")

    @node(output_name="kind")
    def kind(x: Any) -> str:
        return type(x).__name__

    none = Pipeline([returns_none], name="none", cache=cache)
    assert none.run(x=1) == {"nothing": None}
    assert none.run(x=1) == {"nothing": None}
    assert CALLS == ["none"]
    values = [1, "1", True, "True", 1.0, [1, 2], (1, 2)]
    kinds = Pipeline([kind], name="kinds", cache=cache)
    assert [kinds.run(x=v, output_name="kind") for v in values] == [
        "int",
        "str",
        "bool",
        "str",
        "float",
        "list",
        "tuple",
    ]


def test_a8_5_an_uncached_node_always_runs_and_its_consumer_hits(
    store: Callable[[], Cache],
) -> None:
    @node(output_name="raw", cache=False)
    def load(x: int) -> int:
        CALLS.append("load")
        return x * 2

    @node(output_name="done")
    def use(raw: int) -> int:
        CALLS.append("use")
        return raw + 1

    pipeline = Pipeline([load, use], name="p", cache=store())
    pipeline.run(x=3)
    pipeline.run(x=3)
    assert CALLS == ["load", "use", "load"]


# --- A8.2: the scenario table, with a BlobStore counting reads ---------------------------------


def _module(tmp_path: Path, name: str, source: str) -> Any:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


FOO = """
from nestflow import node
CALLS = []

@node(output_name="foo_out")
def foo(a, b):
    {doc}
    CALLS.append("foo")  {comment}
    return a + b{extra}

@node(output_name="final")
def bar(foo_out, c):
    CALLS.append("bar")
    return foo_out * c
"""


def foo_bar(tmp_path: Path, name: str, doc: str = "", comment: str = "", extra: str = "") -> Any:
    source = FOO.format(doc=doc, comment=comment, extra=extra)
    return _module(tmp_path, name, source)


def test_a8_2_scenario_table(tmp_path: Path, store: Callable[[], Cache]) -> None:
    inner = store()
    first = foo_bar(tmp_path, "scenario_v1")

    def run(module: Any, **inputs: Any) -> tuple[list[str], int]:
        # A new Cache object per run over the same stores: nothing is held in its memory,
        # so every value the run needs is a counted read of the BlobStore.
        cache, blobs = counting(inner)
        module.CALLS.clear()
        pipeline = Pipeline([module.foo, module.bar], name="p", cache=cache)
        pipeline.run(**{"a": 1, "b": 2, "c": 3, **inputs}, output_name="final")
        return list(module.CALLS), len(blobs.reads)

    assert run(first) == (["foo", "bar"], 0)
    assert run(first, c=4) == (["bar"], 1), "only c: foo hits, foo_out is read once for bar"
    assert run(first, c=4) == ([], 1), "nothing: only final's blob is read"
    assert run(first, a=5, c=4) == (["foo", "bar"], 0)
    body = foo_bar(tmp_path, "scenario_v2", extra=" + 0 * 1")
    assert run(body, a=5, c=4)[0] == ["foo", "bar"], "foo's body changed"
    edited = foo_bar(tmp_path, "scenario_v3", doc='"""Adds."""', comment="# logs the call")
    assert run(edited, a=5, c=4)[0] == [], "docstring and comment only: both hit"


def test_a8_2_a_plain_run_reads_every_output(tmp_path: Path) -> None:
    disk = DiskCache(tmp_path / "c")
    module = foo_bar(tmp_path, "scenario_all")
    assert Pipeline([module.foo, module.bar], name="p", cache=disk).run(a=1, b=2, c=3)
    cache, blobs = counting(disk)
    pipeline = Pipeline([module.foo, module.bar], name="p", cache=cache)
    assert pipeline.run(a=1, b=2, c=3) == {"foo_out": 3, "final": 9}
    assert len(blobs.reads) == 2


# --- A8.3, A8.14: per item ----------------------------------------------------------------------


@node(output_name="squared")
def square(number: int) -> int:
    CALLS.append(f"square {number}")
    return number * number


def test_a8_3_map_caches_per_item(store: Callable[[], Cache]) -> None:
    pipeline = Pipeline([square], name="sq", cache=store())
    assert pipeline.map(number=[1, 2, 3], map_over="number") == {"squared": [1, 4, 9]}
    CALLS.clear()
    assert pipeline.map(number=[2, 3, 4], map_over="number") == {"squared": [4, 9, 16]}
    assert CALLS == ["square 4"]


def test_a8_3_as_node_map_over_caches_per_item_inside_a_cached_outer_pipeline(
    store: Callable[[], Cache],
) -> None:
    @node(output_name="total")
    def add_up(squared: list[int]) -> int:
        CALLS.append("add_up")
        return sum(squared)

    inner = Pipeline([square], name="one")
    every = inner.as_node(name="every", map_over="numbers", input_mapping={"numbers": "number"})
    outer = Pipeline([every, add_up], name="outer", cache=store())
    assert outer.run(numbers=[1, 2, 3]) == {"squared": [1, 4, 9], "total": 14}
    CALLS.clear()
    assert outer.run(numbers=[2, 3, 4]) == {"squared": [4, 9, 16], "total": 29}
    assert CALLS == ["square 4", "add_up"]
    CALLS.clear()
    assert outer.run(numbers=[2, 3, 4], output_name="total") == 29
    assert CALLS == []


def test_a8_14_double_map_runs_each_distinct_inner_item_once(tmp_path: Path) -> None:
    @node(output_name="shout")
    def upper(letter: str) -> str:
        CALLS.append(letter)
        return letter.upper() + "!"

    inner = Pipeline([upper], name="letters")
    per_batch = inner.as_node(name="per_batch", map_over="batch", input_mapping={"batch": "letter"})
    outer = Pipeline([per_batch], name="batches", cache=DiskCache(tmp_path))
    result = outer.map(batch=[["a", "b"], ["a", "c"]], map_over="batch")
    assert result == {"shout": [["A!", "B!"], ["A!", "C!"]]}
    assert sorted(CALLS) == ["a", "b", "c"]


def test_s8_6_fully_cached_items_fire_on_map_item_cached(tmp_path: Path) -> None:
    rec = RecordingCallback()
    pipeline = Pipeline([square], name="sq", cache=DiskCache(tmp_path), callbacks=[rec])
    pipeline.map(number=[1, 2], map_over="number")
    rec.events.clear()
    pipeline.map(number=[1, 2, 5], map_over="number")
    cached = [e for e in rec.events if e[0] == "item_cached"]
    assert [e[1] for e in cached] == [0, 1]
    starts = [e for e in rec.events if e[0] == "item_start"]
    assert [e[1] for e in starts] == [2]


# --- A8.8, A8.11, A8.13, A8.15 -----------------------------------------------------------------


def test_a8_8_a_socket_input_is_rejected_before_the_node_runs(tmp_path: Path) -> None:
    @node(output_name="peer")
    def talk(conn: Any) -> str:
        CALLS.append("talk")
        return "ok"

    with socket.socket() as sock:
        cached = Pipeline([talk], name="chat", cache=DiskCache(tmp_path))
        with pytest.raises(UnhashableInputError) as info:
            cached.run(conn=sock)
        message = str(info.value)
        assert "chat > talk" in message
        assert "`conn`" in message
        assert "__cache_key__" in message
        assert "register_fingerprint" in message
        assert "cache=False" in message
        assert CALLS == []
        assert isinstance(info.value, TypeError)
        uncached = Pipeline(
            [talk.with_options(cache=False)], name="chat", cache=DiskCache(tmp_path)
        )
        assert uncached.run(conn=sock) == {"peer": "ok"}


def test_a8_11_a_truncated_blob_warns_recomputes_and_succeeds(tmp_path: Path) -> None:
    @node(output_name="big")
    def make_big(n: int) -> bytes:
        CALLS.append("make_big")
        return bytes(range(256)) * n

    pipeline = Pipeline([make_big], name="big", cache=DiskCache(tmp_path / "c"))
    expected = bytes(range(256)) * 1024
    assert pipeline.run(n=1024, output_name="big") == expected
    files = [p for p in (tmp_path / "c").rglob("*") if p.is_file() and p.stat().st_size > 200_000]
    assert len(files) == 1, "a 256 KiB value is stored as a blob file"
    files[0].write_bytes(files[0].read_bytes()[:1000])
    with pytest.warns(CacheWarning):
        assert pipeline.run(n=1024, output_name="big") == expected
    assert CALLS == ["make_big", "make_big"]
    assert pipeline.run(n=1024, output_name="big") == expected
    assert CALLS == ["make_big", "make_big"], "stored again after the recompute"


def test_a8_13_cache_version_on_the_store_or_on_one_node(tmp_path: Path) -> None:
    def chain(cache: Any, version: str | None) -> Pipeline:
        return Pipeline([fa, fb.with_options(cache_version=version), fc], name="v", cache=cache)

    chain(DiskCache(tmp_path), None).run(x=1)
    CALLS.clear()
    chain(DiskCache(tmp_path), "2").run(x=1)
    assert CALLS == ["fb", "fc"], "a node's version invalidates it and its consumers"
    CALLS.clear()
    chain(DiskCache(tmp_path, cache_version="7"), "2").run(x=1)
    assert CALLS == ["fa", "fb", "fc"], "the store's version invalidates everything"


def test_a8_15_stats_by_pipeline_after_a_warm_run_of_three_levels(tmp_path: Path) -> None:
    l3 = Pipeline([fa], name="L3")
    l2 = Pipeline([l3, fb], name="L2")
    l1 = Pipeline([l2, fc], name="L1", cache=DiskCache(tmp_path))
    cold = l1.run(x=1)
    assert cold.report.cache_misses == 3
    warm = l1.run(x=1)
    report = warm.report
    assert (report.cache_hits, report.cache_misses) == (3, 0)
    stats = report.stats(by="pipeline")
    assert set(stats) == {"L1", "L1 > L2", "L1 > L2 > L3"}
    for row in stats.values():
        assert row["executed"] == 0
        assert row["cached"] == 1
    assert all(r.signature for r in report.records)


# --- caches under every backend -----------------------------------------------------------------


@node(output_name="tripled")
def triple(v: int) -> int:
    return v * 3


@pytest.mark.parametrize(
    "backend",
    [
        LocalBackend(map_execution="threaded", max_workers=4),
        LocalBackend(node_execution="async", map_execution="async"),
        LocalBackend(map_execution="parallel", max_workers=2),
    ],
    ids=["threaded", "async", "parallel"],
)
def test_maps_under_every_local_backend_fill_and_reuse_one_disk_cache(
    tmp_path: Path, backend: LocalBackend
) -> None:
    rec = RecordingCallback()
    pipeline = Pipeline(
        [triple], name="t", cache=DiskCache(tmp_path), backend=backend, callbacks=[rec]
    )
    items = list(range(20))
    assert pipeline.map(v=items, map_over="v") == {"tripled": [3 * v for v in items]}
    rec.events.clear()
    fresh = pipeline.with_cache(DiskCache(tmp_path))
    with nestflow.capture() as cap:
        assert fresh.map(v=items, map_over="v") == {"tripled": [3 * v for v in items]}
    assert cap.last.cache_hits == 20
    assert cap.last.cache_misses == 0
    assert not [e for e in rec.events if e[0] == "node_start"]
    cached = [e[1] for e in rec.events if e[0] == "item_cached"]
    assert cached == items, "every item is resolved here, none is sent to a worker"


# --- A8.9: threads and processes sharing one DiskCache directory -------------------------------

WORKER = """
import sys
from nestflow import DiskCache, LocalBackend, Pipeline
sys.path.insert(0, sys.argv[1])
from shared_nodes import halve
pipeline = Pipeline([halve], name="halves", cache=DiskCache(sys.argv[2]),
                    backend=LocalBackend(map_execution="threaded", max_workers=8))
start, stop = int(sys.argv[3]), int(sys.argv[4])
result = pipeline.map(n=list(range(start, stop)), map_over="n")
assert result == {"half": [n / 2 for n in range(start, stop)]}, result
print("ok")
"""

SHARED = """
from nestflow import node

@node(output_name="half")
def halve(n):
    return n / 2
"""


def test_a8_9_threads_fill_one_cache_and_a_new_cache_serves_every_item(tmp_path: Path) -> None:
    rec = RecordingCallback()
    backend = LocalBackend(map_execution="threaded", max_workers=8)
    pipeline = Pipeline([square], name="sq", cache=DiskCache(tmp_path), backend=backend)
    numbers = list(range(400))
    assert pipeline.map(number=numbers, map_over="number") == {"squared": [n * n for n in numbers]}
    assert len(CALLS) == 400
    CALLS.clear()
    again = pipeline.with_cache(DiskCache(tmp_path)).with_callbacks([rec])
    assert again.map(number=numbers, map_over="number") == {"squared": [n * n for n in numbers]}
    assert CALLS == []
    assert len([e for e in rec.events if e[0] == "item_cached"]) == 400


def test_a8_9_two_processes_of_eight_threads_map_overlapping_items_into_one_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "shared_nodes.py").write_text(SHARED)
    folder = tmp_path / "cache"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    ranges = [("0", "300"), ("150", "450")]
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(folder), *span],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for span in ranges
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert out.strip() == "ok"
    sys.path.insert(0, str(tmp_path))
    try:
        halve = importlib.import_module("shared_nodes").halve
    finally:
        sys.path.remove(str(tmp_path))
    with nestflow.capture() as cap:
        result = Pipeline([halve], name="halves", cache=DiskCache(folder)).map(
            n=list(range(450)), map_over="n"
        )
    assert result == {"half": [n / 2 for n in range(450)]}
    assert cap.last.cache_hits == 450
    assert cap.last.cache_misses == 0


# --- the cached fast path agrees with the general runner ---------------------------------------


@node(output_name="checked")
def check(tripled: int) -> int:
    if tripled == 6:
        raise ValueError("six is not allowed")
    return tripled + 1


def test_a_failing_item_keeps_what_finished_and_names_its_place(tmp_path: Path) -> None:
    pipeline = Pipeline([triple, check], name="checks", cache=DiskCache(tmp_path))
    with nestflow.capture() as cap, pytest.raises(ValueError, match="six") as info:
        pipeline.map(v=[1, 2, 3], map_over="v")
    notes = "\n".join(info.value.__notes__)
    assert "checks > check" in notes
    assert "item 1" in notes
    report = cap.last
    assert report.status == "failed"
    assert [(r.node, r.item_path, r.status) for r in report.records] == [
        ("triple", (0,), "executed"),
        ("check", (0,), "executed"),
        ("triple", (1,), "executed"),
        ("check", (1,), "failed"),
    ]
    with nestflow.capture() as cap:
        assert pipeline.map(v=[1, 2], map_over="v", output_name="tripled") == [3, 6]
    assert cap.last.cache_hits == 2
    first = pipeline.run(v=1)
    assert first == {"tripled": 3, "checked": 4}
    assert first.report.cache_hits == 2, "what finished before the failure was kept"


@pytest.mark.parametrize("listen", [False, True], ids=["cached-loop", "general-runner"])
def test_both_paths_give_the_same_values_counts_and_records(tmp_path: Path, listen: bool) -> None:
    callbacks = [RecordingCallback()] if listen else []
    pipeline = Pipeline([fa, fb, fc], name="abc", cache=DiskCache(tmp_path), callbacks=callbacks)
    cold = pipeline.map(x=[1, 2], map_over="x")
    warm = pipeline.map(x=[1, 2, 3], map_over="x")
    assert cold == {"a": [2, 3], "b": [20, 30], "c": [19, 29]}
    assert warm == {"a": [2, 3, 4], "b": [20, 30, 40], "c": [19, 29, 39]}
    assert (cold.report.cache_hits, cold.report.cache_misses) == (0, 6)
    assert (warm.report.cache_hits, warm.report.cache_misses) == (6, 3)
    statuses = [(r.path, r.item_path, r.status) for r in warm.report.records]
    assert sorted(statuses) == sorted(
        [(f"abc > {n}", (i,), "cached") for n in ("fa", "fb", "fc") for i in (0, 1)]
        + [(f"abc > {n}", (2,), "executed") for n in ("fa", "fb", "fc")]
    )
    assert all(r.signature and r.cache == f"DiskCache({tmp_path})" for r in warm.report.records)


def test_a_parallel_map_fills_and_reuses_a_redis_cache(redis_db: str) -> None:
    backend = LocalBackend(map_execution="parallel", max_workers=2)
    with RedisCache(redis_db, prefix="par") as cache:
        pipeline = Pipeline([triple], name="t", cache=cache, backend=backend)
        items = list(range(10))
        assert pipeline.map(v=items, map_over="v") == {"tripled": [3 * v for v in items]}
    with RedisCache(redis_db, prefix="par") as fresh, nestflow.capture() as cap:
        again = Pipeline([triple], name="t", cache=fresh, backend=backend)
        assert again.map(v=items, map_over="v") == {"tripled": [3 * v for v in items]}
    assert (cap.last.cache_hits, cap.last.cache_misses) == (10, 0)


HELPERS = """
from nestflow import node
CALLS = []
SCALE = 2

def helper(x):
    return x * SCALE

@node(output_name="scaled")
def scaled(x, offset=1):
    CALLS.append(x)
    return helper(x) + offset
"""


def test_remembered_signatures_follow_code_constants_and_inputs(tmp_path: Path) -> None:
    module = _module(tmp_path, "remembered_helpers", HELPERS)
    pipeline = Pipeline([module.scaled], name="s", cache=DiskCache(tmp_path / "c"))
    assert pipeline.run(x=3, output_name="scaled") == 7
    assert pipeline.run(x=3, output_name="scaled") == 7
    assert module.CALLS == [3]
    module.SCALE = 10
    assert pipeline.run(x=3, output_name="scaled") == 31, "a constant read by a helper changed"
    module.helper = lambda x: -x
    assert pipeline.run(x=3, output_name="scaled") == -2, "the helper was rebound"
    assert pipeline.run(x=3, offset=5, output_name="scaled") == 2, "a default was overridden"
    assert pipeline.run(x=4, output_name="scaled") == -3
    assert module.CALLS == [3, 3, 3, 3, 4]


def test_the_cached_loop_and_the_general_runner_share_one_cache(tmp_path: Path) -> None:
    quick = Pipeline([fa, fb, fc], name="abc", cache=DiskCache(tmp_path))
    quick.map(x=[1, 2, 3], map_over="x")
    quick.run(x=9)
    listened = quick.with_callbacks([RecordingCallback()])
    CALLS.clear()
    assert listened.map(x=[1, 2, 3], map_over="x").report.cache_hits == 9
    assert listened.run(x=9).report.cache_hits == 3
    assert CALLS == []
    general_first = Pipeline([fa, fb, fc], name="abc", cache=DiskCache(tmp_path / "g"))
    general_first.with_callbacks([RecordingCallback()]).run(x=5)
    assert general_first.run(x=5).report.cache_hits == 3


ANALYSED = """
import sys
sys.path.insert(0, sys.argv[1])
from nestflow import DiskCache
from nestflow.cache.fingerprint import code_fingerprint
import analysed_nodes
cache = DiskCache(sys.argv[2])
kept = cache.analyses if sys.argv[3] == "kept" else None
print(code_fingerprint(analysed_nodes.measure, kept).hex())
print(code_fingerprint(analysed_nodes.closed, kept).hex())  # reads no global name at all
cache.flush()
"""

ANALYSED_NODES = """
SCALE = 3

def helper(x):
    return x * SCALE

def measure(text):
    # counts words
    return helper(len(text.split())){tail}

def closed(text):
    return len(text) * 2{tail}
"""


def test_a_new_process_reads_kept_code_analyses_and_signs_the_same(tmp_path: Path) -> None:
    script = tmp_path / "analysed.py"
    script.write_text(ANALYSED)
    folder = tmp_path / "cache"

    def fingerprint_in_new_process(mode: str, tail: str = "") -> str:
        (tmp_path / "analysed_nodes.py").write_text(ANALYSED_NODES.format(tail=tail))
        args = [sys.executable, str(script), str(tmp_path), str(folder), mode]
        done = subprocess.run(args, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    plain = fingerprint_in_new_process("plain")
    first = fingerprint_in_new_process("kept")  # analyses the source, keeps the analysis
    database = sqlite3.connect(folder / "cache.sqlite3")
    try:
        assert database.execute("SELECT COUNT(*) FROM code").fetchone()[0] >= 1
    finally:
        database.close()
    again = fingerprint_in_new_process("kept")  # reads the kept analysis
    assert plain == first == again
    assert len(set(plain.split())) == 2
    changed = fingerprint_in_new_process("kept", tail=" + 1").split()
    assert [new != old for new, old in zip(changed, plain.split(), strict=True)] == [True, True], (
        "changed code is a new key: analysed again, not read"
    )


def test_values_kept_in_memory_are_copies_a_caller_cannot_change(tmp_path: Path) -> None:
    @node(output_name="listed")
    def listing(n: int) -> list[int]:
        CALLS.append("listing")
        return list(range(n))

    pipeline = Pipeline([listing], name="l", cache=DiskCache(tmp_path))
    first = pipeline.run(n=3, output_name="listed")
    first.append(99)
    second = pipeline.run(n=3, output_name="listed")
    assert second == [0, 1, 2]
    second.append(7)
    assert pipeline.run(n=3, output_name="listed") == [0, 1, 2]
    assert CALLS == ["listing"]


def test_failures_skips_and_timeouts_are_never_stored(tmp_path: Path) -> None:
    attempts: list[str] = []

    @node(output_name="flaky", on_error="continue")
    def flaky(x: int) -> int:
        attempts.append("flaky")
        raise RuntimeError("down")

    @node(output_name="after")
    def after(flaky: int) -> int:
        attempts.append("after")
        return flaky

    @node(output_name="slow", timeout=0.2)
    def slow(x: int) -> int:
        attempts.append("slow")
        time.sleep(1)
        return x

    cache = DiskCache(tmp_path)
    partial = Pipeline([flaky, after], name="partial", cache=cache)
    for _ in range(2):
        result = partial.run(x=1)
        assert result == {"flaky": None, "after": None}
        assert result.report.status == "partial"
        assert result.report.cache_hits == 0
    assert attempts == ["flaky", "flaky"], "the failure ran twice; the skipped node never ran"
    timed = Pipeline([slow], name="timed", cache=cache)
    for _ in range(2):
        with pytest.raises(TimeoutError):
            timed.run(x=1)
    assert attempts.count("slow") == 2


# --- regressions: one plan nested twice, strict flushes, shipped lists, shared recomputes ----


def test_one_pipeline_nested_under_two_caches_signs_with_each_cache_version(
    tmp_path: Path,
) -> None:
    inner = Pipeline([fa], name="inner")

    def root(version_b: str) -> Pipeline:
        a = Pipeline([inner], name="A", cache=DiskCache(tmp_path / "a", cache_version="1"))
        b = inner.as_node(name="b_side", output_mapping={"a": "a2"})
        b_level = Pipeline([b], name="B", cache=DiskCache(tmp_path / "b", cache_version=version_b))
        return Pipeline([a, b_level], name="R")

    root("2").run(x=1)
    CALLS.clear()
    root("3").run(x=1)
    assert CALLS == ["fa"], "B's new version re-runs its nested fa; A's stays cached"


class FailingMeta:
    """A MetaStore whose writes fail, as a full disk would."""

    def __init__(self) -> None:
        from nestflow.cache.memory import MemoryMetaStore

        self.inner = MemoryMetaStore()

    def get_many(self, signatures: Any) -> Any:
        return self.inner.get_many(signatures)

    def put_many(self, entries: Any) -> None:
        raise OSError("No space left on device")

    def delete(self, signature: str) -> None:
        self.inner.delete(signature)

    def clear(self) -> None:
        self.inner.clear()

    def stats(self) -> dict[str, int]:
        return self.inner.stats()


def test_a_strict_cache_that_cannot_write_still_delivers_the_report() -> None:
    from nestflow.cache.memory import MemoryBlobStore

    cache = Cache(FailingMeta(), MemoryBlobStore(), strict=True)
    pipeline = Pipeline([fa, fb], name="strict", cache=cache)
    with nestflow.capture() as cap, pytest.raises(nestflow.CacheError, match="No space"):
        pipeline.run(x=1)
    assert len(cap.reports) == 1
    assert cap.last.status == "failed"
    assert CALLS == ["fa", "fb"]


def test_lists_built_from_worker_items_sign_like_lists_built_here(tmp_path: Path) -> None:
    @node(output_name="total")
    def add_up(squared: list[int]) -> int:
        CALLS.append("add_up")
        return sum(squared)

    def outer(mode: str) -> Pipeline:
        every = Pipeline([square], name="one").as_node(
            name="every", map_over="numbers", input_mapping={"numbers": "number"}
        )
        backend = LocalBackend(map_execution=mode, max_workers=2)
        return Pipeline([every, add_up], name="outer", cache=DiskCache(tmp_path), backend=backend)

    outer("parallel").run(numbers=[1, 2, 3])
    CALLS.clear()
    warm = outer("threaded").run(numbers=[1, 2, 3])
    assert CALLS == []
    assert warm.report.cache_misses == 0


def test_two_consumers_of_an_unreadable_value_recompute_it_once(tmp_path: Path) -> None:
    @node(output_name="big")
    def make_big(n: int) -> bytes:
        CALLS.append("make_big")
        return b"x" * n

    @node(output_name="left")
    async def left(big: bytes) -> int:
        return len(big)

    @node(output_name="right")
    async def right(big: bytes) -> int:
        return len(big) + 1

    backend = LocalBackend(node_execution="async")
    folder = tmp_path / "c"
    pipeline = Pipeline([make_big, left, right], name="pair", cache=DiskCache(folder),
                        backend=backend)  # fmt: skip
    pipeline.run(n=300_000, output_name="big")  # only the big value is stored
    for file in folder.rglob("*"):
        if file.is_file() and file.stat().st_size >= 300_000:
            file.write_bytes(b"")
    CALLS.clear()
    with pytest.warns(CacheWarning):
        assert pipeline.run(n=300_000, output_name=["left", "right"]) == {
            "left": 300_000,
            "right": 300_001,
        }
    assert CALLS == ["make_big"]


def test_closed_groups_are_fingerprinted_like_their_members_and_kept_once(tmp_path: Path) -> None:
    from nestflow.cache.fingerprint import code_fingerprint, code_fingerprints

    namespace: dict[str, object] = {}
    exec("def one(a):\n    return a + 1\ndef two(b):\n    return b * 2\n", namespace)
    one, two = namespace["one"], namespace["two"]
    cache = DiskCache(tmp_path)
    found, closed = code_fingerprints([one, two], cache.analyses)  # type: ignore[list-item]
    assert closed is True
    assert found == [code_fingerprint(one), code_fingerprint(two)]  # type: ignore[arg-type]
    cache.flush()
    database = sqlite3.connect(tmp_path / "cache.sqlite3")
    try:
        kept = database.execute("SELECT COUNT(*) FROM code WHERE key LIKE 'closed:%'").fetchone()
    finally:
        database.close()
    assert kept == (1,)
    again, _ = code_fingerprints([one, two], DiskCache(tmp_path).analyses)  # type: ignore[list-item]
    assert again == found

    def reads_a_global(x: int) -> int:
        return len(str(x))

    _, mixed = code_fingerprints([one, reads_a_global], cache.analyses)  # type: ignore[list-item]
    assert mixed is False, "a node that reads a global name is fingerprinted on every run"


def test_a_node_given_new_code_is_run_again_not_served_from_the_kept_fingerprints(
    tmp_path: Path,
) -> None:
    namespace: dict[str, object] = {}
    exec("def inc(x):\n    return x + 1\n", namespace)
    inc = namespace["inc"]
    pipeline = Pipeline([node(output_name="y")(inc)], name="n", cache=DiskCache(tmp_path))
    assert pipeline.run(x=1)["y"] == 2
    assert pipeline.run(x=1).report.cache_hits == 1
    inc.__code__ = compile("def inc(x):\n    return x + 10\n", "<new>", "exec").co_consts[0]  # type: ignore[attr-defined]
    result = pipeline.run(x=1)
    assert result["y"] == 11
    assert result.report.cache_misses == 1


def test_a_process_keeps_a_closed_group_by_its_code_objects(tmp_path: Path) -> None:
    """A new pipeline object of the same functions finds the group's fingerprints without
    asking the store; new code is a new group."""
    from nestflow.cache.fingerprint import code_fingerprints

    namespace: dict[str, object] = {}
    exec("def one(a):\n    return a + 1\ndef two(b):\n    return b * 2\n", namespace)
    one, two = namespace["one"], namespace["two"]

    class Counting:
        def __init__(self) -> None:
            self.kept: dict[str, bytes] = {}
            self.gets = 0

        def get(self, key: str) -> bytes | None:
            self.gets += 1
            return self.kept.get(key)

        def put(self, key: str, value: bytes) -> None:
            self.kept[key] = value

    store = Counting()
    first, closed = code_fingerprints([one, two], store)  # type: ignore[list-item, arg-type]
    assert closed is True
    asked = store.gets
    again, closed_again = code_fingerprints([one, two], store)  # type: ignore[list-item, arg-type]
    assert (again, closed_again) == (first, True)
    assert store.gets == asked  # found in the process, not in the store
    one.__code__ = compile("def one(a):\n    return a + 2\n", "<new>", "exec").co_consts[0]  # type: ignore[attr-defined]
    changed, _ = code_fingerprints([one, two], store)  # type: ignore[list-item, arg-type]
    assert changed[0] != first[0]
    assert changed[1] == first[1]
