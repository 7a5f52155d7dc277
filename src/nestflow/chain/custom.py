"""``.custom(fn)``: the generated nodes that turn a step's value into the next step's arguments.

Two private nodes stand between the step and the next one:

* the *custom* node calls ``fn`` on the value and checks what it returned: a dict of keyword
  arguments (a list of them with ``fan_out=True``) whose keys the next step takes. It is
  cached like any node, and its code fingerprint is ``fn``'s (``__wrapped__``), so editing
  ``fn`` runs it again; its ``cache_version`` covers what the chain checks the result
  against (the shape, the keys);
* the *spread* node hands each argument to the next step under a private name, a default
  where the dict leaves one out (with ``fan_out=True``, one list per argument, which the
  following segment maps over side by side). It is not cached: cheap, and its consumers are
  keyed by the values it gives.
"""

from __future__ import annotations

import hashlib
import inspect
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nestflow.core.gates import private_name
from nestflow.core.node import Node
from nestflow.errors import ChainError


@dataclass(frozen=True, slots=True)
class Arguments:
    """What the next step takes from a custom function: the names, and which may be left out."""

    custom: str
    """The id of the step whose custom function makes the arguments."""
    target: str
    """The id of the step that takes them."""
    names: tuple[str, ...]
    defaults: Mapping[str, Any]
    """The names that may be left out, with the value they then take."""
    fan_out: bool

    @property
    def private(self) -> tuple[str, ...]:
        """The private names the next step reads its arguments from."""
        return tuple(private_name(self.target, name) for name in self.names)

    @property
    def kwargs(self) -> str:
        """The private name of the custom function's checked result."""
        return private_name(self.custom, "kwargs")

    def takes(self) -> str:
        """``a, b (optional)``: the keys the custom function may return."""
        return ", ".join(n + (" (optional)" if n in self.defaults else "") for n in self.names)


def custom_node(fn: Callable[[Any], Any], source: str, arguments: Arguments) -> Node:
    """The cached private node calling ``fn`` on the value ``source`` and checking the result."""
    if inspect.iscoroutinefunction(fn):

        async def custom_async(value: Any) -> Any:
            return checked(await fn(value), arguments)

        call: Callable[..., Any] = custom_async
    else:

        def custom(value: Any) -> Any:
            return checked(fn(value), arguments)

        call = custom
    call.__wrapped__ = fn  # type: ignore[attr-defined]
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("value", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    )
    contract = repr((arguments.fan_out, arguments.names, sorted(arguments.defaults)))
    return Node(
        call,
        name=private_name(arguments.custom, "custom"),
        output_name=arguments.kwargs,
        cache_version=hashlib.sha256(contract.encode()).hexdigest()[:16],
        input_sources={"value": source},
    )


def spread_node(arguments: Arguments) -> Node:
    """The private node giving each argument (a column of them with ``fan_out``) its name."""
    names, defaults = arguments.names, arguments.defaults

    def one(kwargs: Mapping[str, Any]) -> list[Any]:
        return [kwargs[n] if n in kwargs else defaults[n] for n in names]

    def spread(kwargs: Any) -> Any:
        if arguments.fan_out:
            rows = [one(each) for each in kwargs]
            found = [[row[k] for row in rows] for k in range(len(names))]
        else:
            found = one(kwargs)
        return tuple(found) if len(found) > 1 else found[0]  # one output: the bare value

    outputs = arguments.private
    return Node(
        spread,
        name=private_name(arguments.target, "in"),
        output_name=outputs if len(outputs) > 1 else outputs[0],
        cache=False,  # cheap; the next step is keyed by the values it hands on
        input_sources={"kwargs": arguments.kwargs},
    )


def checked(found: Any, arguments: Arguments) -> Any:
    """``found`` if it is the shape the custom function must return; else ``ChainError``."""
    if not arguments.fan_out:
        if not isinstance(found, Mapping):
            raise _wrong_shape(arguments, f"a {_shape(found)}")
        _check_keys(found, arguments, "")
        return dict(found)
    if not isinstance(found, (list, tuple)):
        raise _wrong_shape(arguments, f"a {_shape(found)}")
    for index, each in enumerate(found):
        if not isinstance(each, Mapping):
            raise _wrong_shape(arguments, f"a list whose item {index} is a {_shape(each)}")
        _check_keys(each, arguments, f" (item {index})")
    return [dict(each) for each in found]


def _shape(value: Any) -> str:
    return f"{type(value).__name__}: {reprlib.repr(value)}"


def _wrong_shape(arguments: Arguments, found: str) -> ChainError:
    expected = (
        "a list of dicts, one per run of the following segment" if arguments.fan_out else "one dict"
    )
    return ChainError(
        f"The custom function of step `{arguments.custom}` returned {found}; with "
        f"fan_out={arguments.fan_out} it must return {expected}, of keyword arguments for "
        f"step `{arguments.target}` (it takes {arguments.takes()})."
    )


def _check_keys(found: Mapping[Any, Any], arguments: Arguments, where: str) -> None:
    unknown = [k for k in found if k not in arguments.names]
    absent = [n for n in arguments.names if n not in found and n not in arguments.defaults]
    if not unknown and not absent:
        return
    lines = []
    if unknown:
        lines.append(f"keys step `{arguments.target}` does not take: {reprlib.repr(unknown)}")
    if absent:
        lines.append(f"no value for {', '.join(f'`{n}`' for n in absent)}")
    raise ChainError(
        f"The custom function of step `{arguments.custom}` returned{where} {'; '.join(lines)}. "
        f"Step `{arguments.target}` takes {arguments.takes()} from it; its other parameters "
        "are wired by name."
    )
