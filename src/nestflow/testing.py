"""Helpers for testing pipelines and extensions: a recording callback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nestflow.callbacks.events import CallbackContext, PipelineCallback


class RecordingCallback(PipelineCallback):
    """Keeps every event as ``(hook, args..., ctx)`` tuples, in arrival order.

    ``events`` holds compact tuples such as ``("node_start", "double")`` for easy
    assertions; ``contexts`` the matching ``CallbackContext`` objects.
    """

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.contexts: list[CallbackContext] = []

    def _add(self, event: tuple[Any, ...], ctx: CallbackContext) -> None:
        self.events.append(event)
        self.contexts.append(ctx)

    def names(self, kind: str) -> list[str]:
        """The ids carried by every event of one kind, for example ``names("node_start")``."""
        return [e[1] for e in self.events if e[0] == kind]

    def on_pipeline_start(self, pipeline_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
        self._add(("pipeline_start", pipeline_id), ctx)

    def on_pipeline_end(
        self, pipeline_id: str, outputs: Mapping[str, Any], duration: float, ctx: Any
    ) -> None:
        self._add(("pipeline_end", pipeline_id), ctx)

    def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
        self._add(("node_start", node_id), ctx)

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: Any
    ) -> None:
        self._add(("node_end", node_id), ctx)

    def on_node_cached(self, node_id: str, signature: str, ctx: Any) -> None:
        self._add(("node_cached", node_id), ctx)

    def on_error(self, node_id: str, error: BaseException, ctx: Any) -> None:
        self._add(("error", node_id, type(error).__name__), ctx)

    def on_nested_pipeline_start(self, parent_id: str, child_id: str, ctx: Any) -> None:
        self._add(("nested_start", parent_id, child_id), ctx)

    def on_nested_pipeline_end(
        self, parent_id: str, child_id: str, duration: float, ctx: Any
    ) -> None:
        self._add(("nested_end", parent_id, child_id), ctx)

    def on_map_start(self, node_id: str, total_items: int, ctx: Any) -> None:
        self._add(("map_start", total_items), ctx)

    def on_map_item_start(
        self, node_id: str, item_index: int, item: Mapping[str, Any], ctx: Any
    ) -> None:
        self._add(("item_start", item_index), ctx)

    def on_map_item_end(self, node_id: str, item_index: int, duration: float, ctx: Any) -> None:
        self._add(("item_end", item_index), ctx)

    def on_map_item_cached(self, node_id: str, item_index: int, signature: str, ctx: Any) -> None:
        self._add(("item_cached", item_index), ctx)

    def on_map_end(self, node_id: str, total_duration: float, ctx: Any) -> None:
        self._add(("map_end",), ctx)
