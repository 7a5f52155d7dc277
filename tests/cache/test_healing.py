"""A cache that heals and never lies: stores cleared elsewhere, damaged databases, read-only
folders, and values a Redis server evicted.

Two cache objects on one folder stand in for two processes; where it matters, a real
subprocess does the clearing. Tests named ``..._through_the_runtime`` call neither
``refresh()`` nor ``end_run()`` themselves: they check that the runtime does, once per run.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from nestflow import CacheStoreError, DiskCache, Pipeline, RedisCache, node
from nestflow.cache.disk import INLINE_LIMIT
from nestflow.cache.sqlite import SqliteDatabase
from nestflow.errors import CacheWarning

if TYPE_CHECKING:
    from conftest import RedisServer

CALLS: list[int] = []
NOBODY = 65534  # an effective user that is not root, for the read-only folder tests run as root


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


@node(output_name="doubled")
def double(x: int) -> int:
    CALLS.append(x)
    return x * 2


@node(output_name="padded")
def pad(x: int) -> bytes:
    CALLS.append(x)
    return bytes(2000) + x.to_bytes(4, "big")


def sig(i: object) -> str:
    import hashlib

    return hashlib.sha256(repr(i).encode()).hexdigest()


@contextmanager
def recorded() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def cache_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]


# --- a store cleared elsewhere -----------------------------------------------------------------

CLEAR = "import sys; from nestflow import DiskCache; DiskCache(sys.argv[1]).clear()"


def clear_in_another_process(path: Path) -> None:
    subprocess.run([sys.executable, "-c", CLEAR, str(path)], check=True, timeout=60)


def test_a_disk_cache_cleared_by_another_process_misses_and_stores_again(tmp_path: Path) -> None:
    with DiskCache(tmp_path) as cache:
        cache.refresh()
        cache.store(sig(1), "p > n", ("out",), "small")
        cache.flush()
        assert cache.read_values([sig(1)]) == {sig(1): "small"}  # held in the memory front
        clear_in_another_process(tmp_path)
        cache.refresh()
        assert cache.lookup([sig(1)]) == {}
        cache.store(sig(1), "p > n", ("out",), "again")
        cache.flush()
    with DiskCache(tmp_path) as other:
        assert other.read_values([sig(1)]) == {sig(1): "again"}


def test_a_run_after_a_clear_elsewhere_recomputes_and_stores_again(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)  # a long-lived process
    pipeline = Pipeline([double], name="healing", cache=cache)
    for _ in range(2):
        cache.refresh()
        assert pipeline.run(x=3, output_name="doubled") == 6
    assert CALLS == [3]
    DiskCache(tmp_path).clear()  # another process
    cache.refresh()
    assert pipeline.run(x=3).report.cache_misses == 1
    assert CALLS == [3, 3]
    with DiskCache(tmp_path) as other:
        assert other.stats()["entries"] == 1, "the value was not stored again"
    cache.close()


def test_a_clear_by_another_process_is_seen_through_the_runtime(tmp_path: Path) -> None:
    # Needs the runtime to call cache.refresh() once per run.
    cache = DiskCache(tmp_path)
    pipeline = Pipeline([double], name="healing", cache=cache)
    pipeline.run(x=3)
    pipeline.run(x=3)
    clear_in_another_process(tmp_path)
    pipeline.run(x=3)
    assert CALLS == [3, 3]
    with DiskCache(tmp_path) as other:
        assert other.stats()["entries"] == 1, "the value was not stored again"
    cache.close()


def test_a_deleted_cache_folder_is_made_again_after_refresh(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    with DiskCache(folder) as cache:
        cache.refresh()
        cache.store(sig(1), "p > n", ("out",), 1)
        cache.flush()
        shutil.rmtree(folder)
        cache.refresh()
        assert cache.lookup([sig(1)]) == {}
        cache.store(sig(2), "p > n", ("out",), 2)
        cache.flush()
        assert (folder / "cache.sqlite3").exists(), "written into the deleted database"
    with DiskCache(folder) as other:
        assert other.read_values([sig(1), sig(2)]) == {sig(2): 2}


def test_refresh_reads_one_small_file_and_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DiskCache(tmp_path) as cache:
        cache.refresh()
        cache.store(sig(1), "p > n", ("out",), 1)
        cache.flush()
        opened: list[str] = []
        connections: list[int] = []
        real_open, real_connection = os.open, SqliteDatabase.connection

        def counting_open(path: Any, *args: Any, **kwargs: Any) -> int:
            opened.append(os.fspath(path))
            return real_open(path, *args, **kwargs)

        def counting_connection(self: SqliteDatabase) -> Any:
            connections.append(1)
            return real_connection(self)

        monkeypatch.setattr(os, "open", counting_open)
        monkeypatch.setattr(SqliteDatabase, "connection", counting_connection)
        cache.refresh()
        monkeypatch.undo()
        assert opened == [str(tmp_path / "generation")]
        assert connections == []
        assert cache.lookup([sig(1)]).keys() == {sig(1)}


def test_an_unusable_cache_warns_once_however_many_runs_refresh_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = DiskCache(blocker / "cache")
    cache.retry_interval = 0.0  # every run tries the store again
    with recorded() as caught:
        for _ in range(3):
            cache.refresh()
            assert cache.lookup([sig(1)]) == {}
    assert len(cache_warnings(caught)) == 1, "one warning per failure episode, not per run"


def test_a_redis_cache_sees_flushall_after_refresh(
    redis_db: str, redis_session_server: RedisServer
) -> None:
    with RedisCache(redis_db, prefix="flushed") as cache:
        cache.refresh()
        cache.store(sig(1), "p > n", ("out",), "small")
        cache.flush()
        assert cache.read_values([sig(1)]) == {sig(1): "small"}  # held in the memory front
        redis_session_server.flush()  # FLUSHALL, from another client
        cache.refresh()
        assert cache.lookup([sig(1)]) == {}
        cache.store(sig(1), "p > n", ("out",), "again")
        cache.flush()
    with RedisCache(redis_db, prefix="flushed") as other:
        assert other.read_values([sig(1)]) == {sig(1): "again"}


# --- a damaged database ------------------------------------------------------------------------

DAMAGE = ["bad header", "garbage", "truncated"]


def damage(database: Path, how: str) -> bytes:
    """Damage ``database`` in place (no connection open); returns the damaged bytes."""
    data = database.read_bytes()
    assert len(data) > 3 * 4096, "too small to damage past its first page"
    if how == "bad header":
        data = b"this is no SQLite database file" + data[31:]
    elif how == "garbage":  # every page after the first (which holds the schema)
        data = data[:4096] + random.Random(7).randbytes(len(data) - 4096)
    else:
        data = data[: len(data) // 2]
    database.write_bytes(data)
    return data


def fill(folder: Path, count: int = 300) -> None:
    with DiskCache(folder) as cache:
        for i in range(count):
            cache.store(sig(i), "p > n", ("out",), {"i": i, "pad": "x" * 300})


def moved_aside(folder: Path) -> Path:
    (moved,) = folder.glob("cache.sqlite3.corrupt-*")
    return moved


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_database_is_moved_aside_with_one_warning(tmp_path: Path, how: str) -> None:
    fill(tmp_path)
    damaged = damage(tmp_path / "cache.sqlite3", how)
    with recorded() as caught, DiskCache(tmp_path) as cache:
        assert cache.lookup([sig(i) for i in range(300)]) == {}
        cache.store(sig(1), "p > n", ("out",), "after")
        cache.flush()
    moved = moved_aside(tmp_path)
    assert moved.read_bytes() == damaged, "the damaged file is kept as it was"
    (message,) = cache_warnings(caught)
    assert f"moved aside to '{moved}'" in message
    assert "damaged" in message
    assert "Expected a valid SQLite database" in message
    with DiskCache(tmp_path) as again:
        assert again.read_values([sig(1)]) == {sig(1): "after"}


@pytest.mark.parametrize("how", DAMAGE)
def test_runs_cache_again_after_the_database_was_damaged(tmp_path: Path, how: str) -> None:
    items = list(range(200))
    with DiskCache(tmp_path) as first:  # an earlier process
        Pipeline([double], name="healing", cache=first).map(x=items, map_over="x")
    damage(tmp_path / "cache.sqlite3", how)
    CALLS.clear()
    cache = DiskCache(tmp_path)
    pipeline = Pipeline([double], name="healing", cache=cache)
    with recorded() as caught:
        assert pipeline.map(x=items, map_over="x")["doubled"] == [x * 2 for x in items]
        assert pipeline.map(x=items, map_over="x").report.cache_hits == len(items)
    computed = list(CALLS)
    assert computed == items, "computed once after the damage, then served from the cache"
    assert len(cache_warnings(caught)) == 1
    moved_aside(tmp_path)
    cache.close()


def test_a_write_that_meets_the_damage_is_retried_on_the_fresh_database(tmp_path: Path) -> None:
    fill(tmp_path)
    damage(tmp_path / "cache.sqlite3", "garbage")  # the schema page is intact: opening works
    with recorded() as caught, DiskCache(tmp_path) as cache:
        cache.store(sig("late"), "p > n", ("out",), "stored")
        cache.flush()  # the first thing it does: the write meets the damage
    assert len(cache_warnings(caught)) == 1
    moved_aside(tmp_path)
    with DiskCache(tmp_path) as again:
        assert again.read_values([sig("late")]) == {sig("late"): "stored"}


def test_a_long_lived_cache_follows_a_repair_made_by_another_process(tmp_path: Path) -> None:
    fill(tmp_path)
    with DiskCache(tmp_path) as old:
        old.refresh()
        assert len(old.lookup([sig(i) for i in range(300)])) == 300  # connected, front filled
        damage(tmp_path / "cache.sqlite3", "bad header")
        # Another process: in this one, a second DiskCache on the folder shares old's database.
        found = subprocess.run(
            [sys.executable, "-c", REPAIRER, str(tmp_path), sig(1)],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout.split()  # fmt: skip
        assert found == ["0", "1"], "the other process found nothing and moved the file aside"
        old.refresh()  # the generation changed: forget, and reconnect to the fresh file
        assert old.lookup([sig(i) for i in range(300)]) == {}
        old.store(sig("new"), "p > n", ("out",), "seen by others")
        old.flush()
    with DiskCache(tmp_path) as other:
        assert other.read_values([sig("new")]) == {sig("new"): "seen by others"}


REPAIRER = """
import sys, warnings
from nestflow.cache.disk import DiskCache
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with DiskCache(sys.argv[1]) as cache:
        found = cache.lookup([sys.argv[2]])
print(len(found), sum("moved aside" in str(w.message) for w in caught))
"""

OPENER = """
import sys, warnings
from nestflow.cache.disk import DiskCache
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    cache = DiskCache(sys.argv[1])
    cache.lookup(["0" * 64])
    cache.store(sys.argv[2] * 64, "p > n", ("out",), sys.argv[2])
    cache.close()
print(sum("moved aside" in str(w.message) for w in caught))
"""


def test_processes_meeting_one_damaged_database_at_once_move_it_aside_once(
    tmp_path: Path,
) -> None:
    fill(tmp_path)
    damage(tmp_path / "cache.sqlite3", "bad header")
    names = "abcd"
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(tmp_path), name], stdout=subprocess.PIPE, text=True
        )
        for name in names
    ]
    told = [int(opener.communicate(timeout=60)[0]) for opener in openers]
    assert [opener.returncode for opener in openers] == [0] * len(names)
    assert sum(told) == 1
    moved_aside(tmp_path)
    with DiskCache(tmp_path) as cache:
        assert cache.read_values([n * 64 for n in names]) == {n * 64: n for n in names}


# --- a read-only folder ------------------------------------------------------------------------


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A cache folder in a directory any user may enter (pytest's tmp_path is its owner's)."""
    base = Path(tempfile.mkdtemp(prefix="nestflow-healing-"))
    base.chmod(0o755)
    yield base / "cache"
    for root, _, _ in os.walk(base):
        os.chmod(root, 0o755)
    shutil.rmtree(base)


class ReadOnlyFolder:
    """Make ``folder`` truly read-only for this process: folders 0o555 and files 0o444, and,
    when running as root (whom permissions do not stop), an effective user that is not root.
    The kernel enforces it: no test here can pass on a folder it could still write."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.modes: dict[Path, int] = {}
        self.as_root = os.geteuid() == 0

    def __enter__(self) -> ReadOnlyFolder:
        self.apply()
        return self

    def __exit__(self, *exc: object) -> None:
        self.lift()

    def apply(self) -> None:
        for path in [self.folder, *self.folder.rglob("*")]:
            self.modes.setdefault(path, path.stat().st_mode)
            path.chmod(0o555 if path.is_dir() else 0o444)
        if self.as_root:
            os.seteuid(NOBODY)
        assert not os.access(self.folder, os.W_OK, effective_ids=True), "the folder is writable"

    def lift(self) -> None:
        if self.as_root:
            os.seteuid(0)
        for path, mode in self.modes.items():
            if path.exists():
                path.chmod(mode)

    @contextmanager
    def lifted(self) -> Iterator[None]:
        """Writable for a moment: another process, allowed to write, takes a turn."""
        self.lift()
        try:
            yield
        finally:
            self.apply()


def test_a_read_only_folder_serves_hits_and_warns_once_that_nothing_is_stored(
    shared_folder: Path,
) -> None:
    big = b"b" * (INLINE_LIMIT + 1)
    with DiskCache(shared_folder) as cache:
        cache.store(sig("small"), "p > n", ("out",), "small")
        cache.store(sig("big"), "p > n", ("out",), big)
    before = sorted(path.name for path in shared_folder.iterdir())
    with ReadOnlyFolder(shared_folder), recorded() as caught, DiskCache(shared_folder) as cache:
        for _ in range(2):
            cache.refresh()
            found = cache.read_values([sig("small"), sig("big"), sig("absent")])
            assert found == {sig("small"): "small", sig("big"): big}
            assert cache.store(sig("new"), "p > n", ("out",), "new") is True
            cache.flush()
            assert cache.lookup([sig("new")]) == {}, "claimed a value it could not store"
    assert sorted(path.name for path in shared_folder.iterdir()) == before
    (message,) = cache_warnings(caught)
    assert f"DiskCache at '{shared_folder}' is read-only for this process" in message
    assert "the folder is not writable" in message
    assert "nothing new will be stored" in message
    assert "Fix: make the folder and its files writable" in message


def test_runs_on_a_read_only_folder_hit_what_is_there_and_recompute_the_rest(
    shared_folder: Path,
) -> None:
    with DiskCache(shared_folder) as writer:
        Pipeline([double], name="healing", cache=writer).run(x=1)
        Pipeline([double], name="healing", cache=DiskCache(shared_folder / "other")).run(x=5)
    CALLS.clear()
    with ReadOnlyFolder(shared_folder), recorded() as caught, DiskCache(shared_folder) as cache:
        pipeline = Pipeline([double], name="healing", cache=cache)
        for _ in range(2):
            cache.refresh()
            assert pipeline.run(x=1, output_name="doubled") == 2
            assert pipeline.run(x=5, output_name="doubled") == 10
    assert CALLS == [5, 5], "1 is a hit both times; 5 is neither stored nor remembered"
    assert len(cache_warnings(caught)) == 1


WRITER = """
import sys
from nestflow.cache.disk import DiskCache
cache = DiskCache(sys.argv[1])
for line in sys.stdin:  # each line: signature and value; the database stays open meanwhile
    signature, value = line.split()
    cache.store(signature, "p > n", ("out",), value)
    cache.flush()
    print("stored", flush=True)
"""


def test_a_read_only_reader_sees_what_a_writer_stores_meanwhile(shared_folder: Path) -> None:
    # While a writer has the database open its -shm index exists, and the reader shares it
    # (mode=ro) instead of reading a frozen copy. The writer is another process: in this
    # one, every cache on the folder shares one database (``SqliteDatabase.of``).
    command = [sys.executable, "-c", WRITER, str(shared_folder)]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as writer:
        assert writer.stdin is not None
        assert writer.stdout is not None

        def store(signature: str, value: str) -> None:
            writer.stdin.write(f"{signature} {value}\n")
            writer.stdin.flush()
            assert writer.stdout.readline() == "stored\n"

        store(sig(1), "first")
        with ReadOnlyFolder(shared_folder), recorded() as caught:
            reader = DiskCache(shared_folder)
            assert reader.read_values([sig(1)]) == {sig(1): "first"}
            store(sig(2), "second")  # its files are open already
            reader.refresh()
            assert reader.read_values([sig(2)]) == {sig(2): "second"}
            reader.close()
        writer.stdin.close()
        assert writer.wait(timeout=60) == 0
    assert len(cache_warnings(caught)) == 1


FILLER = """
import hashlib, sys
from nestflow.cache.disk import DiskCache
with DiskCache(sys.argv[1]) as cache:
    for i in range(int(sys.argv[2]), int(sys.argv[3])):
        signature = hashlib.sha256(repr(i).encode()).hexdigest()  # as sig(i)
        cache.store(signature, "p > n", ("out",), {"i": i, "pad": "x" * 300})
"""


def test_a_read_only_reader_sees_from_its_next_run_what_a_later_writer_stored(
    shared_folder: Path,
) -> None:
    # No writer had it open, so the reader froze the file (immutable): it must not keep
    # reading that frozen copy once a writer (another process) has been at work.
    fill(shared_folder, 3)
    with ReadOnlyFolder(shared_folder) as folder, recorded() as caught:
        reader = DiskCache(shared_folder)
        reader.refresh()
        assert len(reader.read_values([sig(i) for i in range(3)])) == 3
        with folder.lifted():
            command = [sys.executable, "-c", FILLER, str(shared_folder), "3", "300"]
            subprocess.run(command, check=True, timeout=60)
        reader.refresh()
        found = reader.read_values([sig(i) for i in range(300)])
        assert found == {sig(i): {"i": i, "pad": "x" * 300} for i in range(300)}
        reader.close()
    assert len(cache_warnings(caught)) == 1


def test_write_access_given_back_stores_again_from_the_next_run(shared_folder: Path) -> None:
    fill(shared_folder, 3)
    with recorded() as caught:
        with ReadOnlyFolder(shared_folder):
            cache = DiskCache(shared_folder)
            cache.refresh()
            assert len(cache.lookup([sig(i) for i in range(3)])) == 3
        cache.refresh()  # the next run: the folder is writable again
        cache.store(sig("new"), "p > n", ("out",), "new")
        cache.flush()
        cache.close()
    assert len(cache_warnings(caught)) == 1
    with DiskCache(shared_folder) as other:
        assert other.read_values([sig("new")]) == {sig("new"): "new"}


def test_a_read_only_folder_without_a_database_misses_with_one_warning(
    shared_folder: Path,
) -> None:
    shared_folder.mkdir()
    with ReadOnlyFolder(shared_folder), recorded() as caught, DiskCache(shared_folder) as cache:
        cache.refresh()
        assert cache.lookup([sig(1)]) == {}
        cache.store(sig(1), "p > n", ("out",), 1)
        cache.flush()
        assert cache.read_values([sig(1)]) == {}
    (message,) = cache_warnings(caught)
    assert "holds no database yet, so every lookup misses" in message
    assert list(shared_folder.iterdir()) == []


def test_a_strict_cache_on_a_read_only_folder_raises_when_it_would_store(
    shared_folder: Path,
) -> None:
    fill(shared_folder, 3)
    with ReadOnlyFolder(shared_folder), recorded(), DiskCache(shared_folder, strict=True) as cache:
        assert len(cache.lookup([sig(i) for i in range(3)])) == 3
        cache.store(sig("new"), "p > n", ("out",), "new")
        with pytest.raises(CacheStoreError, match=r"could not store values: it is read-only"):
            cache.flush()


def test_a_damaged_database_in_a_read_only_folder_is_reported_not_moved(
    shared_folder: Path,
) -> None:
    fill(shared_folder)
    damage(shared_folder / "cache.sqlite3", "bad header")
    with ReadOnlyFolder(shared_folder), recorded() as caught, DiskCache(shared_folder) as cache:
        assert cache.lookup([sig(1)]) == {}
    messages = cache_warnings(caught)
    assert any("cannot set it aside: the folder is read-only" in m for m in messages), messages
    assert list(shared_folder.glob("*corrupt*")) == []


# --- values evicted by Redis -------------------------------------------------------------------


@pytest.fixture
def full_redis(redis_server: RedisServer) -> str:
    """A private redis-server that evicts least recently used keys past 3 MB."""
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.config_set("maxmemory", "3mb")
        client.config_set("maxmemory-policy", "allkeys-lru")
    return redis_server.url


def padded(x: int) -> bytes:
    return bytes(2000) + x.to_bytes(4, "big")


def test_values_evicted_by_redis_give_one_summary_per_run(full_redis: str) -> None:
    values = {sig(i): padded(i) for i in range(3000)}  # about twice what the server keeps
    with RedisCache(full_redis) as writer:
        for signature, value in values.items():
            writer.store(signature, "p > padded", ("padded",), value)
    with RedisCache(full_redis) as cache, recorded() as caught:
        cache.refresh()
        found = cache.lookup(list(values))
        loaded = cache.load_many(list(found.values()))
        assert all(loaded[signature] == values[signature] for signature in loaded)
        lost = len(found) - len(loaded)
        assert lost > 1, "no value was evicted under a kept entry: lower maxmemory"
        assert cache_warnings(caught) == [], "one summary, at the end of the run"
        cache.end_run()
        cache.end_run()  # nothing new since: nothing more to say
    (message,) = cache_warnings(caught)
    assert message.startswith(f"RedisCache({full_redis}): {lost} cached values were gone")
    assert f"'p > padded' ({lost})" in message
    assert "Fix: give the server more memory (maxmemory)" in message


def test_after_evictions_refresh_forgets_what_the_server_dropped(full_redis: str) -> None:
    import redis

    signatures = [sig(i) for i in range(3000)]
    with RedisCache(full_redis) as cache:
        cache.refresh()
        for i, signature in enumerate(signatures):
            cache.store(signature, "p > padded", ("padded",), padded(i))
        cache.flush()  # every entry is now in the memory front; the server evicted many
        cache.refresh()
        with redis.Redis.from_url(full_redis) as client:
            entries = client.mget([f"nestflow:entry:{signature}" for signature in signatures])
        kept = {signature for signature, e in zip(signatures, entries, strict=True) if e}
        assert len(kept) < len(signatures), "nothing was evicted: lower maxmemory"
        # Nothing writes from here on, and a full server evicts on every command: keys only go.
        assert cache.lookup(signatures).keys() <= kept


def test_a_map_over_an_evicting_redis_warns_once_with_correct_values(full_redis: str) -> None:
    items = list(range(2500))
    Pipeline([pad], name="evicted", cache=RedisCache(full_redis)).map(x=items, map_over="x")
    cache = RedisCache(full_redis)
    pipeline = Pipeline([pad], name="evicted", cache=cache)
    with recorded() as caught:
        cache.refresh()
        result = pipeline.map(x=items, map_over="x")
        cache.end_run()
    assert result["padded"] == [padded(x) for x in items]
    messages = cache_warnings(caught)
    assert len(messages) == 1, messages
    assert "'evicted > pad'" in messages[0]
    cache.close()


def test_an_evicting_redis_warns_once_per_run_through_the_runtime(full_redis: str) -> None:
    # Needs the runtime to call cache.refresh() and cache.end_run() once per run.
    items = list(range(2500))
    cache = RedisCache(full_redis)
    pipeline = Pipeline([pad], name="evicted", cache=cache)
    pipeline.map(x=items, map_over="x")
    for _ in range(2):
        with recorded() as caught:
            result = pipeline.map(x=items, map_over="x")
        assert result["padded"] == [padded(x) for x in items]
        messages = cache_warnings(caught)
        assert len(messages) == 1, messages
        assert "gone from the store" in messages[0]
    with recorded():
        cache.close()


def test_a_full_redis_that_refuses_writes_says_so(redis_server: RedisServer) -> None:
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.config_set("maxmemory", "1mb")
        client.config_set("maxmemory-policy", "noeviction")
    with recorded() as caught, RedisCache(redis_server.url) as cache:
        for i in range(40):
            cache.store(sig(i), "p > n", ("out",), bytes(50_000) + bytes([i]))
        cache.flush()
    (message,) = cache_warnings(caught)
    assert "the server is full" in message
    assert "Fix: raise maxmemory, or set maxmemory-policy to allkeys-lru" in message
