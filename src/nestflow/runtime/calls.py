"""How one function node is called and how its result is published, precomputed per node."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nestflow.core.node import Node
from nestflow.errors import NodeOutputError


class CallSpec:
    """Argument wiring and output publishing of one function node.

    A plain slotted class, not a frozen dataclass, for the import time of a process's first
    run (see ``runtime/plan.py``'s ``Step``).
    """

    __slots__ = ("arg_names", "fn", "keyword", "names", "node_id", "outs", "positional",
                 "simple", "wired")  # fmt: skip

    def __init__(
        self,
        *,
        node_id: str,
        fn: Callable[..., Any],
        positional: tuple[tuple[str, Any], ...],
        keyword: tuple[tuple[str, str, Any], ...],
        outs: tuple[str, ...],
        wired: tuple[tuple[str, str, Any], ...] = (),
    ) -> None:
        self.node_id, self.fn, self.outs = node_id, fn, outs
        self.positional = positional
        """(wired name, default) per positional parameter, in order."""
        self.keyword = keyword
        """(parameter, wired name, default) per keyword-only parameter."""
        self.wired = wired
        """(parameter, wired name, default) by parameter name: what a signature reads."""
        # Read for every call on the loops (and every compile): made once here, not per read.
        arg_names = tuple(name for name, _ in positional)
        self.arg_names = arg_names
        """The wired names of the positional parameters."""
        self.names: tuple[str, ...] = (*arg_names, *(n for _, n, _ in keyword))
        """Every wired input name, positional and keyword."""
        self.simple = len(outs) == 1 and not keyword and all(d is REQUIRED for _, d in positional)
        """One output, positional parameters only, no defaults: the fast loop inlines it."""

    def __repr__(self) -> str:
        return f"CallSpec(node_id={self.node_id!r}, names={self.names!r}, outs={self.outs!r})"

    def arguments(self, values: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments; a missing optional input takes its default."""
        get = values.get
        args = [get(name, default) for name, default in self.positional]
        kwargs = {param: get(name, default) for param, name, default in self.keyword}
        return args, kwargs

    def inputs(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The node's inputs by parameter name, as passed (for callbacks)."""
        return {name: values.get(name, default) for name, default in self.positional} | {
            param: values.get(name, default) for param, name, default in self.keyword
        }

    def publish(self, result: Any, values: dict[str, Any]) -> None:
        """Write the result under the node's output name(s), checking tuple arity."""
        if len(self.outs) == 1:
            values[self.outs[0]] = result
            return
        values.update(zip(self.outs, unpack(self.node_id, self.outs, result), strict=True))


REQUIRED: Any = object()
"""The default of a parameter that has none."""


def call_spec(node_id: str, node: Node) -> CallSpec:
    """How ``node`` is called, worked out once per node and id: a node is immutable, and a
    new pipeline object made of the same nodes (a script run again, a notebook cell) then
    compiles without doing it again."""
    specs = _SPECS.get(node)
    if specs is None:
        specs = _SPECS[node] = {}
    found = specs.get(node_id)
    if found is None:
        found = specs[node_id] = _call_spec(node_id, node)
    return found


_SPECS: weakref.WeakKeyDictionary[Node, dict[str, CallSpec]] = weakref.WeakKeyDictionary()
"""Each node's call specs by node id, kept while the node lives (nodes are immutable)."""


def _call_spec(node_id: str, node: Node) -> CallSpec:
    positional, keyword = [], []
    for param in node.params:
        wired = node.input_sources[param]
        default = node.defaults.get(param, REQUIRED)
        if param in node.keyword_params:
            keyword.append((param, wired, default))
        else:
            positional.append((wired, default))
    return CallSpec(
        node_id=node_id,
        fn=node.func,
        positional=tuple(positional),
        keyword=tuple(keyword),
        outs=node.outputs,
        wired=tuple(
            sorted(
                (param, node.input_sources[param], node.defaults.get(param, REQUIRED))
                for param in node.params
            )
        ),
    )


def unpack(node_id: str, outs: tuple[str, ...], result: Any) -> Sequence[Any]:
    """The values of a tuple-output node, or ``NodeOutputError`` naming what came back."""
    if isinstance(result, Sequence) and not isinstance(result, (str, bytes)):
        if len(result) == len(outs):
            return result
        got = f"a {type(result).__name__} of length {len(result)}"
    else:
        got = f"a {type(result).__name__}"
    names = ", ".join(f"`{o}`" for o in outs)
    raise NodeOutputError(
        f"Node `{node_id}` declares {len(outs)} outputs ({names}) but returned {got}: "
        f"{_short(result)}. Return exactly {len(outs)} values, one per output name."
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
