"""When a node runs, and what it reports of how it went: conditions and outcomes.

A node (function or nested pipeline) may carry three options that decide its place in a
run beyond its inputs and outputs:

* ``when``: a condition over values of the pipeline. The node runs only when it holds;
  otherwise it is *skipped*: its outputs are ``None`` and every node consuming them is
  skipped too, exactly as for a failure continued past (``on_error="continue"``).
  ``when="flag"`` reads the value ``flag`` as a boolean; ``Condition(test, inputs)``
  calls ``test`` with the values named by ``inputs``.
* ``outcome``: a name under which the node publishes how it went,
  ``{"status": "ok" | "failed" | "skipped", "error": None | {"type", "message", "path"}}``.
  The outcome is published whatever happened (it is never skipped), so a fallback can
  consume it. It is a value between nodes, not an output of the pipeline.
* ``tolerates``: input names whose producer may have failed or been skipped without
  skipping this node; it receives ``None`` for them.

Names made by a front end for its own wiring start with ``.`` (``private_name``), which no
user name can; a pipeline never publishes them as outputs, and progress displays and
pictures leave private nodes out.

The one other name that is not an identifier is the error output a ``pipeline_call`` node
publishes beside its result (``error_output``: ``summary._error``, SPEC 1.6 and 12.7), so
that other nodes can read it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nestflow.core.names import RULE, input_name_problem, name_problem
from nestflow.errors import InvalidNameError, InvalidOptionError

PRIVATE = "."
"""The first character of names a front end makes for its own wiring. A user name is a
Python identifier, so it can never start with it."""


def private_name(*parts: str) -> str:
    """A name for a front end's own wiring (``private_name("a", "outcome")`` is
    ``".a.outcome"``), which no user name can clash with."""
    return PRIVATE + ".".join(parts)


def is_private(name: str) -> bool:
    """A name made by a front end (``private_name``)."""
    return name.startswith(PRIVATE)


ERROR_SUFFIX = "._error"
"""What ``error_output`` appends to an output name."""


def error_output(key: str) -> str:
    """The output beside ``key`` that says how a remote call failed (``None`` when it did
    not): ``error_output("summary")`` is ``"summary._error"``."""
    return key + ERROR_SUFFIX


def _error_output_problem(name: str) -> str | None:
    problem = name_problem(name[: -len(ERROR_SUFFIX)])
    return None if problem is None else f"`{name}` is not `<name>._error`: {problem}"


def _private_problem(name: str) -> str | None:
    parts = name[len(PRIVATE) :].split(".")
    if all(part.isidentifier() for part in parts):
        return None
    return f"`{name}` is not a private name (identifiers joined by '.')"


def wired_name_problem(name: object) -> str | None:
    """``input_name_problem`` for a name a node reads, private names and error outputs
    allowed."""
    return _wired_problem(name) if isinstance(name, str) else input_name_problem(name)


def member_name_problem(name: object) -> str | None:
    """``name_problem`` for a node id or an output, private names and error outputs
    allowed."""
    return _member_problem(name) if isinstance(name, str) else name_problem(name)


# Every node of every pipeline asks, and names repeat: a str's answer is kept.
@functools.lru_cache(maxsize=4096)
def _wired_problem(name: str) -> str | None:
    if is_private(name):
        return _private_problem(name)
    if name.endswith(ERROR_SUFFIX):
        return _error_output_problem(name)
    return input_name_problem(name)


@functools.lru_cache(maxsize=4096)
def _member_problem(name: str) -> str | None:
    if is_private(name):
        return _private_problem(name)
    if name.endswith(ERROR_SUFFIX):
        return _error_output_problem(name)
    return name_problem(name)


@dataclass(frozen=True, slots=True)
class Condition:
    """A node's condition: ``test(*values of inputs)`` must be true for the node to run.

    ``text`` is how reports and errors show it.
    """

    test: Callable[..., Any]
    inputs: tuple[str, ...]
    text: str = ""

    def holds(self, values: dict[str, Any]) -> bool:
        """Whether the node runs, given the level's values (its inputs read)."""
        return bool(self.test(*[values[name] for name in self.inputs]))

    @property
    def shown(self) -> str:
        """The condition as a report shows it."""
        return self.text or " and ".join(self.inputs)


def condition_of(node_name: str, when: str | Condition | None) -> Condition | None:
    """``when=`` of a node as a ``Condition`` (checked: names, a callable test)."""
    if when is None:
        return None
    if isinstance(when, str):
        if (problem := wired_name_problem(when)) is not None:
            raise InvalidNameError(f"when= of node `{node_name}` ({RULE}): {problem}.")
        return Condition(bool, (when,), when)
    if isinstance(when, Condition):
        if not callable(when.test):
            raise InvalidOptionError(
                f"when= of node `{node_name}`: Condition.test must be callable, "
                f"got {type(when.test).__name__}."
            )
        problems = [p for name in when.inputs if (p := wired_name_problem(name)) is not None]
        if problems:
            raise InvalidNameError(f"when= of node `{node_name}` ({RULE}): {'; '.join(problems)}.")
        return when
    raise InvalidOptionError(
        f"when= of node `{node_name}` expects the name of a value (when='ready') or "
        f"Condition(test, inputs); got {type(when).__name__} {when!r}."
    )


def outcome_of(node_name: str, outcome: str | None, outputs: Sequence[str]) -> str | None:
    """``outcome=`` of a node, checked: a name that is not one of its outputs."""
    if outcome is None:
        return None
    if (problem := member_name_problem(outcome)) is not None:
        raise InvalidNameError(f"outcome= of node `{node_name}` ({RULE}): {problem}.")
    if outcome in outputs:
        raise InvalidOptionError(
            f"outcome= of node `{node_name}` is `{outcome}`, which is also one of its "
            "outputs; give the outcome a name of its own, e.g. "
            f"outcome='{node_name}_outcome'."
        )
    return outcome


def tolerated(node_name: str, tolerates: Sequence[str], inputs: Sequence[str]) -> frozenset[str]:
    """``tolerates=`` of a node, checked: names among its inputs."""
    if isinstance(tolerates, str):
        tolerates = (tolerates,)
    unknown = [name for name in tolerates if name not in inputs]
    if unknown:
        raise InvalidOptionError(
            f"tolerates= of node `{node_name}` names {', '.join(f'`{u}`' for u in unknown)}, "
            f"which it does not read; its inputs are: {', '.join(inputs) or '(none)'}."
        )
    return frozenset(tolerates)


def produced(member: Any) -> tuple[str, ...]:
    """The names a node makes: its outputs, and its outcome when it publishes one."""
    outcome: str | None = member.outcome
    return member.outputs if outcome is None else (*member.outputs, outcome)


def ok() -> dict[str, Any]:
    """The outcome of a node that ran (or was a cache hit)."""
    return {"status": "ok", "error": None}


def failed(path: str, exc: BaseException) -> dict[str, Any]:
    """The outcome of a node whose failure was continued past."""
    error = {"type": type(exc).__name__, "message": str(exc), "path": path}
    return {"status": "failed", "error": error}


def skipped() -> dict[str, Any]:
    """The outcome of a skipped node."""
    return {"status": "skipped", "error": None}
