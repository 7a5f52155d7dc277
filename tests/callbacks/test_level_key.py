"""``CallbackContext.level_key``: one object per level of a run, shared by its map items."""

from __future__ import annotations

import inspect

from nestflow import CallbackContext, Pipeline, PipelineCallback, node
from nestflow.callbacks.events import HOOKS
from nestflow.testing import RecordingCallback


@node(output_name="doubled")
def double(x: int) -> int:
    return 2 * x


@node(output_name="incremented")
def add_one(doubled: int) -> int:
    return doubled + 1


@node(output_name="result")
def count(incremented: int | list[int]) -> int:
    return len(incremented) if isinstance(incremented, list) else incremented


INNER = Pipeline([double, add_one], name="inner")


def recorded(pipeline: Pipeline, mapped: bool = False, **inputs: object) -> RecordingCallback:
    recorder = RecordingCallback()
    watched = pipeline.with_callbacks([recorder])
    if mapped:
        watched.map(inputs, map_over="x")
    else:
        watched.run(inputs)
    return recorder


def keys_at(recorder: RecordingCallback, depth: int, kind: str = "node_end") -> list[object]:
    return [
        ctx.level_key
        for event, ctx in zip(recorder.events, recorder.contexts, strict=True)
        if event[0] == kind and ctx.depth == depth
    ]


def test_events_of_one_level_share_one_key_object() -> None:
    keys = keys_at(recorded(INNER, x=1), depth=0)
    assert len(keys) == 2
    assert keys[0] is keys[1]


def test_a_nested_level_has_a_key_of_its_own() -> None:
    recorder = recorded(Pipeline([INNER, count], name="outer"), x=1)
    outer, inner = keys_at(recorder, depth=0), keys_at(recorder, depth=1)
    assert len(outer) == 1
    assert len(inner) == 2
    assert inner[0] is inner[1]
    assert inner[0] is not outer[0]


def test_the_items_of_a_map_share_their_level_key() -> None:
    mapped = Pipeline([INNER.as_node(map_over="x"), count], name="outer")
    recorder = recorded(mapped, x=[1, 2, 3])
    items = keys_at(recorder, depth=1)
    assert len(items) == 6
    assert all(key is items[0] for key in items)
    assert items[0] is not keys_at(recorder, depth=0)[0]


def test_the_items_of_a_top_level_map_share_the_root_key() -> None:
    items = keys_at(recorded(INNER, mapped=True, x=[1, 2, 3]), depth=0)
    assert len(items) == 6
    assert all(key is items[0] for key in items)


def test_two_runs_never_share_a_key() -> None:
    outer = Pipeline([INNER, count], name="outer")
    first, second = recorded(outer, x=1), recorded(outer, x=1)
    for depth in (0, 1):
        assert keys_at(first, depth)[0] is not keys_at(second, depth)[0]


def test_every_hook_annotates_its_context_as_callback_context() -> None:
    for hook in HOOKS:
        parameters = inspect.signature(getattr(PipelineCallback, hook)).parameters
        assert parameters["ctx"].annotation == "CallbackContext", hook
    assert CallbackContext.__name__ == "CallbackContext"
