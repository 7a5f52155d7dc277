"""Every DiskCache on one folder in a process shares one database: opened and prepared once."""

from __future__ import annotations

import gc
import pickle
import sqlite3
import threading
import weakref
from pathlib import Path

import cloudpickle

from nestflow import DiskCache, Pipeline, node
from nestflow.cache.sqlite import RECENT_KEPT, SqliteDatabase


@node(output_name="y")
def inc(x: int) -> int:
    return x + 1


def test_caches_on_one_folder_share_the_connection_of_a_thread(tmp_path: Path) -> None:
    first, second = DiskCache(tmp_path), DiskCache(str(tmp_path / "." / ""))
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


def test_closing_one_cache_leaves_the_others_working(tmp_path: Path) -> None:
    first, second = DiskCache(tmp_path), DiskCache(tmp_path)
    Pipeline([inc], name="p", cache=first).run(x=1)
    first.close()
    assert Pipeline([inc], name="p", cache=second).run(x=1).report.cache_hits == 1


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
