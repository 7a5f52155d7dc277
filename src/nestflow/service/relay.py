"""The ``progress`` events of a streamed call (SPEC 12.3, 12.10): one JSON object per run event.

Every event has ``kind``, ``path`` (``root > nested node id > ... [> node]``), ``node`` (the
node, nested pipeline or map it is about; ``None`` for the pipeline itself), ``item_index``
(the map item it belongs to, else ``None``), ``status``, ``duration_s`` (when it ended) and
``cached``. Map starts add ``total``; a remote event relayed from a call the run makes adds
``remote`` (that event, as received).

=====================  ============  ===============================
kind                   status        from the hook
=====================  ============  ===============================
``pipeline_start``     ``running``   ``on_pipeline_start``
``pipeline_end``       ``ok``/``failed``  ``on_pipeline_end``
``node_start``         ``running``   ``on_node_start``
``node_end``           ``executed``  ``on_node_end``
``node_cached``        ``cached``    ``on_node_cached``
``node_error``         ``failed``    ``on_error``
``nested_start``       ``running``   ``on_nested_pipeline_start``
``nested_end``         ``ok``        ``on_nested_pipeline_end``
``map_start``          ``running``   ``on_map_start``
``map_item_end``       ``ok``/``failed``  ``on_map_item_end``
``map_item_cached``    ``cached``    ``on_map_item_cached``
``map_end``            ``ok``        ``on_map_end``
``remote``             its own       ``on_remote_event``
=====================  ============  ===============================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nestflow.callbacks.events import CallbackContext, PipelineCallback

Sink = Callable[[dict[str, Any]], None]


class Relay(PipelineCallback):
    """Turns the events of one run into ``progress`` dicts and hands each to ``sink``.

    Hooks run in the thread coordinating the run; ``sink`` must be safe to call from it.
    """

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def _send(
        self,
        kind: str,
        ctx: CallbackContext,
        node: str | None,
        status: str,
        duration: float | None = None,
        cached: bool = False,
        item: int | None = None,
        **more: Any,
    ) -> None:
        path = (*ctx.hierarchy_path[:1], *ctx.entered, *(() if node is None else (node,)))
        event = {
            "kind": kind,
            "path": " > ".join(path),
            "node": node,
            "item_index": ctx.item_index if item is None else item,
            "status": status,
            "duration_s": duration,
            "cached": cached,
            **more,
        }
        self._sink(event)

    def on_pipeline_start(
        self, pipeline_id: str, inputs: Mapping[str, Any], ctx: CallbackContext
    ) -> None:
        self._send("pipeline_start", ctx, None, "running")

    def on_pipeline_end(
        self, pipeline_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        self._send("pipeline_end", ctx, None, "failed" if ctx.error else "ok", duration)

    def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: CallbackContext) -> None:
        self._send("node_start", ctx, node_id, "running")

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        self._send("node_end", ctx, node_id, "executed", duration)

    def on_node_cached(self, node_id: str, signature: str, ctx: CallbackContext) -> None:
        self._send("node_cached", ctx, node_id, "cached", cached=True)

    def on_error(self, node_id: str, error: BaseException, ctx: CallbackContext) -> None:
        self._send("node_error", ctx, node_id, "failed", error_type=type(error).__name__)

    def on_nested_pipeline_start(self, parent_id: str, child_id: str, ctx: CallbackContext) -> None:
        self._send("nested_start", ctx, child_id, "running")

    def on_nested_pipeline_end(
        self, parent_id: str, child_id: str, duration: float, ctx: CallbackContext
    ) -> None:
        self._send("nested_end", ctx, child_id, "failed" if ctx.error else "ok", duration)

    def on_map_start(self, node_id: str, total_items: int, ctx: CallbackContext) -> None:
        self._send("map_start", ctx, node_id, "running", total=total_items)

    def on_map_item_end(
        self, node_id: str, item_index: int, duration: float, ctx: CallbackContext
    ) -> None:
        status = "failed" if ctx.error else "ok"
        self._send("map_item_end", ctx, node_id, status, duration, item=item_index)

    def on_map_item_cached(
        self, node_id: str, item_index: int, signature: str, ctx: CallbackContext
    ) -> None:
        self._send("map_item_cached", ctx, node_id, "cached", cached=True, item=item_index)

    def on_map_end(self, node_id: str, total_duration: float, ctx: CallbackContext) -> None:
        self._send("map_end", ctx, node_id, "ok", total_duration)

    def on_remote_event(self, node_id: str, event: Mapping[str, Any], ctx: CallbackContext) -> None:
        status = event.get("status")
        shown = status if isinstance(status, str) else "running"
        self._send("remote", ctx, node_id, shown, remote=dict(event))
