"""Where a failure happened: PEP 678 notes, ``exc.__nestflow__`` and ``format_error``.

The user's exception is never wrapped: it keeps its type and message and gains one
block of notes, added where the failure happened and never again on the way out.
"""

from __future__ import annotations

import contextlib
import traceback
from dataclasses import dataclass, field
from typing import Any

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
        """``outer > mid > inner > node``."""
        return " > ".join([*(name for name, _ in self.levels), self.node])


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
