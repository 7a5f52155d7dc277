"""The callback interface and the context object every hook receives.

Hooks are called positionally from the coordinating process, never concurrently
within one run; ``ctx`` says where the event happened.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from nestflow.core.config import EffectiveConfig
    from nestflow.runtime.report import RunReport

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

    def on_pipeline_start(
        self, pipeline_id: str, inputs: Mapping[str, Any], ctx: CallbackContext
    ) -> None:
        """A pipeline level starts (once per run, once around a whole map)."""

    def on_pipeline_end(
        self, pipeline_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        """A pipeline level ended, also on failure (``ctx.error`` is then set)."""

    def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: CallbackContext) -> None:
        """A function node is about to execute (once per attempt)."""

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        """A function node finished successfully."""

    def on_node_cached(self, node_id: str, signature: str, ctx: CallbackContext) -> None:
        """A function node was a cache hit."""

    def on_error(self, node_id: str, error: BaseException, ctx: CallbackContext) -> None:
        """A function node failed for good; fires once, at the failing node's level."""

    def on_nested_pipeline_start(self, parent_id: str, child_id: str, ctx: CallbackContext) -> None:
        """A nested pipeline starts; fired in the parent's context."""

    def on_nested_pipeline_end(
        self, parent_id: str, child_id: str, duration: float, ctx: CallbackContext
    ) -> None:
        """A nested pipeline ended; fired in the parent's context."""

    def on_map_start(self, node_id: str, total_items: int, ctx: CallbackContext) -> None:
        """A map begins."""

    def on_map_item_start(
        self, node_id: str, item_index: int, item: Mapping[str, Any], ctx: CallbackContext
    ) -> None:
        """A map item is dispatched."""

    def on_map_item_end(
        self, node_id: str, item_index: int, duration: float, ctx: CallbackContext
    ) -> None:
        """A map item finished (also on failure, with ``ctx.error`` set)."""

    def on_map_item_cached(
        self, node_id: str, item_index: int, signature: str, ctx: CallbackContext
    ) -> None:
        """A map item was resolved entirely from cache."""

    def on_map_end(self, node_id: str, total_duration: float, ctx: CallbackContext) -> None:
        """A map ended, after its last item."""

    def on_remote_event(self, node_id: str, event: Mapping[str, Any], ctx: CallbackContext) -> None:
        """Progress relayed from a remote pipeline call."""


class RunView(Protocol):
    """What a ``CallbackContext`` reads from the run an event belongs to."""

    @property
    def run_id(self) -> str: ...

    @property
    def trace_id(self) -> str: ...

    @property
    def store(self) -> MutableMapping[str, Any]:
        """The key-value store the callbacks of the run share."""
        ...

    @property
    def report(self) -> RunReport: ...

    def pipeline_metadata(self, pipeline_id: str) -> dict[str, Any]: ...


class PlanView(Protocol):
    """What a ``CallbackContext`` reads from the plan of a level: its pipeline's name."""

    @property
    def name(self) -> str: ...


class LevelView(Protocol):
    """What a ``CallbackContext`` reads from the pipeline level an event happened at.

    The runtime's ``Level`` provides it. ``entered`` must be the same object for a level and
    for each of its map items, and a new one for every other nested level of a run:
    :attr:`CallbackContext.level_key` relies on both.
    """

    @property
    def run(self) -> RunView: ...

    @property
    def depth(self) -> int: ...

    @property
    def hierarchy(self) -> tuple[str, ...]: ...

    @property
    def entered(self) -> tuple[str, ...]: ...

    @property
    def plan(self) -> PlanView: ...

    @property
    def item_path(self) -> tuple[int, ...]: ...

    @property
    def config(self) -> EffectiveConfig: ...


class CallbackContext:
    """Where one event happened, plus a key-value store shared by the whole run.

    Built for every event a callback listens to, so it is cheap to make: the location
    fields are read from the level when a callback asks for them.
    """

    __slots__ = ("_level", "attempt", "error", "level_key", "node_id")

    def __init__(
        self, level: LevelView, node_id: str | None, error: BaseException | None, attempt: int
    ) -> None:
        self._level = level
        self.node_id = node_id
        self.error = error
        self.attempt = attempt
        # A nested level's ``entered`` tuple is made for that level of that run, and shared
        # only by its map items; every root level has ``()``, so the run tells those apart.
        self.level_key: object = level.entered or level.run
        """An object that is the same (``is``) for every event of one level of one run.

        The items of a map share their level's key. Compare keys with ``is``: it is one
        attribute read per event, so a callback can tell cheaply whether an event comes from
        the level of the event before. Keys of different levels, or of different runs, are
        never the same object. A level entered twice (a nested pipeline inside each item of
        a map) gets a key per entry; to name a level stably, use ``(run_id, *entered)``.
        """

    @property
    def run_id(self) -> str:
        return self._level.run.run_id

    @property
    def trace_id(self) -> str:
        return self._level.run.trace_id

    @property
    def depth(self) -> int:
        return self._level.depth

    @property
    def hierarchy_path(self) -> tuple[str, ...]:
        return self._level.hierarchy

    @property
    def entered(self) -> tuple[str, ...]:
        """Ids of the nested nodes that led from the root to this level (names them uniquely)."""
        return self._level.entered

    @property
    def current_pipeline_id(self) -> str:
        return self._level.plan.name

    @property
    def parent_pipeline_id(self) -> str | None:
        hierarchy = self._level.hierarchy
        return hierarchy[-2] if len(hierarchy) > 1 else None

    @property
    def node_path(self) -> tuple[str, ...] | None:
        if self.node_id is None:
            return None
        return (*self._level.hierarchy, self.node_id)

    @property
    def item_index(self) -> int | None:
        items = self._level.item_path
        return items[-1] if items else None

    @property
    def item_path(self) -> tuple[int, ...]:
        return self._level.item_path

    @property
    def config(self) -> EffectiveConfig:
        return self._level.config

    @property
    def report(self) -> RunReport:
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
        return self._level.run.pipeline_metadata(pipeline_id)

    def __repr__(self) -> str:
        where = " > ".join(self.node_path or self.hierarchy_path)
        return f"CallbackContext({where}, depth={self.depth}, item={self.item_index})"
