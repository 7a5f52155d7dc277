"""The progress tree: its lines, and how they are drawn as styled text.

:class:`~nestflow.callbacks.progress.ProgressCallback` keeps the lines up to date from
events; this module turns them into ``(text, style)`` pieces, assembled as one string with
style spans (a rich ``Text``) or with the escape codes of a console, printed as it stands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

BAR = 30
"""Width of a progress bar, in characters."""

Rows = list[tuple[list[tuple[str, str]], float | None, str, bool]]
"""Per row: its (text, style) parts, the bar's fraction (None: no bar), the clock, and
whether it failed (a red bar)."""


class Line:
    """One line of the tree: a pipeline level or (``is_node``) a function node."""

    __slots__ = (
        "cached", "children", "done", "ended", "error", "failed", "is_node", "key", "labels",
        "mapped", "name", "next", "remote", "started", "total", "workers",
    )  # fmt: skip

    def __init__(
        self, name: str, key: tuple[str, ...], is_node: bool, started: float | None
    ) -> None:
        # Made for every node of every run: a plain class, cheaper to make than a dataclass.
        self.name, self.key, self.is_node, self.started = name, key, is_node, started
        self.labels = ""
        self.total, self.done, self.cached, self.failed = 1, 0, 0, 0
        self.error = ""
        self.ended: float | None = None
        self.mapped = False
        self.workers: int | None = None
        self.children: list[tuple[str, ...]] = []
        self.next: Line | None = None
        """In a sequential level, the step that starts when this one first completes."""
        self.remote = ""
        """The latest status a remote pipeline reported to this (``pipeline_call``) node."""


def pieces(
    lines: dict[tuple[str, ...], Line],
    roots: list[tuple[str, ...]],
    now: Callable[[], float],
    cell_len: Callable[[str], int],
) -> list[tuple[str, str]]:
    """The trees under ``roots`` as (text, style) pieces, bars aligned in one column."""
    rows: Rows = []
    for root in roots:
        if root in lines:
            _rows(lines, now, rows, root, "", "")
    widths = [
        sum(len(piece) if piece.isascii() else cell_len(piece) for piece, _ in parts)
        for parts, _, _, _ in rows
    ]
    drawn = [w for w, row in zip(widths, rows, strict=True) if row[1] is not None]
    width = max(drawn, default=0)
    found: list[tuple[str, str]] = []
    for number, (parts, fraction, clock, failed) in enumerate(rows):
        if number:
            found.append(("\n", ""))
        found += parts
        if fraction is None:
            continue
        filled = int(BAR * fraction)
        found.append((" " * (width - widths[number] + 1), ""))
        found.append(("━" * filled, "red" if failed else "green" if fraction >= 1 else "magenta"))
        found.append(("─" * (BAR - filled), "grey37"))
        found.append((f" {int(100 * fraction):>3d}% {clock}", ""))
    return found


def styled_text(rich: Any, found: list[tuple[str, str]]) -> Any:
    """The pieces as one rich ``Text``: one string and its style spans."""
    spans, offset = [], 0
    for piece, style in found:
        if style:
            spans.append(rich.text.Span(offset, offset + len(piece), style))
        offset += len(piece)
    plain = "".join(piece for piece, _ in found)
    return rich.text.Text(plain, no_wrap=True, overflow="ellipsis", spans=spans)


def escaped(found: list[tuple[str, str]], code: Callable[[str], tuple[str, str]]) -> str:
    """The pieces with the escape codes ``code(style)`` gives around each styled one."""
    out: list[str] = []
    for piece, style in found:
        if style and piece:
            start, end = code(style)
            out += (start, piece, end)
        else:
            out.append(piece)
    return "".join(out)


def _rows(
    lines: dict[tuple[str, ...], Line],
    now_of: Callable[[], float],
    rows: Rows,
    key: tuple[str, ...],
    lead: str,
    pad: str,
    halted: float | None = None,
) -> None:
    """The rows of ``key``'s line and of the lines below it.

    ``halted`` is when the level above stopped after a failure (its own, or a step's it
    continued past): a step of it that never ran is shown skipped, and a clock still
    running stops there.
    """
    line = lines[key]
    now = now_of()
    parts = [(lead, ""), (line.name, "bold" if not line.is_node else "")]
    if line.labels:
        parts.append((f" [{line.labels}]", "dim"))
    if line.is_node and line.cached and line.cached == line.done == line.total:
        parts.append((" ⚡ CACHED", "yellow"))
    if line.error:
        parts.append((f" ✗ {line.error}", "red"))
    elif halted is not None and not (line.done or line.failed or line.cached):
        parts.append((" skipped", "dim"))
    if line.mapped:
        parts.append((f" map {line.done}/{line.total}", ""))
    start = line.started
    elapsed = 0.0 if start is None else (line.ended or halted or now) - start
    hits_only = line.is_node and line.cached and line.cached == line.done  # no work: no time
    shown = "0:00:00" if hits_only else _clock(elapsed)
    failed = bool(line.error or line.failed)
    rows.append((parts, _fraction(lines, line), shown, failed))
    if line.mapped:
        rows.append(([(pad + "   " + _map_stats(line, elapsed), "dim")], None, "", False))
    if line.remote:
        rows.append(([(pad + "   ↳ " + line.remote, "dim")], None, "", False))
    below = _halted(lines, line)
    for position, child in enumerate(line.children):
        last = position == len(line.children) - 1
        branch = "└─ " if last else "├─ "
        _rows(lines, now_of, rows, child, pad + branch, pad + ("   " if last else "│  "), below)


def _halted(lines: dict[tuple[str, ...], Line], line: Line) -> float | None:
    """When the level ``line`` ended after a failure of its own or of a step; else None."""
    if line.is_node or line.ended is None:
        return None
    if line.error or any(lines[key].error for key in line.children):
        return line.ended
    return None


def _fraction(lines: dict[tuple[str, ...], Line], line: Line) -> float:
    """How much of a line is done well: its own count (a map's failed items are finished,
    not done), or (a level running, or stopped by a failure) its children's."""
    if not line.total:
        return 1.0
    if line.mapped:
        return max(0, min(line.done - line.failed, line.total)) / line.total
    if line.is_node or line.done >= line.total or not line.children:
        return min(line.done, line.total) / line.total
    parts = [_fraction(lines, lines[key]) for key in line.children]
    return sum(parts) / len(parts)


def _map_stats(line: Line, elapsed: float) -> str:
    rate = line.done / elapsed if elapsed > 0 else 0.0
    share = 100 * line.cached / line.done if line.done else 0.0
    stats = [
        f"{rate:.1f} items/s",
        f"cache hits {line.cached} ({share:.1f}%)",
        f"failed {line.failed}",
    ]
    if line.workers:
        stats.append(f"workers {line.workers}")
    return " · ".join(stats)


def _clock(seconds: float) -> str:
    whole = int(seconds)
    found = _CLOCKS.get(whole)
    if found is None:
        found = f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
        if len(_CLOCKS) < 4096:
            _CLOCKS[whole] = found
    return found


_CLOCKS: dict[int, str] = {}


REMOTE_WIDTH = 60
"""The longest remote status shown under a call node, in characters."""


def remote_status(event: Mapping[str, Any]) -> str:
    """``remote: summarise > split executed`` from one event of a remote run."""
    where = event.get("path") or event.get("node") or event.get("kind") or "?"
    parts = [str(where)]
    if isinstance(event.get("item_index"), int):
        parts.append(f"[item {event['item_index']}]")
    if event.get("status"):
        parts.append(str(event["status"]))
    text = "remote: " + " ".join(parts)
    return text if len(text) <= REMOTE_WIDTH else text[: REMOTE_WIDTH - 1] + "…"
