"""Timing: best of several repeats, so one run of the suite gives stable figures."""

from __future__ import annotations

import gc
from collections.abc import Callable
from time import perf_counter
from typing import Any


def best(fn: Callable[[], Any], number: int, repeat: int = 5) -> float:
    """The best time per call, in seconds, over ``repeat`` batches of ``number`` calls."""
    fn()  # warm up: plans, caches, imports
    times = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            start = perf_counter()
            for _ in range(number):
                fn()
            times.append((perf_counter() - start) / number)
    finally:
        if enabled:
            gc.enable()
    return min(times)


def once(fn: Callable[[], Any], repeat: int = 3, warm: bool = True) -> float:
    """The best wall time of a single call (for long runs such as big maps)."""
    if warm:
        fn()
    times = []
    for _ in range(repeat):
        start = perf_counter()
        fn()
        times.append(perf_counter() - start)
    return min(times)
