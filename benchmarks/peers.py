"""The same graphs in peer libraries, when the ``bench`` extra installed them."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

Runner = Callable[[], Any]
PEER_MAP_ITEMS = 10_000


def installed(name: str) -> bool:
    """Whether a peer library can be imported."""
    return importlib.util.find_spec(name) is not None


def chain_runners(funcs: list[Callable[..., Any]], outs: list[str]) -> dict[str, Runner]:
    """Run the chain to its last output in each installed peer."""
    runners: dict[str, Runner] = {}
    if installed("pipefunc"):
        import pipefunc

        pf = pipefunc.Pipeline(
            [pipefunc.pipefunc(output_name=o)(f) for f, o in zip(funcs, outs, strict=True)]
        )
        runners["pipefunc"] = lambda: pf.run(outs[-1], kwargs={"v0": 0})
    if installed("hypernodes"):
        import hypernodes

        hn = hypernodes.Pipeline(
            nodes=[hypernodes.node(output_name=o)(f) for f, o in zip(funcs, outs, strict=True)]
        )
        runners["hypernodes"] = lambda: hn.run(inputs={"v0": 0})
    return runners


def fan_runners(funcs: list[Callable[..., Any]], outs: list[str]) -> dict[str, Runner]:
    """Run the fan-out to ``total`` in each installed peer."""
    runners: dict[str, Runner] = {}
    if installed("pipefunc"):
        import pipefunc

        pf = pipefunc.Pipeline(
            [pipefunc.pipefunc(output_name=o)(f) for f, o in zip(funcs, outs, strict=True)]
        )
        runners["pipefunc"] = lambda: pf.run("total", kwargs={"x": 1})
    if installed("hypernodes"):
        import hypernodes

        hn = hypernodes.Pipeline(
            nodes=[hypernodes.node(output_name=o)(f) for f, o in zip(funcs, outs, strict=True)]
        )
        runners["hypernodes"] = lambda: hn.run(inputs={"x": 1}, output_name="total")
    return runners


def nested_runners() -> dict[str, Runner]:
    """A 3-level nested pipeline in peers that nest pipelines."""
    from benchmarks.shapes import trio

    runners: dict[str, Runner] = {}
    (fa, fb, fc), (a, b, c) = trio()
    if installed("pipefunc"):
        import pipefunc

        inner = pipefunc.Pipeline(
            [pipefunc.pipefunc(output_name=a)(fa), pipefunc.pipefunc(output_name=b)(fb)]
        )
        mid = pipefunc.Pipeline(
            [
                pipefunc.NestedPipeFunc(inner.functions, output_name=b),
                pipefunc.pipefunc(output_name=c)(fc),
            ]
        )
        outer = pipefunc.Pipeline([pipefunc.NestedPipeFunc(mid.functions, output_name=c)])
        runners["pipefunc"] = lambda: outer.run(c, kwargs={"x": 1})
    if installed("hypernodes"):
        import hypernodes

        h_inner = hypernodes.Pipeline(
            nodes=[hypernodes.node(output_name=a)(fa), hypernodes.node(output_name=b)(fb)]
        )
        h_mid = hypernodes.Pipeline(nodes=[h_inner.as_node(), hypernodes.node(output_name=c)(fc)])
        h_outer = hypernodes.Pipeline(nodes=[h_mid.as_node()])
        runners["hypernodes"] = lambda: h_outer.run(inputs={"x": 1})
    return runners


def map_runners(funcs: list[Callable[..., Any]], outs: list[str]) -> dict[str, tuple[int, Runner]]:
    """Map the 3-node pipeline over ``PEER_MAP_ITEMS`` items in each installed peer."""
    runners: dict[str, tuple[int, Runner]] = {}
    xs = list(range(PEER_MAP_ITEMS))
    if installed("pipefunc"):
        import pipefunc

        (fa, fb, fc), (a, b, c) = funcs, outs
        pf = pipefunc.Pipeline(
            [
                pipefunc.pipefunc(output_name=a, mapspec="x[i] -> a[i]")(fa),
                pipefunc.pipefunc(output_name=b, mapspec="a[i] -> b[i]")(fb),
                pipefunc.pipefunc(output_name=c, mapspec="b[i] -> c[i]")(fc),
            ]
        )
        runners["pipefunc"] = (
            PEER_MAP_ITEMS,
            lambda: pf.map({"x": xs}, parallel=False, storage="dict", show_progress=False),
        )
    if installed("hypernodes"):
        import hypernodes

        hn = hypernodes.Pipeline(
            nodes=[hypernodes.node(output_name=o)(f) for f, o in zip(funcs, outs, strict=True)]
        )
        runners["hypernodes"] = (
            PEER_MAP_ITEMS,
            lambda: hn.map(inputs={"x": xs}, map_over="x"),
        )
    return runners
