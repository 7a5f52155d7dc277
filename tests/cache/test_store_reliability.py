"""Stores under failure: a writer killed mid-flush, a Redis server stopped and restarted."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from nestflow.cache.disk import INLINE_LIMIT, DiskCache
from nestflow.cache.redis import RedisCache
from nestflow.cache.store import Cache, CacheEntry, CacheMiss
from nestflow.errors import CacheError, CacheStoreError, CacheWarning

if TYPE_CHECKING:
    from conftest import RedisServer


def sig(i: int) -> str:
    return hashlib.sha256(repr(i).encode()).hexdigest()


def value(i: int) -> object:
    # Every eighth value is big enough to be a file; the rest are inline rows.
    return bytes([i % 251]) * (INLINE_LIMIT + i) if i % 8 == 0 else {"i": i, "data": [i] * 20}


WRITER = """
import hashlib, sys
sys.path.insert(0, sys.argv[2])
from test_store_reliability import sig, value
from nestflow.cache.disk import DiskCache
cache = DiskCache(sys.argv[1])
for i in range(1_000_000):
    cache.store(sig(i), "p > n", ("out",), value(i))
    if i % 40 == 39:
        cache.flush()
        print(i + 1, flush=True)
"""


def test_a_writer_killed_mid_write_leaves_only_complete_entries(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    flushed = 0
    for line in writer.stdout:
        flushed = int(line)
        if flushed >= 800:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    writer.stdout.close()
    numbers = {sig(i): i for i in range(flushed + 2000)}
    with DiskCache(tmp_path) as fresh:
        found = fresh.lookup(list(numbers))
        assert len(found) >= flushed  # everything flushed before the kill, perhaps a bit more
        for signature, entry in found.items():
            assert fresh.load(entry) == value(numbers[signature])


def use_while_down(cache: Cache, entry: CacheEntry) -> list[object]:
    """Every kind of operation, against a server that is not there."""
    results: list[object] = [cache.lookup([sig(2)]), cache.store(sig(2), "p > n", ("out",), 2)]
    cache.flush()
    try:
        cache.load(entry)
    except CacheMiss:
        results.append("miss")
    return [*results, cache.stats()]


def test_a_stopped_redis_turns_into_misses_with_one_warning(redis_server: RedisServer) -> None:
    with RedisCache(redis_server.url) as cache:
        cache.retry_interval = 0.0  # try the server on every call, so the restart shows at once
        cache.store(sig(1), "p > n", ("out",), "kept")
        cache.flush()
        entry = cache.lookup([sig(1)])[sig(1)]
        redis_server.stop()
        with pytest.warns(CacheWarning, match=r"RedisCache could not .*127\.0\.0\.1") as caught:
            results = use_while_down(cache, entry)
        assert results == [{}, True, "miss", {"entries": 0, "bytes": 0}]
        assert len(caught) == 1
        redis_server.start()  # same port, empty: the server kept nothing
        assert cache.lookup([sig(1), sig(2)]) == {}
        cache.store(sig(3), "p > n", ("out",), "after the restart")
        cache.flush()
        assert cache.load(cache.lookup([sig(3)])[sig(3)]) == "after the restart"


def test_a_new_outage_after_recovery_warns_again(redis_server: RedisServer) -> None:
    with RedisCache(redis_server.url) as cache:
        cache.retry_interval = 0.0
        for _ in range(2):
            redis_server.stop()
            with pytest.warns(CacheWarning) as caught:
                cache.lookup([sig(1)]), cache.lookup([sig(2)])
            assert len(caught) == 1
            redis_server.start()
            assert cache.lookup([sig(1)]) == {}


def test_a_stopped_redis_raises_when_strict(redis_server: RedisServer) -> None:
    with RedisCache(redis_server.url, strict=True) as cache:
        cache.store(sig(1), "p > n", ("out",), 1)
        cache.flush()
        redis_server.stop()
        with pytest.raises(CacheStoreError, match=r"127\.0\.0\.1.*Fix: start redis-server"):
            cache.lookup([sig(2)])
        redis_server.start()
        assert cache.lookup([sig(2)]) == {}


# --- a run whose redis-server stops midway -----------------------------------------------------


def _pipeline(cache: Any, stop: Any) -> Any:
    from nestflow import Pipeline, node

    @node(output_name="doubled")
    def double(x: int) -> int:
        return x * 2

    @node(output_name="shown")
    def show(doubled: int) -> str:
        if doubled == 4:
            stop()  # the server goes away in the middle of the map
        return f"<{doubled}>"

    return Pipeline([double, show], name="outage", cache=cache)


def test_a_run_keeps_its_results_when_redis_stops_midway(redis_server: RedisServer) -> None:
    with RedisCache(redis_server.url) as cache:
        cache.retry_interval = 0.0
        pipeline = _pipeline(cache, redis_server.stop)
        with pytest.warns(CacheWarning):
            result = pipeline.map(x=[1, 2, 3, 4], map_over="x")
        assert result == {"doubled": [2, 4, 6, 8], "shown": ["<2>", "<4>", "<6>", "<8>"]}
        redis_server.start()
        again = _pipeline(cache, lambda: None).map(x=[1, 2, 3, 4], map_over="x")
        assert again == result, "nothing stored is wrong after the outage"


def test_a_strict_cache_fails_the_run_with_a_cache_error_when_redis_stops(
    redis_server: RedisServer,
) -> None:
    with RedisCache(redis_server.url, strict=True) as cache:
        pipeline = _pipeline(cache, redis_server.stop)
        with pytest.raises(CacheError, match=r"127\.0\.0\.1"):
            pipeline.run(x=2)
        redis_server.start()
