"""TelemetryCallback: OpenTelemetry spans mirroring the run's hierarchy (extra ``otel``).

Spans: ``pipeline <name>`` per level, ``node <name>`` per function node (cache hits too,
with no work), ``map <node>`` per map and ``item <node>[<i>]`` per map item. A span's parent
is the innermost open span of the level instance it belongs to: a level's container is its
pipeline span, during a map its map span, inside an item that item's span. All events come
from the coordinating thread, so the bookkeeping needs no lock.

While a node runs, its span is the current span of the user's function: the runtime asks
``carrier`` for a W3C ``traceparent`` and attaches it in the thread, process or dask worker
that runs the function, so spans opened by user code nest under the node.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

from nestflow.callbacks.events import CallbackContext, PipelineCallback

_INSTALL = "pip install 'nestflow[otel]'"
Key = tuple[tuple[str, ...], tuple[int, ...]]


def _otel() -> Any:
    try:
        from opentelemetry import propagate, trace
    except ImportError as exc:
        raise ImportError(
            f"TelemetryCallback needs OpenTelemetry, which is not installed. Install it with: "
            f"{_INSTALL}"
        ) from exc
    return trace, propagate


class TelemetryCallback(PipelineCallback):
    """Emit OpenTelemetry spans for pipelines, nested pipelines, nodes, maps and map items."""

    def __init__(
        self,
        tracer_provider: Any = None,
        trace_map_items: bool = True,
        sample_rate: float = 1.0,
        record_values: bool = False,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """``attributes`` are set on every span this callback makes (str, bool, int, float
        values, or lists of them; anything else as its JSON text)."""
        self._trace, self._propagate = _otel()
        self.attributes = {str(k): _attribute(v) for k, v in (attributes or {}).items()}
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, got {sample_rate!r}.")
        provider = tracer_provider or self._trace.get_tracer_provider()
        self.tracer = provider.get_tracer("nestflow")
        self.trace_map_items = trace_map_items
        self.sample_rate = sample_rate
        self.record_values = record_values
        self._containers: dict[Key, list[Any]] = {}
        self._nodes: dict[tuple[Key, str], Any] = {}
        self._random = random.Random()

    # --- bookkeeping -------------------------------------------------------------------------

    def _parent(self, entered: tuple[str, ...], item_path: tuple[int, ...]) -> Any:
        """The context whose span parents a new span at this level instance."""
        while True:
            stack = self._containers.get((entered, item_path))
            if stack:
                return self._trace.set_span_in_context(stack[-1])
            if item_path:
                item_path = item_path[:-1]
            elif entered:
                entered = entered[:-1]
            else:
                return None  # the caller's current context: a run inside a user span nests

    def _start(self, name: str, parent: Any, ctx: CallbackContext, **attributes: Any) -> Any:
        span = self.tracer.start_span(name, context=parent)
        span.set_attribute("nestflow.run_id", ctx.run_id)
        span.set_attribute("nestflow.pipeline", ctx.current_pipeline_id)
        where = (ctx.hierarchy_path[0], *ctx.entered)  # nested node ids: levels told apart
        node = () if ctx.node_id is None else (ctx.node_id,)
        span.set_attribute("nestflow.path", " > ".join((*where, *node)))
        span.set_attribute("nestflow.depth", ctx.depth)
        span.set_attribute("nestflow.backend", ctx.config.backend.label)
        if ctx.item_index is not None:
            span.set_attribute("nestflow.item_index", ctx.item_index)
        for key, value in self.attributes.items():
            span.set_attribute(key, value)
        for key, value in attributes.items():
            if value is not None:
                span.set_attribute(f"nestflow.{key}", value)
        return span

    def _end(self, span: Any, error: BaseException | None) -> None:
        if error is not None:
            span.record_exception(error)
            status = self._trace.Status(self._trace.StatusCode.ERROR, f"{type(error).__name__}")
            span.set_status(status)
        span.end()

    def _push(self, key: Key, span: Any) -> None:
        self._containers.setdefault(key, []).append(span)

    def _pop(self, key: Key, error: BaseException | None) -> None:
        stack = self._containers.get(key)
        if stack:
            self._end(stack.pop(), error)
            if not stack:
                del self._containers[key]

    # --- hooks -------------------------------------------------------------------------------

    def on_pipeline_start(
        self, pipeline_id: str, inputs: Mapping[str, Any], ctx: CallbackContext
    ) -> None:
        entered, items = _entered(ctx), tuple(ctx.item_path)
        parent = self._parent(entered[:-1], items) if entered else self._parent((), ())
        values = {"inputs": _shown(inputs)} if self.record_values else {}
        span = self._start(f"pipeline {pipeline_id}", parent, ctx, **values)
        self._push((entered, items), span)
        context = span.get_span_context()
        if ctx.depth == 0 and ctx.report is not None and context.is_valid:
            # One id everywhere: the report, the error notes and the exported trace.
            ctx.report.trace_id = f"{context.trace_id:032x}"

    def on_pipeline_end(
        self, pipeline_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        self._pop((_entered(ctx), tuple(ctx.item_path)), ctx.error)

    def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: CallbackContext) -> None:
        key = ((_entered(ctx), tuple(ctx.item_path)), node_id)
        earlier = self._nodes.pop(key, None)
        if earlier is not None:  # a retry: the previous attempt failed
            self._end(earlier, RuntimeError("attempt failed; retried"))
        parent = self._parent(*key[0])
        values = {"inputs": _shown(inputs)} if self.record_values else {}
        span = self._start(f"node {node_id}", parent, ctx, node=node_id, attempt=ctx.attempt,
                           **{"cache.hit": False}, **values)  # fmt: skip
        self._nodes[key] = span

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        span = self._nodes.pop(((_entered(ctx), tuple(ctx.item_path)), node_id), None)
        if span is not None:
            if self.record_values:
                span.set_attribute("nestflow.outputs", _shown(outputs))
            self._end(span, None)

    def on_node_cached(self, node_id: str, signature: str, ctx: CallbackContext) -> None:
        parent = self._parent(_entered(ctx), tuple(ctx.item_path))
        attributes = {"cache.hit": True, "cache.signature": signature, "node": node_id}
        self._end(self._start(f"node {node_id}", parent, ctx, **attributes), None)

    def on_error(self, node_id: str, error: BaseException, ctx: CallbackContext) -> None:
        span = self._nodes.pop(((_entered(ctx), tuple(ctx.item_path)), node_id), None)
        if span is not None:
            self._end(span, error)

    def on_map_start(self, node_id: str, total_items: int, ctx: CallbackContext) -> None:
        key = (_entered(ctx), tuple(ctx.item_path))
        span = self._start(f"map {node_id}", self._parent(*key), ctx, map_items=total_items)
        self._push(key, span)

    def on_map_end(self, node_id: str, total_duration: float, ctx: CallbackContext) -> None:
        self._pop((_entered(ctx), tuple(ctx.item_path)), None)

    def on_map_item_start(
        self, node_id: str, item_index: int, item: Mapping[str, Any], ctx: CallbackContext
    ) -> None:
        if not self._sampled():
            return
        key = (_entered(ctx), tuple(ctx.item_path))
        parent = self._parent(key[0], key[1][:-1])
        self._push(key, self._start(f"item {node_id}[{item_index}]", parent, ctx))

    def on_map_item_end(
        self, node_id: str, item_index: int, duration: float, ctx: CallbackContext
    ) -> None:
        self._pop((_entered(ctx), tuple(ctx.item_path)), ctx.error)

    def on_map_item_cached(
        self, node_id: str, item_index: int, signature: str, ctx: CallbackContext
    ) -> None:
        if not self._sampled():
            return
        key = (_entered(ctx), tuple(ctx.item_path))
        attributes = {"cache.hit": True, "cache.signature": signature}
        span = self._start(f"item {node_id}[{item_index}]", self._parent(key[0], key[1][:-1]),
                           ctx, **attributes)  # fmt: skip
        self._end(span, None)

    def _sampled(self) -> bool:
        return self.trace_map_items and (
            self.sample_rate >= 1.0 or self._random.random() < self.sample_rate
        )

    # --- propagation -------------------------------------------------------------------------

    def carrier(self, node_id: str, ctx: CallbackContext) -> dict[str, str]:
        """The W3C trace context of the node span that is about to run (``traceparent``)."""
        key = ((_entered(ctx), tuple(ctx.item_path)), node_id)
        span = self._nodes.get(key)
        context = (
            self._trace.set_span_in_context(span) if span is not None else self._parent(*key[0])
        )
        found: dict[str, str] = {}
        self._propagate.inject(found, context=context)
        return found


def _entered(ctx: CallbackContext) -> tuple[str, ...]:
    """The level's key part: the run id first, so runs sharing this callback never mix."""
    return (ctx.run_id, *ctx.entered)


def _shown(values: Mapping[str, Any]) -> str:
    text = repr(dict(values))
    return text if len(text) <= 500 else text[:497] + "..."


def _attribute(value: Any) -> Any:
    """A value OpenTelemetry takes as an attribute: primitives and lists of them as they
    are, anything else as compact JSON text."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(
        isinstance(v, (str, bool, int, float)) for v in value
    ):
        return list(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
