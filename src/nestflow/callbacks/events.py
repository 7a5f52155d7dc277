"""The callback interface and the context object every hook receives.

Hooks are called positionally from the coordinating process, never concurrently
within one run; ``ctx`` says where the event happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nestflow.core.config import EffectiveConfig

HOOKS = (
    "on_pipeline_start",
    "on_pipeline_end",
    "on_node_start",
    "on_node_end",
    "on_node_cached",
    "on_error",
    "on_nested_pipeline_start",
    "on_nested_pipeline_end",
    "on_map_start",
    "on_map_item_start",
    "on_map_item_end",
    "on_map_item_cached",
    "on_map_end",
    "on_remote_event",
)


class PipelineCallback:
    """Base class of callbacks: override the hooks you need; every hook is a no-op here."""

    def on_pipeline_start(self, pipeline_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
        """A pipeline level starts (once per run, once around a whole map)."""

    def on_pipeline_end(
        self, pipeline_id: str, outputs: Mapping[str, Any], duration: float, ctx: Any
    ) -> None:
        """A pipeline level ended, also on failure (``ctx.error`` is then set)."""

    def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
        """A function node is about to execute (once per attempt)."""

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: Any
    ) -> None:
        """A function node finished successfully."""

    def on_node_cached(self, node_id: str, signature: str, ctx: Any) -> None:
        """A function node was a cache hit."""

    def on_error(self, node_id: str, error: BaseException, ctx: Any) -> None:
        """A function node failed for good; fires once, at the failing node's level."""

    def on_nested_pipeline_start(self, parent_id: str, child_id: str, ctx: Any) -> None:
        """A nested pipeline starts; fired in the parent's context."""

    def on_nested_pipeline_end(
        self, parent_id: str, child_id: str, duration: float, ctx: Any
    ) -> None:
        """A nested pipeline ended; fired in the parent's context."""

    def on_map_start(self, node_id: str, total_items: int, ctx: Any) -> None:
        """A map begins."""

    def on_map_item_start(
        self, node_id: str, item_index: int, item: Mapping[str, Any], ctx: Any
    ) -> None:
        """A map item is dispatched."""

    def on_map_item_end(self, node_id: str, item_index: int, duration: float, ctx: Any) -> None:
        """A map item finished (also on failure, with ``ctx.error`` set)."""

    def on_map_item_cached(self, node_id: str, item_index: int, signature: str, ctx: Any) -> None:
        """A map item was resolved entirely from cache."""

    def on_map_end(self, node_id: str, total_duration: float, ctx: Any) -> None:
        """A map ended, after its last item."""

    def on_remote_event(self, node_id: str, event: Mapping[str, Any], ctx: Any) -> None:
        """Progress relayed from a remote pipeline call."""


class CallbackContext:
    """Where one event happened, plus a key-value store shared by the whole run.

    Built for every event a callback listens to, so it is cheap to make: the location
    fields are read from the level when a callback asks for them.
    """

    __slots__ = ("_level", "attempt", "error", "node_id")

    def __init__(
        self, level: Any, node_id: str | None, error: BaseException | None, attempt: int
    ) -> None:
        self._level = level
        self.node_id = node_id
        self.error = error
        self.attempt = attempt

    @property
    def run_id(self) -> str:
        return str(self._level.run.run_id)

    @property
    def trace_id(self) -> str:
        return str(self._level.run.trace_id)

    @property
    def depth(self) -> int:
        return int(self._level.depth)

    @property
    def hierarchy_path(self) -> tuple[str, ...]:
        return tuple(self._level.hierarchy)

    @property
    def entered(self) -> tuple[str, ...]:
        """Ids of the nested nodes that led from the root to this level (names them uniquely)."""
        return tuple(self._level.entered)

    @property
    def current_pipeline_id(self) -> str:
        return str(self._level.plan.name)

    @property
    def parent_pipeline_id(self) -> str | None:
        hierarchy = self._level.hierarchy
        return str(hierarchy[-2]) if len(hierarchy) > 1 else None

    @property
    def node_path(self) -> tuple[str, ...] | None:
        if self.node_id is None:
            return None
        return (*self._level.hierarchy, self.node_id)

    @property
    def item_index(self) -> int | None:
        items = self._level.item_path
        return int(items[-1]) if items else None

    @property
    def item_path(self) -> tuple[int, ...]:
        return tuple(self._level.item_path)

    @property
    def config(self) -> EffectiveConfig:
        found: EffectiveConfig = self._level.config
        return found

    @property
    def report(self) -> Any:
        return self._level.run.report

    def get(self, key: str, default: Any = None) -> Any:
        """A value shared across the whole run and all its levels."""
        return self._level.run.store.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Share a value with every callback of this run."""
        self._level.run.store[key] = value

    def get_pipeline_metadata(self, pipeline_id: str) -> dict[str, Any]:
        """``total_nodes``, ``node_ids``, ``selected_node_ids`` (the steps this run takes, in
        order), ``nested_node_ids`` (those that are pipelines), ``backend_label``,
        ``cache_label``, ``mapped``."""
        found: dict[str, Any] = self._level.run.pipeline_metadata(pipeline_id)
        return found

    def __repr__(self) -> str:
        where = " > ".join(self.node_path or self.hierarchy_path)
        return f"CallbackContext({where}, depth={self.depth}, item={self.item_index})"
