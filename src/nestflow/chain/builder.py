"""Chain: declared inputs, bound values and steps; ``<<`` adds a step, ``build`` compiles."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from nestflow.chain.compile import build
from nestflow.chain.steps import Step, step
from nestflow.core.names import RULE, input_name_problem
from nestflow.errors import ChainError, InvalidNameError

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline


class Chain:
    """A linear flow of steps with fan-out and gather, compiled into a ``Pipeline``.

    ``Chain("instruction", n_variants=5)`` declares the input ``instruction`` and binds
    ``n_variants`` (a run may still pass another value). ``chain << step(fn)`` returns a new
    chain; a chain never changes.

    >>> from nestflow import step
    >>> def shout(text: str) -> str:
    ...     return text.upper()
    >>> def count(shout: str) -> int:
    ...     return len(shout)
    >>> flow = Chain("text") << step(shout) << step(count)
    >>> dict(flow.build(name="loud").run(text="hey"))
    {'shout': 'HEY', 'count': 3}
    """

    __slots__ = ("bound", "inputs", "steps")

    inputs: tuple[str, ...]
    bound: Mapping[str, Any]
    steps: tuple[Step, ...]

    def __init__(self, *inputs: str, **bound: Any) -> None:
        problems = [p for name in inputs if (p := input_name_problem(name)) is not None]
        if problems:
            raise InvalidNameError(f"Chain inputs ({RULE}): {'; '.join(problems)}.")
        given = [n for n in dict.fromkeys(inputs) if inputs.count(n) > 1 or n in bound]
        if given:
            raise ChainError(
                f"Chain input(s) {', '.join(f'`{n}`' for n in given)} given twice; declare "
                "each once, as a name (Chain('x')) or with a bound value (Chain(x=1))."
            )
        self._set(tuple(inputs), dict(bound), ())

    def _set(self, inputs: tuple[str, ...], bound: dict[str, Any], steps: tuple[Step, ...]) -> None:
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "bound", MappingProxyType(bound))
        object.__setattr__(self, "steps", steps)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("A Chain is immutable; `chain << step(...)` returns a new chain.")

    def __delattr__(self, key: str) -> None:
        self.__setattr__(key, None)

    def __lshift__(self, other: Any) -> Chain:
        if isinstance(other, Chain):
            raise TypeError(
                "chain << chain is not supported; add the steps of the second chain one by "
                "one: chain << step(fn) << ..."
            )
        if not isinstance(other, Step):
            other = step(other)  # a function, Node or Pipeline; anything else: TypeError
        made = Chain.__new__(Chain)
        made._set(self.inputs, dict(self.bound), (*self.steps, other))
        return made

    def __repr__(self) -> str:
        given = [repr(n) for n in self.inputs] + [f"{k}={v!r}" for k, v in self.bound.items()]
        return f"Chain({', '.join(given)})" + "".join(f" << {s!r}" for s in self.steps)

    def build(self, name: str | None = None, **pipeline_options: Any) -> Pipeline:
        """The ``Pipeline`` this chain compiles to; ``pipeline_options`` are ``Pipeline``'s
        (``backend``, ``cache``, ``callbacks``, ``timeout``, ``retries``, ``limits``).

        Raises ``ChainError`` listing every wiring problem (a step whose carry parameter
        cannot be told, ``aggregate()`` with no open segment, an empty chain).
        """
        return build(self.inputs, self.bound, self.steps, name, pipeline_options)
