"""Every DiskCache on one folder in a process shares one database: opened and prepared once."""

from __future__ import annotations

import gc
import pickle
import sqlite3
import subprocess
import sys
import threading
import weakref
from pathlib import Path

import cloudpickle
import pytest

from nestflow import DiskCache, Pipeline, node
from nestflow.cache.sqlite import RECENT_KEPT, SqliteDatabase


@node(output_name="y")
def inc(x: int) -> int:
    return x + 1


def test_caches_on_one_folder_share_the_connection_of_a_thread(tmp_path: Path) -> None:
    first, second = DiskCache(tmp_path), DiskCache(f"{tmp_path}/./")
    assert first._database is second._database
    assert first._database.connection() is second._database.connection()
    assert DiskCache(tmp_path / "other")._database is not first._database


def test_a_new_cache_object_finds_what_another_stored_without_reopening(tmp_path: Path) -> None:
    first = DiskCache(tmp_path)
    Pipeline([inc], name="p", cache=first).run(x=1)
    opened = first._database.connection()
    again = Pipeline([inc], name="p", cache=DiskCache(tmp_path)).run(x=1)
    assert again.report.cache_hits == 1
    assert first._database.connection() is opened


def test_threads_still_get_their_own_connections(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    here = cache._database.connection()
    there: list[sqlite3.Connection] = []
    thread = threading.Thread(
        target=lambda: there.append(DiskCache(tmp_path)._database.connection())
    )
    thread.start()
    thread.join()
    assert there[0] is not here


def test_closing_one_cache_leaves_the_others_connections_open(tmp_path: Path) -> None:
    # Closing a connection another thread is querying can crash the interpreter: a cache
    # closing must not close the connections of the other caches on its folder.
    first, second = DiskCache(tmp_path), DiskCache(tmp_path)
    Pipeline([inc], name="p", cache=first).run(x=1)
    opened = first._database.connection()
    first.close()
    assert second._database.connection() is opened
    assert opened.execute("SELECT COUNT(*) FROM entries").fetchone() == (1,)
    assert Pipeline([inc], name="p", cache=second).run(x=1).report.cache_hits == 1
    second.close()  # the last one: now they close
    with pytest.raises(sqlite3.ProgrammingError):
        opened.execute("SELECT 1")
    assert Pipeline([inc], name="p", cache=first).run(x=1).report.cache_hits == 1, "reopened"


CLOSING = """
import sys, threading, time
from nestflow import DiskCache, Pipeline, node

@node(output_name="y")
def inc(x):
    return x + 1

failures, stop = [], threading.Event()

def run():
    cache = DiskCache(sys.argv[1], strict=True)
    pipeline = Pipeline([inc], name="p", cache=cache)
    index = 0
    while not stop.is_set():
        try:
            assert pipeline.run(x=index % 50)["y"] == index % 50 + 1
            cache.flush()
        except Exception as exc:
            failures.append(repr(exc))
        index += 1

worker = threading.Thread(target=run)
worker.start()
deadline = time.monotonic() + 2
while time.monotonic() < deadline:
    DiskCache(sys.argv[1]).close()
stop.set()
worker.join()
print(len(failures), failures[:1])
"""


def test_closing_caches_while_another_thread_runs_on_the_folder(tmp_path: Path) -> None:
    # In a process of its own: closing a connection in use can crash the interpreter.
    done = subprocess.run(
        [sys.executable, "-c", CLOSING, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "0 []"


def test_a_relative_folder_is_the_one_it_named_when_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    relative = DiskCache("c")
    monkeypatch.chdir(tmp_path / "b")
    absolute = DiskCache(tmp_path / "a" / "c")
    assert absolute.path == relative.path == tmp_path / "a" / "c"
    Pipeline([inc], name="p", cache=absolute).run(x=1)
    assert (tmp_path / "a" / "c" / "cache.sqlite3").exists()
    assert not (tmp_path / "b" / "c").exists()


def test_a_database_stays_open_for_the_next_cache_then_goes(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    opened = cache._database.connection()
    kept = weakref.ref(cache._database)
    del cache
    gc.collect()
    assert DiskCache(tmp_path)._database.connection() is opened, "a cache made per run reuses it"
    for index in range(RECENT_KEPT):  # other folders opened since
        DiskCache(tmp_path / str(index)).lookup(["0" * 64])
    gc.collect()
    assert kept() is None, "closed once no cache uses it and it is not among the latest"
    assert DiskCache(tmp_path).lookup(["0" * 64]) == {}, "a later cache opens it again"


def test_an_unpickled_cache_joins_the_database_of_its_folder(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        copy = pickle.loads(dumps(cache))
        assert copy._database is cache._database
        assert isinstance(copy._database, SqliteDatabase)
