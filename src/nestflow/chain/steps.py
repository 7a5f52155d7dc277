"""Step: one function, node or pipeline of a chain, and what follows it (a fan-out or a gather).

A step is a frozen value. ``.scatter()``, ``.broadcast(n)``, ``.aggregate()`` and
``.custom(fn)`` return a copy carrying that transition; a step takes at most one.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from nestflow.core.names import RULE, name_problem
from nestflow.core.nesting import PipelineNode
from nestflow.core.node import Node, node
from nestflow.core.pipeline import Pipeline
from nestflow.errors import ChainError, InvalidNameError, InvalidOptionError

Kind = Literal["scatter", "broadcast", "aggregate", "custom"]
Target = Node | Pipeline


@dataclass(frozen=True, slots=True)
class Fan:
    """What follows a step: a fan-out (``scatter``, ``broadcast``, ``custom``) or a gather."""

    kind: Kind
    replicas: int = 0
    fn: Callable[[Any], Any] | None = None
    fan_out: bool = False

    @property
    def opens(self) -> bool:
        """Whether the steps after this one form a segment."""
        return self.kind in ("scatter", "broadcast") or self.fan_out

    def shown(self) -> str:
        """How the transition is written: ``.broadcast(3)``."""
        if self.kind == "broadcast":
            return f".broadcast({self.replicas})"
        if self.kind == "custom":
            return ".custom(fn, fan_out=True)" if self.fan_out else ".custom(fn)"
        return f".{self.kind}()"


class Step:
    """One step of a chain; made with :func:`step`.

    ``target`` is the ``Node`` (a plain function already wrapped, ``name=`` applied) or the
    ``Pipeline``; ``id`` is its node id in the built pipeline.
    """

    __slots__ = ("fan", "id", "input", "target")

    target: Target
    input: str | None
    id: str
    fan: Fan | None

    def __init__(self, target: Target, input: str | None, id: str, fan: Fan | None) -> None:
        for key, value in (("target", target), ("input", input), ("id", id), ("fan", fan)):
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(
            f"Step `{self.id}` is immutable; .scatter(), .broadcast(n), .aggregate() and "
            ".custom(fn) return a new step, and step(...) makes another."
        )

    def __delattr__(self, key: str) -> None:
        self.__setattr__(key, None)

    def __repr__(self) -> str:
        given = f", input={self.input!r}" if self.input is not None else ""
        return f"step({self.id!r}{given}){self.fan.shown() if self.fan else ''}"

    @property
    def outputs(self) -> tuple[str, ...]:
        """The names the step publishes: its node's outputs, or its pipeline's."""
        return self.target.outputs

    def scatter(self) -> Step:
        """Run the following steps once per element of this step's output (a collection)."""
        return self._then(Fan("scatter"))

    def broadcast(self, n: int) -> Step:
        """Run the following steps ``n`` times on this step's value, with ``replica`` 0..n-1."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidOptionError(
                f"broadcast(n) of step `{self.id}` takes the number of replicas, an int >= 1; "
                f"got {type(n).__name__} {reprlib.repr(n)}. Write .broadcast(3)."
            )
        return self._then(Fan("broadcast", replicas=n))

    def aggregate(self) -> Step:
        """End the current segment after this step; the next step receives the list."""
        return self._then(Fan("aggregate"))

    def custom(self, fn: Callable[[Any], Any], fan_out: bool = False) -> Step:
        """Feed the next step the keyword arguments ``fn(value)`` returns (a list of them,
        one per run of the following segment, with ``fan_out=True``)."""
        if not callable(fn):
            raise InvalidOptionError(
                f"custom(fn) of step `{self.id}` takes a function of the step's value; "
                f"got {type(fn).__name__} {reprlib.repr(fn)}."
            )
        if not isinstance(fan_out, bool):
            raise InvalidOptionError(
                f"custom(fn, fan_out=...) of step `{self.id}` takes True or False; "
                f"got {type(fan_out).__name__} {reprlib.repr(fan_out)}."
            )
        func = fn.func if isinstance(fn, Node) else fn
        return self._then(Fan("custom", fn=func, fan_out=fan_out))

    def _then(self, fan: Fan) -> Step:
        if self.fan is not None:
            raise ChainError(
                f"Step `{self.id}` already has {self.fan.shown()}; a step takes one of "
                ".scatter(), .broadcast(n), .aggregate() and .custom(fn). Put the other "
                "on a step of its own."
            )
        return Step(self.target, self.input, self.id, fan)


def step(target: Any, *, input: str | None = None, name: str | None = None) -> Step:
    """A chain step of a plain function (wrapped with ``node``), a ``Node`` or a ``Pipeline``.

    ``input`` names the parameter that receives the previous step's value; ``name`` sets
    the node id (the segment a scatter step ``s`` opens is ``s_each``).

    >>> def answer(prompt: str) -> str:
    ...     return prompt.upper()
    >>> step(answer, name="reply").scatter()
    step('reply').scatter()
    """
    for option, value in (("input", input), ("name", name)):
        if value is not None and not isinstance(value, str):
            raise InvalidOptionError(
                f"step({option}=...) takes a str; got {type(value).__name__} {reprlib.repr(value)}."
            )
    if name is not None and (problem := name_problem(name)) is not None:
        raise InvalidNameError(f"step(name=...) ({RULE}): {problem}.")
    made = _target(target)
    if isinstance(made, Pipeline):
        return Step(made, input, name if name is not None else made.name, None)
    made = made if name is None else made.with_name(name)
    return Step(made, input, made.name, None)


def _target(target: Any) -> Target:
    if isinstance(target, (Node, Pipeline)):
        return target
    if isinstance(target, PipelineNode):
        raise TypeError(
            f"step() takes a function, a Node or a Pipeline; got the nested node "
            f"`{target.name}` (an as_node() result). Pass its pipeline, step(pipeline), and "
            "let the chain wire it; name it with step(pipeline, name=...)."
        )
    if isinstance(target, Step):
        raise TypeError(f"step() got a step already: {target!r}; write chain << {target!r}.")
    if callable(target):
        made: Node = node(target)
        return made
    raise TypeError(
        f"step() takes a function, a Node or a Pipeline; got {type(target).__name__}: "
        f"{reprlib.repr(target)}."
    )
