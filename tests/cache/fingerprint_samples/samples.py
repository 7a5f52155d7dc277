"""Values whose fingerprints must be the same in every process and under every hash seed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    """A small dataclass defined in an importable module."""

    x: float
    y: float
    tags: frozenset[str] = frozenset()


def scale(point: Point, factor: float) -> Point:
    """A function whose code fingerprint reaches the Point class."""
    return Point(point.x * factor, point.y * factor, point.tags)


def sample_values() -> dict[str, object]:
    """One value per kind the determinism test compares across processes."""
    return {
        "int": 123456789012345678901234567890,
        "float": 0.1,
        "text": "naïve ☃",
        "dict": {"b": [1, 2.5, None], "a": (True, b"raw"), "c": {"nested": {3, 1, 2}}},
        "strings": {"alpha", "beta", "gamma", "delta", "epsilon"},
        "point": Point(1.5, -2.0, frozenset({"x", "y", "z"})),
        "function": scale,
    }
