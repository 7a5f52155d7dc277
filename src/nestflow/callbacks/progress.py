"""ProgressCallback: a live tree of progress bars mirroring the nesting (extra ``progress``).

Events only update a small model (one line per pipeline level and function node); rich's
``Live`` redraws it at most ``refresh_per_second`` times from its own thread, so progress
costs little even on big maps. A console that is not interactive (a file, CI) gets the
final tree once, when the root pipeline ends.
"""

from __future__ import annotations

import importlib.util
import itertools
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nestflow.callbacks.events import CallbackContext, PipelineCallback
from nestflow.callbacks.progress_tree import Line, escaped, pieces, remote_status, styled_text
from nestflow.core.gates import is_private

if TYPE_CHECKING:
    from nestflow.core.config import EffectiveConfig

_INSTALL = "pip install 'nestflow[progress]'"


def _rich() -> Any:
    try:
        import rich.cells
        import rich.console
        import rich.live
        import rich.text
    except ImportError as exc:
        raise ImportError(
            f"ProgressCallback needs `rich`, which is not installed. Install it with: {_INSTALL}"
        ) from exc
    return rich


class ProgressCallback(PipelineCallback):
    """Hierarchical progress bars: one line per level and (``show_nodes``) per function node.

    Cache hits show ``⚡ CACHED``; map levels show done/total, items per second, cache hits,
    failures and workers; with ``show_config`` each level shows its backend and cache labels
    (``*`` explicit, ``↓`` inherited). ``console`` and ``get_time`` can be injected (tests).
    """

    def __init__(
        self,
        show_nodes: bool = True,
        show_config: bool = True,
        transient: bool = False,
        console: Any = None,
        get_time: Callable[[], float] | None = None,
        refresh_per_second: float = 8.0,
        delay: float = 0.2,
    ) -> None:
        self._rich = _rich()
        self.show_nodes = show_nodes
        self.show_config = show_config
        self.transient = transient
        self.console = console or self._rich.console.Console()
        self.get_time = get_time or time.monotonic
        self.refresh_per_second = refresh_per_second
        self._lock = threading.Lock()
        self._lines: dict[tuple[str, ...], Line] = {}
        self._nodes: dict[tuple[str, ...], dict[str, Line]] = {}
        """Node lines by level key, then node id: one lookup per event, no tuple built."""
        self._last: tuple[object, tuple[str, ...], dict[str, Line]] = (None, (), {})
        """The ``level_key`` of the last event's level, that level's line key and node lines."""
        self._maps: dict[tuple[str, ...], tuple[int, set[tuple[int, ...]]]] = {}
        """Per map line: how many indices an item's path has, and the failed items' paths."""
        self._roots: list[tuple[str, ...]] = []
        """Root lines of the runs on display; runs sharing this callback get a tree each."""
        self._active = 0
        self.delay = delay
        """Seconds before the live display appears: a quicker run just prints its final tree."""
        self._live: Any = None
        self._display_lock = threading.Lock()
        self._wake = threading.Condition(self._display_lock)
        self._waker: threading.Thread | None = None
        self._live_at = 0.0
        self._running = False
        self._styled: tuple[Any, dict[str, tuple[str, str]]] | None = None

    # --- model -------------------------------------------------------------------------------

    def _line(
        self,
        key: tuple[str, ...],
        is_node: bool,
        ctx: CallbackContext | None,
        started: float | None = 0.0,
    ) -> Line:
        line = self._lines.get(key)
        if line is None:
            begun = self.get_time() if started is not None else None
            line = self._lines[key] = Line(key[-1], key, is_node, begun)
            parent = self._lines.get(key[:-1])
            if parent is not None:
                parent.children.append(key)
        if not is_node and ctx is not None and self.show_config and not line.labels:
            line.labels = _labels(ctx.config)  # a level drawn before it started gets them now
        return line

    def _level(self, ctx: CallbackContext) -> Line:
        return self._line(self._where(ctx)[0], False, ctx)

    def _where(self, ctx: CallbackContext) -> tuple[tuple[str, ...], dict[str, Line]]:
        """The key of the event's level and its node lines (the caller holds the lock)."""
        last = self._current(ctx)
        if last is not None:
            return last[1], last[2]
        key = _key(ctx)
        nodes = self._nodes.setdefault(key, {})
        self._last = (ctx.level_key, key, nodes)
        return key, nodes

    def _current(
        self, ctx: CallbackContext
    ) -> tuple[object, tuple[str, ...], dict[str, Line]] | None:
        """``_last`` (level key, line key, node lines) if the event's level is the level of
        the event before, or another item of the same map (``ctx.level_key``). Safe without
        the lock: ``_last`` is replaced, never changed.
        """
        last = self._last
        return last if ctx.level_key is last[0] else None

    def _node(self, node_id: str, ctx: CallbackContext) -> Line | None:
        if not self.show_nodes:
            return None
        key, nodes = self._where(ctx)
        line = nodes.get(node_id)
        if line is not None:  # a node seen before (every item of a map)
            return line
        owner = self._lines.get(key)
        line = nodes[node_id] = self._line((*key, node_id), True, ctx)
        if owner is not None and owner.mapped:
            line.total = owner.total
        return line

    def _counted(self, node_id: str, ctx: CallbackContext) -> Line | None:
        """The line a node event counts on: found without the lock in the common case.

        Counts change only from the thread delivering this run's events (the runtime never
        fires one run's hooks concurrently); the lock guards the shape of the tree.
        """
        last = self._current(ctx)
        line = None if last is None else last[2].get(node_id)
        if line is None:
            if is_private(node_id):  # a front end's own wiring: not shown
                return None
            with self._lock:
                line = self._node(node_id, ctx)
        return line

    def _steps(self, key: tuple[str, ...], ctx: CallbackContext) -> None:
        """Lines for the steps a level will take, in order, drawn before they run."""
        meta = ctx.get_pipeline_metadata(ctx.current_pipeline_id)
        nested = meta.get("nested_node_ids", ())
        nodes = self._nodes.setdefault(key, {})
        drawn: list[Line] = []
        for step_id in meta.get("selected_node_ids", ()):
            if is_private(step_id):
                continue
            if step_id in nested:
                drawn.append(self._line((*key, step_id), False, None, started=None))
            elif self.show_nodes and step_id not in nodes:
                nodes[step_id] = self._line((*key, step_id), True, None, started=None)
                drawn.append(nodes[step_id])
        if drawn and ctx.config.backend.node_execution == "sequential":
            # One step after the other: each starts when the one before first completes,
            # so a running node shows its own time without a hook per node start.
            drawn[0].started = self.get_time()
            for before, after in itertools.pairwise(drawn):
                before.next = after

    # --- hooks -------------------------------------------------------------------------------

    def on_pipeline_start(
        self, pipeline_id: str, inputs: Mapping[str, Any], ctx: CallbackContext
    ) -> None:
        first = False
        with self._lock:
            if ctx.depth == 0:
                first = self._active == 0
                if first:  # a new display: the trees of earlier runs are gone
                    self._lines.clear()
                    self._nodes.clear()
                    self._maps.clear()
                    self._last = (None, (), {})
                    self._roots.clear()
                self._active += 1
                self._roots.append(_key(ctx))
            line = self._level(ctx)
            if line.started is None:  # drawn before it started
                line.started = self.get_time()
            if not line.children:
                self._steps(self._where(ctx)[0], ctx)
        if first:
            self._start()

    def on_pipeline_end(
        self, pipeline_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        last = False
        with self._lock:
            line = self._level(ctx)
            if ctx.error is not None:
                # Marked, and its clock stopped; nothing more is done, and the step after
                # it never starts: a failed run's bars show how far it got.
                line.error = line.error or type(ctx.error).__name__
                line.ended = self.get_time()
            elif not line.mapped or ctx.item_index is None:
                line.ended = self.get_time()
                line.done = line.total
                if line.next is not None and line.next.started is None:
                    line.next.started = line.ended
            if ctx.depth == 0:
                self._active -= 1
                last = self._active == 0
        if last:  # the display ends with the last of the runs on it
            self._last = (None, (), {})  # no run's level is held past its end
            self._stop()

    # Node lines are drawn when their level starts and counted when a node ends, is a hit
    # or fails: no hook per node start, which on a big map would cost as much as the rest.

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        line = self._counted(node_id, ctx)
        if line is not None:
            self._finished(line, duration)

    def on_node_cached(self, node_id: str, signature: str, ctx: CallbackContext) -> None:
        line = self._counted(node_id, ctx)
        if line is not None:
            line.cached += 1
            self._finished(line, 0.0)

    def on_remote_event(self, node_id: str, event: Mapping[str, Any], ctx: CallbackContext) -> None:
        """The latest status of the remote run a ``pipeline_call`` node waits for, under it."""
        line = self._counted(node_id, ctx)
        if line is not None:
            line.remote = remote_status(event)

    def _finished(self, line: Line, duration: float) -> None:
        """Count one completion of ``line``, which took ``duration``; its next step starts."""
        now = self.get_time()
        if line.started is None:
            line.started = now - duration
        line.done += 1
        line.ended = now
        if line.next is not None and line.next.started is None:
            line.next.started = now

    def on_error(self, node_id: str, error: BaseException, ctx: CallbackContext) -> None:
        line = self._counted(node_id, ctx)
        if line is not None:
            now = self.get_time()
            if line.started is None:
                line.started = now
            line.failed += 1
            line.error = type(error).__name__
            line.ended = now
        if ctx.item_path:  # also when the node continues past it: the item counts as failed
            with self._lock:
                self._item_failed(self._where(ctx)[0], ctx.item_path)

    def _item_failed(self, key: tuple[str, ...], item_path: tuple[int, ...]) -> None:
        """Count the item at ``item_path`` as failed on the map lines from ``key`` up.

        Once per item: a failing node and the end of its item both report it.
        """
        for end in range(len(key), 1, -1):
            found = self._maps.get(key[:end])
            if found is None:
                continue
            depth, failed = found
            item = item_path[:depth]
            if len(item) == depth and item not in failed:
                failed.add(item)
                self._lines[key[:end]].failed += 1

    def on_map_start(self, node_id: str, total_items: int, ctx: CallbackContext) -> None:
        with self._lock:
            line = self._level(ctx)
            line.mapped, line.total, line.started = True, total_items, self.get_time()
            line.workers = _workers(ctx.config)
            self._maps.setdefault(line.key, (len(ctx.item_path) + 1, set()))
            for child in self._where(ctx)[1].values():  # nodes drawn before the map started
                child.total = total_items

    def on_map_item_end(
        self, node_id: str, item_index: int, duration: float, ctx: CallbackContext
    ) -> None:
        line = self._map_line(ctx)
        line.done += 1
        if ctx.error is not None:
            with self._lock:
                self._item_failed(line.key, ctx.item_path)

    def _map_line(self, ctx: CallbackContext) -> Line:
        last = self._current(ctx)
        line = None if last is None else self._lines.get(last[1])
        if line is None:
            with self._lock:
                line = self._level(ctx)
        return line

    def on_map_item_cached(
        self, node_id: str, item_index: int, signature: str, ctx: CallbackContext
    ) -> None:
        line = self._map_line(ctx)  # its nodes report their own hits (on_node_cached)
        line.done += 1
        line.cached += 1

    def on_map_end(self, node_id: str, total_duration: float, ctx: CallbackContext) -> None:
        with self._lock:
            self._level(ctx).ended = self.get_time()

    # --- drawing -----------------------------------------------------------------------------

    def _start(self) -> None:
        if not self._can_go_live():
            return  # a file, CI, or a notebook without ipywidgets: the final tree only
        with self._wake:
            self._running = True
            self._live_at = time.monotonic() + self.delay
            if self.delay > 0:
                # One waiting thread per callback, not one per run: starting a thread costs
                # about as much as a short run's whole progress.
                if self._waker is None or not self._waker.is_alive():
                    self._waker = threading.Thread(
                        target=self._show_when_due,
                        args=(weakref.ref(self),),
                        name="nestflow-progress",
                        daemon=True,
                    )
                    self._waker.start()
                self._wake.notify()
        if self.delay <= 0:
            self._go_live()

    def _can_go_live(self) -> bool:
        console = self.console
        if console.is_jupyter:  # rich draws a live display there into an ipywidgets Output
            return importlib.util.find_spec("ipywidgets") is not None
        return bool(console.is_terminal)

    @staticmethod
    def _show_when_due(owner: weakref.ref[ProgressCallback]) -> None:
        """The waiting thread: go live when a run outlasts the delay; gone with its callback."""
        while True:
            callback = owner()
            if callback is None:
                return
            with callback._wake:
                due = callback._due()
                if due is None or due > 0:
                    callback._wake.wait(1.0 if due is None else due)
            if due is not None and due <= 0:
                callback._go_live()
            del callback  # held only while waiting: the callback can be collected

    def _due(self) -> float | None:
        """Seconds until the live display is due; None when nothing waits for it."""
        if not self._running or self._live is not None:
            return None
        return self._live_at - time.monotonic()

    def _go_live(self) -> None:
        with self._display_lock:
            if not self._running or self._live is not None:
                return
            self._live = self._rich.live.Live(
                _Renderable(self),
                console=self.console,
                refresh_per_second=self.refresh_per_second,
                transient=self.transient,
            )
            self._live.start()

    def _stop(self) -> None:
        with self._wake:
            self._running = False
            live, self._live = self._live, None
            self._wake.notify()
        if live is not None:
            if self.console.is_jupyter:  # rich leaves a notebook display at its last refresh
                live.refresh()
            live.stop()
        elif not self.transient:
            self._print_final()

    def _print_final(self) -> None:
        # What console.print(self.render(), soft_wrap=True) writes, made directly: rich takes
        # about 20 µs per line to lay out a text it will neither wrap nor crop, which would
        # be most of a short run (printing one prepared segment through rich still costs
        # about 60 µs). Recording and notebook consoles, and consoles in the middle of a
        # capture or a live display, still go through rich: rich has no public way to ask
        # for those, so its Console's attributes are read with defaults that choose rich.
        console = self.console
        if console.quiet:
            return
        if (
            console.record
            or console.is_jupyter
            or console.legacy_windows
            or getattr(console, "_buffer_index", 1)  # inside capture() or another buffer
            or getattr(console, "_live_stack", True)  # under a live display of the caller's
        ):
            console.print(self.render(), soft_wrap=True)
            return
        codes = self._codes()

        def code(style: str) -> tuple[str, str]:
            return codes.get(style) or codes.setdefault(style, self._code(style))

        drawn = escaped(self._pieces(), code) + "\n"
        with console._lock:  # rich's own lock: not interleaved with other prints
            console.file.write(drawn)
            console.file.flush()

    def _codes(self) -> dict[str, tuple[str, str]]:
        console = self.console
        if self._styled is None or self._styled[0] is not console:
            self._styled = (console, {})
        return self._styled[1]

    def _code(self, style: str) -> tuple[str, str]:
        """The escape codes rich writes around text in ``style`` on this console."""
        console = self.console
        found = console.get_style(style)
        if console.no_color:
            found = found.without_color
        system = self._rich.console.COLOR_SYSTEMS.get(console.color_system or "")
        marker = "\x00"
        text = found.render(marker, color_system=system, legacy_windows=console.legacy_windows)
        start, _, end = text.partition(marker)
        return start, end

    def render(self) -> Any:
        """The tree as one rich ``Text`` (what the live display shows).

        The text is assembled here as one string plus style spans: a rich table of a hundred
        rows, or a hundred ``Text.append`` calls each, cost milliseconds per refresh.
        """
        return styled_text(self._rich, self._pieces())

    def _pieces(self) -> list[tuple[str, str]]:
        with self._lock:
            return pieces(self._lines, self._roots, self.get_time, self._rich.cells.cell_len)


class _Renderable:
    """What ``Live`` redraws: the callback's current tree."""

    def __init__(self, callback: ProgressCallback) -> None:
        self.callback = callback

    def __rich__(self) -> Any:
        return self.callback.render()


def _key(ctx: CallbackContext) -> tuple[str, ...]:
    """A level's line: the run, the root pipeline's name, then the ids of the nested nodes."""
    return (ctx.run_id, ctx.hierarchy_path[0], *ctx.entered)


def _labels(config: EffectiveConfig) -> str:
    parts = []
    for aspect, text in (
        ("backend", config.backend.label),
        ("cache", "No cache" if config.cache is None else config.cache.label),
    ):
        source = config.source(aspect)
        parts.append(
            f"↓ {text}" if source == "inherited" else f"{text}*" if source == "explicit" else text
        )
    return ", ".join(parts)


def _workers(config: EffectiveConfig) -> int | None:
    backend = config.backend
    mode = getattr(backend, "map_execution", "sequential")
    count = getattr(backend, "workers", None)
    if mode == "sequential" or not callable(count):
        return None
    found: int = count(mode)
    return found
