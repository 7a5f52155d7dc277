"""The benchmark graphs, as plain functions with the parameter names each library wires by.

Functions are generated from source so that every library sees ordinary, distinct
``def`` functions whose parameter names imply the graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CHAIN = 100
FAN = 50


def _define(source: str, names: list[str]) -> list[Callable[..., Any]]:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<benchmark-graph>", "exec"), namespace)
    return [namespace[n] for n in names]


def chain(n: int = CHAIN) -> tuple[list[Callable[..., Any]], list[str]]:
    """``v1 = s0(v0) ... v{n} = s{n-1}(v{n-1})``, each adding one."""
    source = "\n".join(f"def s{i}(v{i}):\n    return v{i} + 1" for i in range(n))
    return _define(source, [f"s{i}" for i in range(n)]), [f"v{i + 1}" for i in range(n)]


def fan(n: int = FAN) -> tuple[list[Callable[..., Any]], list[str]]:
    """``head(x) -> h``, ``n`` branches ``b{i}(h) -> y{i}``, ``tail(y0..y{n-1}) -> total``."""
    lines = ["def head(x):\n    return x + 1"]
    lines += [f"def b{i}(h):\n    return h * {i}" for i in range(n)]
    args = ", ".join(f"y{i}" for i in range(n))
    lines.append(f"def tail({args}):\n    return {' + '.join(f'y{i}' for i in range(n))}")
    names = ["head", *(f"b{i}" for i in range(n)), "tail"]
    return _define("\n".join(lines), names), ["h", *(f"y{i}" for i in range(n)), "total"]


def trio() -> tuple[list[Callable[..., Any]], list[str]]:
    """The 3-node pipeline used by the nested and map benchmarks: x -> a -> b -> c."""
    source = (
        "def fa(x):\n    return x + 1\ndef fb(a):\n    return a * 2\ndef fc(b):\n    return b - 3\n"
    )
    return _define(source, ["fa", "fb", "fc"]), ["a", "b", "c"]


def plain_chain(funcs: list[Callable[..., Any]]) -> Callable[[int], int]:
    """The plain-Python baseline of a chain: call each function on the previous value."""

    def run(v: int) -> int:
        for f in funcs:
            v = f(v)
        return v

    return run
