"""Node: a Python function plus the names it consumes and publishes.

A decorated function stays a plain function when called directly; everything a
pipeline needs (inputs, outputs, defaults, options) is read once, here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from inspect import CO_ASYNC_GENERATOR, CO_COROUTINE, CO_VARARGS, CO_VARKEYWORDS
from types import FunctionType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, overload

from nestflow.core.config import UNSET
from nestflow.core.gates import (
    Condition,
    condition_of,
    member_name_problem,
    outcome_of,
    tolerated,
    wired_name_problem,
)
from nestflow.core.names import RULE, name_problem
from nestflow.core.options import check_node_options, misplaced_options
from nestflow.errors import InvalidNameError, InvalidNodeError

if TYPE_CHECKING:
    from nestflow.core.config import Unset
    from nestflow.core.retry import Retry

OnError = Literal["raise", "continue"]
SHARED_PLANS = "_nestflow_plans"
"""Where a node keeps the plans shared by the pipelines it comes first in
(``runtime/plan.py``): an entry of its ``__dict__``, left out when it is pickled."""

_OPTION_NAMES = (
    "output_name", "name", "cache", "timeout", "retries", "on_error", "cache_version", "when",
    "outcome", "tolerates",
)  # fmt: skip


class Node:
    """A function with named inputs and outputs; a frozen value.

    Derived copies come from :meth:`with_name`, :meth:`with_options` and
    :meth:`with_inputs`; calling the node calls the function, nothing else.
    """

    func: Callable[..., Any]
    name: str
    params: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    output_name: str | tuple[str, ...]
    defaults: dict[str, Any]
    input_sources: dict[str, str]
    keyword_params: frozenset[str]
    is_async: bool
    cache: bool
    timeout: float | Unset | None
    retries: int | Retry | Unset
    on_error: OnError
    cache_version: str | None
    when: Condition | None
    outcome: str | None
    tolerates: frozenset[str]
    name_is_explicit: bool

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        output_name: str | tuple[str, ...] | None = None,
        name: str | None = None,
        cache: bool = True,
        timeout: float | Unset | None = UNSET,
        retries: int | Retry | Unset = UNSET,
        on_error: OnError = "raise",
        cache_version: str | None = None,
        input_sources: Mapping[str, str] | None = None,
        when: str | Condition | None = None,
        outcome: str | None = None,
        tolerates: Sequence[str] = (),
    ) -> None:
        if isinstance(func, Node):
            func = func.func
        self._settle(
            _function_of(func),
            output_name=output_name,
            name=name,
            cache=cache,
            timeout=timeout,
            retries=retries,
            on_error=on_error,
            cache_version=cache_version,
            input_sources=input_sources,
            when=when,
            outcome=outcome,
            tolerates=tolerates,
        )

    def _settle(
        self,
        function: _Function,
        *,
        output_name: str | tuple[str, ...] | None,
        name: str | None,
        cache: bool,
        timeout: float | Unset | None,
        retries: int | Retry | Unset,
        on_error: OnError,
        cache_version: str | None,
        input_sources: Mapping[str, str] | None,
        when: str | Condition | None,
        outcome: str | None,
        tolerates: Sequence[str],
    ) -> None:
        """Check the options against the analysed function and fill in every attribute.

        ``__init__`` and the ``with_*`` copies both end here, so every option is checked by
        the same code whichever way a node is made; only reading the function is skipped
        for a copy, whose function is the one already read.
        """
        func, func_name, params = function.func, function.name, function.params
        outputs = _outputs_of(output_name, func_name, name)
        sources = dict(input_sources or {})
        if not (cache is True and timeout is UNSET and retries is UNSET and on_error == "raise"):
            check_node_options(name or func_name, cache, timeout, retries, on_error)
        node_name = name if name is not None else func_name
        _check_names(node_name, outputs, sources, params)
        condition = condition_of(node_name, when)
        wired = tuple(sources.get(p, p) for p in params) if sources else params
        inputs = wired
        if condition is not None:
            inputs += tuple(n for n in dict.fromkeys(condition.inputs) if n not in wired)
        fields: dict[str, Any] = {
            "func": func,
            "name": node_name,
            "name_is_explicit": name is not None,
            "params": params,
            "inputs": inputs,
            "outputs": outputs,
            "output_name": output_name if output_name is not None else func_name,
            "defaults": function.defaults,
            "input_sources": {p: sources.get(p, p) for p in params}
            if sources
            else dict(zip(params, params, strict=True)),
            "keyword_params": function.keyword_params,
            "is_async": function.is_async,
            "cache": cache,
            "timeout": timeout,
            "retries": retries,
            "on_error": on_error,
            "cache_version": cache_version,
            "when": condition,
            "outcome": outcome_of(node_name, outcome, outputs),
            "tolerates": frozenset()
            if tolerates == ()
            else tolerated(node_name, tolerates, inputs),
            "__wrapped__": func,
            "__doc__": getattr(func, "__doc__", None),
            "__name__": func_name,
        }
        self.__dict__.update(fields)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(
            f"Node `{self.name}` is immutable; use with_options(...), with_name(...) "
            "or with_inputs(...) to get a modified copy."
        )

    def __delattr__(self, key: str) -> None:
        self.__setattr__(key, None)

    def __getstate__(self) -> dict[str, Any]:
        # Plans shared by pipelines starting with this node (``runtime/plan.py``) stay here.
        fields = dict(self.__dict__)  # one step: another thread may be adding its plans
        fields.pop(SHARED_PLANS, None)
        return fields

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Node(name={self.name!r}, inputs={self.inputs!r}, outputs={self.outputs!r})"

    @property
    def optional_inputs(self) -> frozenset[str]:
        """Wired input names that have a default, so may be left unsupplied."""
        return frozenset(self.input_sources[p] for p in self.defaults)

    def default_for(self, input_name: str) -> tuple[bool, Any]:
        """``(True, value)`` when the wired input ``input_name`` has a default."""
        for param, source in self.input_sources.items():
            if source == input_name and param in self.defaults:
                return True, self.defaults[param]
        return False, None

    def _options(self) -> dict[str, Any]:
        options = {key: getattr(self, key) for key in _OPTION_NAMES}
        options["name"] = self.name if self.name_is_explicit else None
        options["input_sources"] = {p: s for p, s in self.input_sources.items() if p != s}
        return options

    def with_name(self, name: str) -> Node:
        """A copy with another node id."""
        return self.with_options(name=name)

    def with_options(self, **options: Any) -> Node:
        """A copy with some decorator options changed (same keywords as ``@node``)."""
        unknown = {k: v for k, v in options.items() if k not in _OPTION_NAMES}
        misplaced_options("with_options()", unknown, _OPTION_NAMES)
        return self._copy({**self._options(), **options})

    def with_inputs(self, sources: Mapping[str, str]) -> Node:
        """A copy whose parameters are fed from differently named values: ``{param: name}``."""
        unknown = sorted(set(sources) - set(self.params))
        if unknown:
            raise InvalidNodeError(
                f"Node `{self.name}` has no parameter {', '.join(f'`{u}`' for u in unknown)}. "
                f"Its parameters are: {', '.join(f'`{p}`' for p in self.params) or '(none)'}. "
                "with_inputs takes {parameter: source_name}."
            )
        merged = self._options()
        merged["input_sources"] = {**merged["input_sources"], **sources}
        return self._copy(merged)

    def _copy(self, options: dict[str, Any]) -> Node:
        """A node of the same function with ``options`` (every one, as ``_options`` has them).

        The function is not read again: its signature, defaults and kind are this node's,
        which is what ``Node(self.func, **options)`` would find, at a fraction of the cost
        (a YAML step makes three nodes of each function).
        """
        function = _Function(
            self.func,
            self.__dict__["__name__"],
            self.params,
            dict(self.defaults),
            self.keyword_params,
            self.is_async,
        )
        made = Node.__new__(Node)
        made._settle(function, **options)
        return made


class _Function(NamedTuple):
    """What a node reads from its function, once: copies of the node reuse it."""

    func: Callable[..., Any]
    name: str
    params: tuple[str, ...]
    defaults: dict[str, Any]
    keyword_params: frozenset[str]
    is_async: bool


def _function_of(func: Callable[..., Any]) -> _Function:
    if type(func) is FunctionType:
        found = _plain_function(func)
        if found is not None:
            return found
    if not callable(func):
        raise TypeError(f"@node needs a callable, got {type(func).__name__}: {func!r}.")
    func_name = getattr(func, "__name__", type(func).__name__)
    parameters = _signature_of(func, func_name).parameters
    return _Function(
        func,
        func_name,
        tuple(parameters),
        {p: v.default for p, v in parameters.items() if v.default is not inspect.Parameter.empty},
        frozenset(p for p, v in parameters.items() if v.kind is v.KEYWORD_ONLY),
        _is_async(func),
    )


_READ_ELSEWHERE = CO_VARARGS | CO_VARKEYWORDS | CO_ASYNC_GENERATOR
"""Code flags of functions ``_plain_function`` leaves to ``inspect`` (which explains them)."""


def _plain_function(func: FunctionType) -> _Function | None:
    """What ``inspect.signature`` would say of a plain ``def`` function, read from its code
    object directly (a node is made for every function of every script; ``inspect`` costs
    more than the rest of making it). ``None`` for anything it would read differently: a
    wrapper (``__wrapped__``), a declared ``__signature__``, variadic parameters or an async
    generator, which take the general path."""
    code = func.__code__
    if code.co_flags & _READ_ELSEWHERE or "__wrapped__" in func.__dict__:
        return None
    if "__signature__" in func.__dict__:
        return None
    positional, keyword_only = code.co_argcount, code.co_kwonlyargcount
    names = code.co_varnames[: positional + keyword_only]
    defaults: dict[str, Any] = {}
    given = func.__defaults__
    if given:
        defaults.update(zip(names[positional - len(given) : positional], given, strict=True))
    if keyword_only and func.__kwdefaults__:
        defaults.update(func.__kwdefaults__)
    return _Function(
        func,
        func.__name__,
        names,
        defaults,
        frozenset(names[positional:]),
        bool(code.co_flags & CO_COROUTINE),
    )


def _signature_of(func: Callable[..., Any], func_name: str) -> inspect.Signature:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise InvalidNodeError(
            f"Cannot read the signature of `{func_name}`: {exc}. "
            "Wrap it in a plain def function with named parameters."
        ) from exc
    variadic = [
        p.name for p in signature.parameters.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if _is_async_generator(func):
        raise InvalidNodeError(
            f"Function `{func_name}` is an async generator (async def with yield); a node "
            "returns one value per call, and a generator would reach downstream nodes as an "
            "unconsumed async_generator object. Collect the items and return them, for "
            "example `return [item async for item in source()]`, or return instead of yield."
        )
    if variadic:
        raise InvalidNodeError(
            f"Function `{func_name}` takes variadic parameter(s) {', '.join(variadic)} "
            "(*args/**kwargs); a node's inputs must be named. "
            "Declare each input as its own parameter."
        )
    return signature


def _outputs_of(
    output_name: str | tuple[str, ...] | list[str] | None, func_name: str, name: str | None
) -> tuple[str, ...]:
    if output_name is None:
        if name_problem(func_name) is not None:
            raise InvalidNameError(
                f"`{func_name}` is not a valid node name ({RULE}). "
                "Give the node a name with name='...' and its output with output_name='...', "
                "for example node(lambda x: x, name='first', output_name='first')."
            )
        return (func_name,)
    if isinstance(output_name, str):
        return (output_name,)
    if isinstance(output_name, (tuple, list)) and output_name:
        return tuple(output_name)
    raise InvalidNodeError(
        f"output_name of `{name or func_name}` must be a str or a non-empty tuple of str, "
        f"got {output_name!r}."
    )


def _check_names(
    name: str, outputs: tuple[str, ...], sources: Mapping[str, str], params: tuple[str, ...]
) -> None:
    """Raise for a bad node, output or input name, or a source naming no parameter."""
    wiring = tuple(sources.items()) if sources else ()
    try:
        _names_checked(name, outputs, wiring, params)
    except TypeError:  # something unhashable: a name of the wrong type, said as such below
        _names_checked.__wrapped__(name, outputs, wiring, params)


@functools.lru_cache(maxsize=4096)
def _names_checked(
    name: str,
    outputs: tuple[str, ...],
    wiring: tuple[tuple[str, str], ...],
    params: tuple[str, ...],
) -> None:
    """``_check_names`` remembered: a script makes nodes of the same names again and again,
    and the answer depends on nothing else (an error is raised again each time, not kept)."""
    sources = dict(wiring)
    problems = []
    if (problem := member_name_problem(name)) is not None:
        hint = " Give it one with name='...'." if name == "<lambda>" else ""
        problems.append(f"node name: {problem}.{hint}")
    problems += [f"output name: {p}." for o in outputs if (p := member_name_problem(o)) is not None]
    wired = dict.fromkeys(sources.get(p, p) for p in params)
    problems += [f"input name: {p}." for s in wired if (p := wired_name_problem(s)) is not None]
    if len(set(outputs)) != len(outputs):
        problems.append(f"output names repeat: {outputs!r}.")
    unknown = sorted(set(sources) - set(params))
    if unknown:
        raise InvalidNodeError(
            f"Node `{name}` has no parameter {', '.join(unknown)}; its parameters are {params!r}."
        )
    if problems:
        raise InvalidNameError(
            f"Invalid name(s) for node `{name}` ({RULE}):\n  " + "\n  ".join(problems)
        )


def _is_async_generator(func: Callable[..., Any]) -> bool:
    call = vars(type(func)).get("__call__")
    return inspect.isasyncgenfunction(func) or inspect.isasyncgenfunction(call)


def _is_async(func: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    call = vars(type(func)).get("__call__")
    return call is not None and inspect.iscoroutinefunction(call)


@overload
def node(func: Callable[..., Any], /) -> Node: ...


@overload
def node(
    func: None = None,
    /,
    *,
    output_name: str | tuple[str, ...] | None = None,
    name: str | None = None,
    cache: bool = True,
    timeout: float | Unset | None = UNSET,
    retries: int | Retry | Unset = UNSET,
    on_error: OnError = "raise",
    cache_version: str | None = None,
    when: str | Condition | None = None,
    outcome: str | None = None,
    tolerates: Sequence[str] = (),
) -> Callable[[Callable[..., Any]], Node]: ...


@overload
def node(
    func: Callable[..., Any],
    /,
    *,
    output_name: str | tuple[str, ...] | None = None,
    name: str | None = None,
    cache: bool = True,
    timeout: float | Unset | None = UNSET,
    retries: int | Retry | Unset = UNSET,
    on_error: OnError = "raise",
    cache_version: str | None = None,
    when: str | Condition | None = None,
    outcome: str | None = None,
    tolerates: Sequence[str] = (),
) -> Node: ...


def node(
    func: Callable[..., Any] | None = None,
    /,
    *,
    output_name: str | tuple[str, ...] | None = None,
    name: str | None = None,
    cache: bool = True,
    timeout: float | Unset | None = UNSET,
    retries: int | Retry | Unset = UNSET,
    on_error: OnError = "raise",
    cache_version: str | None = None,
    when: str | Condition | None = None,
    outcome: str | None = None,
    tolerates: Sequence[str] = (),
) -> Node | Callable[[Callable[..., Any]], Node]:
    """Turn a function into a pipeline node: ``@node``, ``@node(output_name=...)`` or a call.

    >>> @node(output_name="r")
    ... def f(x):
    ...     return x + 1
    >>> f.inputs, f.outputs, f(2)
    (('x',), ('r',), 3)
    """
    options: dict[str, Any] = {
        "output_name": output_name,
        "name": name,
        "cache": cache,
        "timeout": timeout,
        "retries": retries,
        "on_error": on_error,
        "cache_version": cache_version,
        "when": when,
        "outcome": outcome,
        "tolerates": tolerates,
    }

    def decorate(function: Callable[..., Any]) -> Node:
        return Node(function, **options)

    return decorate if func is None else decorate(func)
