"""StoreContract: the suite every cache store (a MetaStore and BlobStore pair) must pass.

Subclass it in a test module with a ``Test`` name and implement ``make_cache``::

    class TestMyStore(StoreContract):
        def make_cache(self):
            return Cache(MyMetaStore(...), MyBlobStore(...))

Each call of ``make_cache`` must return a cache over the *same*, initially empty, storage for
the duration of one test (a fresh namespace per test is fine). The suite needs no pytest
fixtures; caches it opens are closed after each test. Override ``corrupt_blob`` to damage a
value the way your storage can be damaged (the default rewrites it truncated).

A store whose MetaStore offers ``generation()`` must change it on ``clear()``; one that does
not keeps the memory front of every cache object until that object clears it itself.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any

from nestflow.cache.store import Cache, CacheEntry, CacheMiss, checksum_of
from nestflow.errors import CacheWarning

__all__ = ["StoreContract"]

# A value bigger than any "small value" threshold a store may have (DiskCache: 64 KiB).
BIG = bytes(range(256)) * 512
VALUES: dict[str, Any] = {
    "none": None,
    "number": 42,
    "pair": (1, "two"),
    "nested": {"a": [1.5, {"b": (None, True)}], "c": frozenset({3})},
    "big": BIG,
}


def _sig(name: str) -> str:
    """A 64-hex signature derived from a readable name."""
    return hashlib.sha256(name.encode()).hexdigest()


def load_in_child(cache: Cache, signatures: list[str]) -> dict[str, Any]:
    """Run in another process: look ``signatures`` up and load them (module level: picklable)."""
    with cache:
        found = cache.lookup(signatures)
        return {signature: cache.load(entry) for signature, entry in found.items()}


@contextmanager
def _recorded() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def _cache_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]


class StoreContract:
    """Round trips, presence, pending writes, clear, refresh, stats, corruption, pickling."""

    def make_cache(self) -> Cache:
        """A cache over the storage under test (the same storage on every call in one test)."""
        raise NotImplementedError

    def corrupt_blob(self, cache: Cache, entry: CacheEntry) -> None:
        """Damage the stored value of ``entry``; by default, rewrite it cut in half."""
        data = cache.blobs.read(entry.blob_key)
        assert data is not None, "the value to corrupt was not stored"
        cache.blobs.write_many([(entry.blob_key, data[: len(data) // 2])])

    # --- helpers ---------------------------------------------------------------------------

    def setup_method(self, method: Any = None) -> None:
        self._opened: list[Cache] = []

    def teardown_method(self, method: Any = None) -> None:
        for cache in self._opened:
            cache.close()

    def open(self) -> Cache:
        """``make_cache()``, closed when the test ends."""
        cache = self.make_cache()
        self._opened.append(cache)
        return cache

    def _filled(self) -> tuple[Cache, dict[str, str]]:
        cache = self.open()
        sigs = {name: _sig(name) for name in VALUES}
        for name, value in VALUES.items():
            assert cache.store(sigs[name], f"p > {name}", (name,), value) is True
        cache.flush()
        return cache, sigs

    # --- round trips -----------------------------------------------------------------------

    def test_flushed_values_round_trip(self) -> None:
        cache, sigs = self._filled()
        found = cache.lookup(list(sigs.values()))
        assert set(found) == set(sigs.values())
        for name, value in VALUES.items():
            assert cache.load(found[sigs[name]]) == value

    def test_a_fresh_cache_object_reads_flushed_values(self) -> None:
        _, sigs = self._filled()
        again = self.open()
        found = again.lookup(list(sigs.values()))
        assert {name: again.load(found[sigs[name]]) for name in VALUES} == VALUES

    def test_read_values_reads_present_values_and_leaves_out_absent_ones(self) -> None:
        _, sigs = self._filled()
        asked = [*sigs.values(), _sig("absent")]
        fresh = self.open()  # knows nothing in memory: reads entries and values together
        assert fresh.read_values(asked) == {sigs[name]: value for name, value in VALUES.items()}
        cache = self.open()
        cache.lookup([sigs["number"]])  # one entry known in memory, the rest not
        cache.store(_sig("pending"), "p > pending", ("pending",), [7])  # one not flushed
        found = cache.read_values([*asked, _sig("pending")])
        assert found == {**{sigs[n]: v for n, v in VALUES.items()}, _sig("pending"): [7]}

    def test_read_values_leaves_out_a_damaged_value_with_one_warning(self) -> None:
        cache, sigs = self._filled()
        self.corrupt_blob(cache, cache.lookup([sigs["big"]])[sigs["big"]])
        reader = self.open()
        with _recorded() as caught:
            found = reader.read_values(list(sigs.values()))
            reader.end_run()
        assert found == {sigs[name]: VALUES[name] for name in VALUES if name != "big"}
        messages = _cache_warnings(caught)
        assert len(messages) == 1, messages
        assert "p > big" in messages[0]
        assert self.open().lookup([sigs["big"]]) == {}  # deleted: the next run stores it again

    def test_multi_output_values_keep_their_output_names(self) -> None:
        cache = self.open()
        cache.store(_sig("multi"), "p > split", ("left", "right"), (1, [2]))
        cache.flush()
        entry = cache.lookup([_sig("multi")])[_sig("multi")]
        assert entry.outputs == ("left", "right")
        assert cache.load(entry) == (1, [2])

    def test_pending_values_are_visible_before_flush(self) -> None:
        cache = self.open()
        cache.store(_sig("pending"), "p > n", ("out",), None)
        entry = cache.lookup([_sig("pending"), _sig("absent")])
        assert list(entry) == [_sig("pending")]
        assert cache.load(entry[_sig("pending")]) is None
        assert cache.contains(_sig("pending"))

    def test_storing_a_signature_again_keeps_the_last_value(self) -> None:
        cache = self.open()
        cache.store(_sig("again"), "p > n", ("out",), "first")
        cache.flush()
        cache.store(_sig("again"), "p > n", ("out",), "second")
        cache.flush()
        entry = self.open().lookup([_sig("again")])[_sig("again")]
        assert self.open().load(entry) == "second"

    def test_many_values_flush_in_batches(self) -> None:
        cache = self.open()
        sigs = [_sig(f"many-{i}") for i in range(2500)]
        for i, signature in enumerate(sigs):
            cache.store(signature, "p > many", ("out",), i)
        cache.flush()
        found = self.open().lookup(sigs)
        assert len(found) == len(sigs)
        assert self.open().load(found[sigs[-1]]) == 2499

    # --- presence and management -----------------------------------------------------------

    def test_missing_signatures_are_absent(self) -> None:
        cache = self.open()
        assert cache.lookup([_sig("nothing"), _sig("nothing either")]) == {}
        assert not cache.contains(_sig("nothing"))
        assert cache.inspect(_sig("nothing")) is None

    def test_inspect_describes_the_entry(self) -> None:
        cache, sigs = self._filled()
        entry = cache.inspect(sigs["pair"])
        assert entry is not None
        assert (entry.signature, entry.node, entry.outputs) == (sigs["pair"], "p > pair", ("pair",))
        assert entry.serializer == "pickle"
        assert entry.size == len(pickle.dumps((1, "two"), protocol=5))
        assert entry.checksum == checksum_of(pickle.dumps((1, "two"), protocol=5))
        assert entry.created > 0

    def test_stats_count_entries_and_bytes(self) -> None:
        cache, sigs = self._filled()
        entries = cache.lookup(list(sigs.values())).values()
        assert cache.stats() == {"entries": len(VALUES), "bytes": sum(e.size for e in entries)}

    def test_clear_removes_every_entry(self) -> None:
        cache, sigs = self._filled()
        cache.store(_sig("unflushed"), "p > n", ("out",), 1)
        cache.clear()
        assert cache.lookup([*sigs.values(), _sig("unflushed")]) == {}
        assert self.open().lookup(list(sigs.values())) == {}
        assert cache.stats() == {"entries": 0, "bytes": 0}

    def test_a_clear_through_another_cache_object_shows_after_refresh(self) -> None:
        cache, sigs = self._filled()
        cache.refresh()
        found = cache.lookup(list(sigs.values()))  # every entry known, small values held
        assert cache.load(found[sigs["number"]]) == 42
        self.open().clear()  # another process, as far as ``cache`` can tell
        if not hasattr(cache.meta, "generation"):
            return  # nothing tells this store's caches; each keeps its front
        cache.refresh()
        assert cache.lookup(list(sigs.values())) == {}
        cache.store(sigs["number"], "p > number", ("number",), 42)
        cache.flush()
        assert self.open().read_values([sigs["number"]]) == {sigs["number"]: 42}

    def test_refresh_keeps_the_memory_front_while_the_store_is_unchanged(self) -> None:
        cache, sigs = self._filled()
        cache.refresh()
        assert cache.lookup([sigs["pair"]]).keys() == {sigs["pair"]}
        cache.meta.delete(sigs["pair"])  # behind the cache's back: no generation change
        cache.refresh()
        assert cache.lookup([sigs["pair"]]).keys() == {sigs["pair"]}, "refresh re-asked"

    def test_label_and_cache_version_are_exposed(self) -> None:
        cache = self.open()
        assert isinstance(cache.label, str)
        assert cache.label
        assert cache.cache_version is None or isinstance(cache.cache_version, str)

    # --- damage ----------------------------------------------------------------------------

    def _assert_unusable(self, cache: Cache, signature: str) -> None:
        # One warning: at once, or, from a store that evicts, in the summary of the run.
        entry = cache.lookup([signature])[signature]
        with _recorded() as caught:
            try:
                cache.load(entry)
            except CacheMiss:
                pass
            else:
                raise AssertionError("a damaged value was returned instead of a CacheMiss")
            cache.end_run()
        messages = _cache_warnings(caught)
        assert len(messages) == 1, messages
        assert "p > big" in messages[0]
        assert cache.lookup([signature]) == {}
        assert self.open().lookup([signature]) == {}
        cache.store(signature, "p > big", ("big",), BIG)
        cache.flush()
        assert self.open().load(self.open().lookup([signature])[signature]) == BIG

    def test_a_corrupt_value_is_a_miss_with_one_warning(self) -> None:
        cache, sigs = self._filled()
        self.corrupt_blob(cache, cache.lookup([sigs["big"]])[sigs["big"]])
        self._assert_unusable(cache, sigs["big"])

    def test_a_missing_value_is_a_miss_with_one_warning(self) -> None:
        cache, sigs = self._filled()
        cache.blobs.delete(cache.lookup([sigs["big"]])[sigs["big"]].blob_key)
        self._assert_unusable(cache, sigs["big"])

    def test_an_undecodable_value_is_a_miss_with_one_warning(self) -> None:
        cache = self.open()
        garbage = b"\x80\x05not a pickle"
        entry = CacheEntry(
            _sig("garbage"), "garbage-key", "p > big", ("big",), len(garbage), "pickle",
            checksum_of(garbage), 1.0,
        )  # fmt: skip
        cache.blobs.write_many([(entry.blob_key, garbage)])
        cache.meta.put_many([entry])
        self._assert_unusable(cache, entry.signature)

    # --- values that cannot be pickled, and other processes --------------------------------

    def test_an_unpicklable_value_warns_and_is_not_stored(self) -> None:
        cache = self.open()
        with _recorded() as caught:
            stored = cache.store(_sig("lock"), "p > locker", ("lock",), threading.Lock())
        messages = _cache_warnings(caught)
        assert stored is False
        assert len(messages) == 1
        assert "p > locker" in messages[0]
        cache.flush()
        assert cache.lookup([_sig("lock")]) == {}

    def test_values_plain_pickle_refuses_fall_back_to_cloudpickle(self) -> None:
        cache = self.open()
        offset = 3
        cache.store(_sig("closure"), "p > f", ("f",), lambda x: x + offset)
        cache.flush()
        entry = self.open().lookup([_sig("closure")])[_sig("closure")]
        assert entry.serializer == "cloudpickle"
        assert self.open().load(entry)(1) == 4

    def test_a_pickled_cache_reads_the_same_values_in_another_process(self) -> None:
        cache, sigs = self._filled()
        cache.store(_sig("late"), "p > late", ("late",), "written before pickling")
        wanted = [*sigs.values(), _sig("late")]
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            loaded = pool.submit(load_in_child, cache, wanted).result(timeout=60)
        assert loaded == {
            **{sigs[n]: v for n, v in VALUES.items()},
            _sig("late"): "written before pickling",
        }
