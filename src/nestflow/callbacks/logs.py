"""LoggingCallback: one standard ``logging`` record per event, as JSON or as indented text."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from nestflow.callbacks.events import CallbackContext, PipelineCallback
from nestflow.core.gates import ERROR_SUFFIX


class LoggingCallback(PipelineCallback):
    """Log every event through ``logging`` (logger ``nestflow`` unless one is given).

    Structured records are JSON objects with ``event``, ``run_id``, ``pipeline``, ``node``,
    ``path``, ``depth``, ``item_index``, ``duration_s``, ``cached``, ``signature`` (12 hex
    characters), ``attempt``, ``error_type`` and ``error_message``; the same dict is attached
    to the log record as ``record.nestflow`` for handlers that want fields, not text.
    ``path`` is the root pipeline, the ids of the nested nodes that entered each level and
    the node (``retrieval > encode_corpus > embed``); ``pipeline`` is the level's pipeline.
    Failures are logged at ``ERROR``; a node whose call failed as data (a ``pipeline_call``
    publishing ``<key>._error``) ends at ``WARNING`` with that error's type and message;
    everything else at ``level``, the progress of a remote run (``on_remote_event``) with its
    event as ``remote``.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        level: int = logging.INFO,
        structured: bool = True,
    ) -> None:
        self.logger = logger or logging.getLogger("nestflow")
        self.level = level
        self.structured = structured

    def _log(
        self, event: str, ctx: CallbackContext, node: str | None = None, **fields: Any
    ) -> None:
        error = fields.pop("error", None) or ctx.error
        failure: Mapping[str, Any] | None = fields.pop("failure", None)
        # Levels are named by the ids of the nodes that entered them: one pipeline nested by
        # two nodes would otherwise log both under the same path.
        where = (ctx.hierarchy_path[0], *ctx.entered)
        if ctx.node_id is not None:  # a node's event (a map's names the level it maps)
            where = (*where, ctx.node_id)
        record: dict[str, Any] = {
            "event": event,
            "run_id": ctx.run_id,
            "pipeline": ctx.current_pipeline_id,
            "node": node,
            "path": " > ".join(where),
            "depth": ctx.depth,
            "item_index": ctx.item_index,
            "duration_s": fields.get("duration_s"),
            "cached": fields.get("cached", False),
            "signature": (fields.get("signature") or "")[:12] or None,
            "attempt": ctx.attempt,
            "error_type": type(error).__name__ if error is not None else None,
            "error_message": str(error) if error is not None else None,
        }
        level = logging.ERROR if error is not None else self.level
        if failure is not None:
            record["error_type"], record["error_message"] = failure["type"], failure["message"]
            level = max(level, logging.WARNING)
        if "remote" in fields:
            record["remote"] = fields["remote"]
        if not self.logger.isEnabledFor(level):
            return
        text = json.dumps(record, default=repr) if self.structured else _line(record)
        self.logger.log(level, text, extra={"nestflow": record})

    # --- hooks ------------------------------------------------------------------------------

    def on_pipeline_start(
        self, pipeline_id: str, inputs: Mapping[str, Any], ctx: CallbackContext
    ) -> None:
        self._log("pipeline_start", ctx)

    def on_pipeline_end(
        self, pipeline_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        self._log("pipeline_end", ctx, duration_s=duration)

    def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: CallbackContext) -> None:
        self._log("node_start", ctx, node_id)

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        self._log("node_end", ctx, node_id, duration_s=duration, failure=_failure(outputs))

    def on_node_cached(self, node_id: str, signature: str, ctx: CallbackContext) -> None:
        self._log("node_cached", ctx, node_id, cached=True, signature=signature, duration_s=0.0)

    def on_error(self, node_id: str, error: BaseException, ctx: CallbackContext) -> None:
        self._log("error", ctx, node_id, error=error)

    def on_map_start(self, node_id: str, total_items: int, ctx: CallbackContext) -> None:
        self._log("map_start", ctx, node_id)

    def on_map_item_end(
        self, node_id: str, item_index: int, duration: float, ctx: CallbackContext
    ) -> None:
        self._log("map_item_end", ctx, node_id, duration_s=duration)

    def on_map_item_cached(
        self, node_id: str, item_index: int, signature: str, ctx: CallbackContext
    ) -> None:
        self._log("map_item_cached", ctx, node_id, cached=True, signature=signature)

    def on_map_end(self, node_id: str, total_duration: float, ctx: CallbackContext) -> None:
        self._log("map_end", ctx, node_id, duration_s=total_duration)

    def on_remote_event(self, node_id: str, event: Mapping[str, Any], ctx: CallbackContext) -> None:
        self._log("remote_event", ctx, node_id, remote=dict(event))


def _failure(outputs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The error a node published as data (``<key>._error``: a failed ``pipeline_call``)."""
    for name, value in outputs.items():
        if (
            name.endswith(ERROR_SUFFIX)
            and isinstance(value, Mapping)
            and "type" in value
            and "message" in value
        ):
            return value
    return None


def _line(record: dict[str, Any]) -> str:
    """``  node_end outer > inner > clean [item 2] 1.4 ms``: indented by depth."""
    parts = ["  " * record["depth"] + record["event"], record["path"]]
    if record["item_index"] is not None:
        parts.append(f"[item {record['item_index']}]")
    if record["cached"]:
        parts.append("cached")
    if record["duration_s"] is not None and not record["cached"]:
        parts.append(f"{record['duration_s'] * 1e3:.1f} ms")
    if record["error_type"]:
        parts.append(f"{record['error_type']}: {record['error_message']}")
    return " ".join(parts)
