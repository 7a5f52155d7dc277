"""Broadcast replicas: the generated list of indices, and ``replica`` in every cache key.

``.broadcast(n)`` maps the following segment over ``[0, ..., n-1]``, published by a private
node. Each replica must cache apart even where a function ignores its index, so every
function node of a broadcast segment reads ``replica`` (which also makes it an input of
the segment, whatever its nodes cache): a node whose function does not declare it is
rewrapped with one more keyword-only parameter that is dropped before the call. The
wrapper's ``__wrapped__`` is the function, so the code fingerprint stays the function's;
the signature gains the index, which is the point.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from nestflow.core.gates import private_name
from nestflow.core.nesting import PipelineNode
from nestflow.core.node import Node
from nestflow.core.pipeline import Pipeline

REPLICA = "replica"
"""The name under which a broadcast segment's steps read their replica index."""


def replicas_node(step_id: str, n: int, source: str) -> Node:
    """The private node publishing ``[0, ..., n-1]`` for the broadcast of the value ``source``
    made by step ``step_id``.

    It reads the value it does not use so that pictures draw the segment fed by the step
    (a private node stands for its inputs there), not by an input box of its own. On a
    re-run that hits everywhere this loads the broadcast value from the cache; a value worth
    broadcasting is small (a prompt, a seed), so the picture wins.
    """

    def replicas(value: Any) -> list[int]:
        return list(range(n))

    made = private_name(step_id, "replicas")
    # Not cached: the list is cheap, and each replica is keyed by its index anyway.
    return Node(replicas, name=made, output_name=made, cache=False, input_sources={"value": source})


def keyed(member: Node | PipelineNode) -> Node | PipelineNode:
    """``member`` with ``replica`` read by each of its function nodes."""
    if isinstance(member, Node):
        reads = REPLICA in member.inputs or REPLICA in member.params
        return member if reads else _keyed_node(member)
    inner = keyed_pipeline(member.pipeline)
    if inner is member.pipeline:
        return member
    return PipelineNode(
        inner,
        input_mapping=member.input_mapping,
        output_mapping=member.output_mapping,
        map_over=member.map_over or None,
        map_mode=member.map_mode,
        name=member.name if member.name_is_explicit else None,
        on_error=member.on_error,
        when=member.when,
        outcome=member.outcome,
        tolerates=tuple(member.tolerates),
        workspace=member.workspace,
    )


def keyed_pipeline(pipeline: Pipeline) -> Pipeline:
    """``pipeline`` with ``replica`` read by each of its function nodes, at any depth;
    its name, configuration, bound values and declared types kept."""
    members = [keyed(member) for member in pipeline.nodes]
    if all(new is old for new, old in zip(members, pipeline.nodes, strict=True)):
        return pipeline
    made = Pipeline(members, name=pipeline.name, **pipeline.config)
    if pipeline.bound_inputs:
        made = made.bind(**pipeline.bound_inputs)
    if pipeline.input_types:
        made = made.with_input_types(pipeline.input_types, accept_unused=True)
    return made


def _keyed_node(member: Node) -> Node:
    func = member.func
    wrapper = _async_dropping(func) if member.is_async else _dropping(func)
    signature = inspect.signature(func)
    index = inspect.Parameter(REPLICA, inspect.Parameter.KEYWORD_ONLY)
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), index]
    )
    wrapper.__wrapped__ = func  # type: ignore[attr-defined]
    wrapper.__name__ = getattr(func, "__name__", type(func).__name__)
    wrapper.__doc__ = func.__doc__
    return Node(
        wrapper,
        output_name=member.output_name,
        name=member.name if member.name_is_explicit else None,
        cache=member.cache,
        timeout=member.timeout,
        retries=member.retries,
        on_error=member.on_error,
        cache_version=member.cache_version,
        input_sources={p: s for p, s in member.input_sources.items() if p != s},
        when=member.when,
        outcome=member.outcome,
        tolerates=tuple(member.tolerates),
    )


def _dropping(func: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        del kwargs[REPLICA]
        return func(*args, **kwargs)

    return call


def _async_dropping(func: Callable[..., Any]) -> Callable[..., Any]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        del kwargs[REPLICA]
        return await func(*args, **kwargs)

    return call
