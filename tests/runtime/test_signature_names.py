"""Signatures key each parameter by its own name (SPEC 8.1): rewiring a node's inputs
keeps its cache entries, and a default hashes exactly like the same value passed."""

from __future__ import annotations

from pathlib import Path

from nestflow import DiskCache, Pipeline, node


def _counted(calls: list[tuple[int, int]]) -> object:
    @node(output_name="y")
    def scaled(x: int, k: int = 3) -> int:
        calls.append((x, k))
        return x * k

    return scaled


def test_a_rewired_node_hits_the_entries_of_the_original(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    original = _counted(calls)
    cache = DiskCache(tmp_path)
    assert Pipeline([original], name="p", cache=cache).run(x=2)["y"] == 6
    rewired = original.with_inputs({"x": "a"})  # type: ignore[attr-defined]
    out = Pipeline([rewired], name="p", cache=cache).run(a=2)
    assert out["y"] == 6
    assert out.report.cache_hits == 1
    assert calls == [(2, 3)]


def test_a_default_hashes_like_the_same_value_passed(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    scaled = _counted(calls)
    cache = DiskCache(tmp_path)
    Pipeline([scaled], name="p", cache=cache).run(x=2)
    out = Pipeline([scaled], name="p", cache=cache).run(x=2, k=3)
    assert out.report.cache_hits == 1
    assert calls == [(2, 3)]
    other = Pipeline([scaled], name="p", cache=cache).run(x=2, k=4)
    assert other.report.cache_hits == 0, "a different value still misses"
    assert calls == [(2, 3), (2, 4)]


def test_swapped_wiring_does_not_collide(tmp_path: Path) -> None:
    """Keyed by parameter: feeding ``a`` into ``x`` and ``b`` into ``k`` differs from the
    reverse, even though the same two names are wired."""
    calls: list[tuple[int, int]] = []
    scaled = _counted(calls)
    cache = DiskCache(tmp_path)
    straight = scaled.with_inputs({"x": "a", "k": "b"})  # type: ignore[attr-defined]
    swapped = scaled.with_inputs({"x": "b", "k": "a"})  # type: ignore[attr-defined]
    assert Pipeline([straight], name="p", cache=cache).run(a=2, b=5)["y"] == 10
    out = Pipeline([swapped], name="p", cache=cache).run(a=2, b=5)
    assert out["y"] == 10
    assert out.report.cache_hits == 0
    assert calls == [(2, 5), (5, 2)]
