"""The callback interface and the context object every hook receives.

Hooks are called positionally from the coordinating process, never concurrently
within one run; ``ctx`` says where the event happened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    """Where one event happened, plus a key-value store shared by the whole run."""

    __slots__ = (
        "_metadata",
        "_store",
        "attempt",
        "config",
        "current_pipeline_id",
        "depth",
        "entered",
        "error",
        "hierarchy_path",
        "item_index",
        "item_path",
        "node_path",
        "parent_pipeline_id",
        "report",
        "run_id",
        "trace_id",
    )

    run_id: str
    trace_id: str
    depth: int
    hierarchy_path: tuple[str, ...]
    entered: tuple[str, ...]
    """Ids of the nested nodes that led from the root to this level (names them uniquely)."""
    current_pipeline_id: str
    parent_pipeline_id: str | None
    node_path: tuple[str, ...] | None
    item_index: int | None
    item_path: tuple[int, ...]
    attempt: int
    error: BaseException | None
    config: EffectiveConfig
    report: Any

    def __init__(
        self,
        *,
        store: dict[str, Any],
        metadata: Callable[[str], dict[str, Any]],
        **fields: Any,
    ) -> None:
        self._store = store
        self._metadata = metadata
        for key, value in fields.items():
            setattr(self, key, value)

    def get(self, key: str, default: Any = None) -> Any:
        """A value shared across the whole run and all its levels."""
        return self._store.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Share a value with every callback of this run."""
        self._store[key] = value

    def get_pipeline_metadata(self, pipeline_id: str) -> dict[str, Any]:
        """``total_nodes``, ``node_ids``, ``backend_label``, ``cache_label``, ``mapped``."""
        return self._metadata(pipeline_id)

    def __repr__(self) -> str:
        where = " > ".join(self.node_path or self.hierarchy_path)
        return f"CallbackContext({where}, depth={self.depth}, item={self.item_index})"
