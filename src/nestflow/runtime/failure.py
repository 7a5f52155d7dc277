"""Where a failure happened: PEP 678 notes, ``exc.__nestflow__`` and ``format_error``.

The user's exception is never wrapped: it keeps its type and message and gains one
block of notes, added where the failure happened and never again on the way out.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import threading
import traceback
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from nestflow.errors import NestflowError

_MARK = "nestflow: node "


@dataclass(frozen=True, slots=True)
class ErrorContext:
    """The facts of a failure, as attributes (``exc.__nestflow__``)."""

    levels: tuple[tuple[str, str | None], ...]
    """(pipeline name, id of the nested node that entered the next level) from the root down."""
    node: str
    depth: int
    item_path: tuple[int, ...] = ()
    item_total: int | None = None
    attempts: int = 1
    trace_id: str = ""
    run_id: str = ""
    elapsed_s: float = 0.0
    nodes_executed: int = 0
    node_config: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """``root > encode_corpus > chunk``: the root pipeline, then the ids of the nested
        nodes that entered each level, then the node.

        Ids, not pipeline names: one pipeline nested by two nodes would give both the same
        path. ``levels`` keeps the pipeline names alongside.
        """
        entered = [node_id for _, node_id in self.levels if node_id is not None]
        return " > ".join([self.levels[0][0], *entered, self.node])


def is_annotated(exc: BaseException) -> bool:
    """Whether nestflow already added its notes to ``exc``."""
    return any(note.startswith(_MARK) for note in getattr(exc, "__notes__", ()))


def annotate(exc: BaseException, context: ErrorContext) -> None:
    """Add the notes block once, and ``__nestflow__`` when the exception accepts attributes."""
    if is_annotated(exc):
        return
    exc.add_note(f"{_MARK}{context.path} (depth {context.depth})")
    if context.item_path:
        line = f"nestflow: map item {context.item_path[-1]}"
        if context.item_total is not None:
            line += f" of {context.item_total}"
        if len(context.item_path) > 1:
            line += f" (item path {' > '.join(map(str, context.item_path))})"
        exc.add_note(line)
    exc.add_note(
        f"nestflow: attempts {context.attempts}, trace {context.trace_id}, run {context.run_id}"
    )
    # Exceptions with __slots__ cannot take the attribute; they keep just the notes.
    with contextlib.suppress(AttributeError, TypeError):
        exc.__nestflow__ = context  # type: ignore[attr-defined]


@functools.cache
def _machinery() -> tuple[str, ...]:
    """Where the code that runs a node but is not the node lives: nestflow, and the parts
    of the standard library and of the engines that call a node (found when a traceback is
    first cleaned, without importing any of them)."""
    found = [
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
        os.path.abspath(threading.__file__),
        os.path.abspath(contextlib.__file__),
    ]
    for package in ("asyncio", "concurrent", "distributed", "tornado"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            found += [os.path.abspath(place) + os.sep for place in spec.submodule_search_locations]
    return tuple(found)


def _is_machinery(filename: str) -> bool:
    return filename.startswith(_machinery())


def user_traceback(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` from its first frame outside nestflow and the engines that called the node.

    ``None`` when every frame is machinery (the failure was raised by nestflow, or by a
    node written in C): the frames of the call that raised it then tell the story alone.
    """
    while tb is not None and _is_machinery(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return tb


def cleaned(exc: BaseException) -> BaseException:
    """A failure of a run ready to leave nestflow: a node's exception (or nestflow's own
    error, such as a lost worker) gets a traceback that starts at the user's frame, and a
    context nestflow raised while handling it (not the user's own) is dropped."""
    if not (is_annotated(exc) or isinstance(exc, NestflowError)):
        return exc  # an interruption, or a fault of nestflow's own: every frame kept
    context = exc.__context__
    if context is not None and context.__traceback__ is not None:
        innermost = context.__traceback__
        while innermost.tb_next is not None:
            innermost = innermost.tb_next
        if _is_machinery(innermost.tb_frame.f_code.co_filename):
            exc.__context__ = None
    return exc.with_traceback(user_traceback(exc.__traceback__))


def context_of(exc: BaseException) -> ErrorContext | None:
    """The ``ErrorContext`` nestflow attached to ``exc``, if any."""
    found = getattr(exc, "__nestflow__", None)
    return found if isinstance(found, ErrorContext) else None


def format_error(exc: BaseException) -> str:
    """The nested failure report for command lines and logs.

    Falls back to the standard traceback text for exceptions without nestflow context.
    """
    context = context_of(exc)
    if context is None:
        return "".join(traceback.format_exception(exc))
    nested = len(context.levels) > 1
    lines = ["Pipeline run failed in a nested pipeline." if nested else "Pipeline run failed."]
    indent = "  "
    for name, entered in context.levels:
        lines.append(f"{indent}Pipeline: {name}")
        indent += "  "
        if entered is not None:
            lines.append(f"{indent}Node: {entered} (pipeline)")
            indent += "  "
    lines.append(f"{indent}Node: {context.node} (function)")
    lines.append(f"{indent}  Error: {type(exc).__name__}: {exc}")
    lines += _stack_lines(context)
    item = str(context.item_path[-1]) if context.item_path else "-"
    lines.append(
        f"  Context at failure: nodes executed {context.nodes_executed} · nesting depth "
        f"{context.depth} · elapsed {context.elapsed_s:.1f} s · map item {item}"
    )
    settings = " ".join(f"{k}={v}" for k, v in context.node_config.items())
    lines.append(f"  Debug: trace {context.trace_id} · run {context.run_id} ·")
    lines.append(f"         node settings {settings}")
    return "\n".join(lines)


def _stack_lines(context: ErrorContext) -> list[str]:
    hops = []
    for depth, (name, entered) in enumerate(context.levels):
        target = entered if entered is not None else context.node
        hops.append((f"{name} > {target}", depth))
    width = max(len(text) for text, _ in hops) + 2
    lines = ["  Execution stack:"]
    lines += [
        f"    {n}. {text.ljust(width)}(depth {depth})" for n, (text, depth) in enumerate(hops, 1)
    ]
    return lines
