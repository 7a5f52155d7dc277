"""``.broadcast(n)``: the segment runs n times on one value, each replica keyed apart (A13.3).

``replica`` is passed only to functions that declare it, but it is part of every cache key
in the segment: a function that ignores it still caches once per replica.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nestflow import Chain, ChainError, DiskCache, Pipeline, node, step


def prompt(topic: str) -> str:
    return f"a haiku about {topic}"


def test_a13_3_broadcast_3_calls_the_next_step_with_replica_0_1_2_and_a_rerun_hits_all(
    tmp_path: Path,
) -> None:
    calls: list[tuple[str, int]] = []

    def sample(prompt: str, replica: int) -> str:
        calls.append((prompt, replica))
        return f"{prompt} #{replica}"

    def build() -> Pipeline:
        chain = Chain("topic") << step(prompt).broadcast(3) << step(sample)
        return chain.build(name="samples", cache=DiskCache(tmp_path))

    first = build().run(topic="frogs")
    assert calls == [("a haiku about frogs", r) for r in range(3)]
    assert first["sample"] == [f"a haiku about frogs #{r}" for r in range(3)]
    calls.clear()
    again = build().run(topic="frogs")
    assert calls == []
    assert dict(again) == dict(first)
    statuses = {r.path: r.status for r in again.report.records if r.node == "sample"}
    cached = [r for r in again.report.records if r.node == "sample" and r.status == "cached"]
    assert len(cached) == 3, statuses


def test_replica_is_part_of_the_key_of_a_function_that_does_not_declare_it(
    tmp_path: Path,
) -> None:
    calls: list[str] = []

    def answer(prompt: str) -> str:
        calls.append(prompt)
        return prompt.upper()

    def pipeline() -> Pipeline:
        chain = Chain("topic") << step(prompt).broadcast(3) << step(answer)
        return chain.build(cache=DiskCache(tmp_path))

    assert pipeline().run(topic="rain", output_name="answer") == ["A HAIKU ABOUT RAIN"] * 3
    assert len(calls) == 3  # three replicas, three keys: none is a hit of another
    pipeline().run(topic="rain")
    assert len(calls) == 3
    # The wrapper that adds `replica` keeps the function's code fingerprint and settings.
    segment = pipeline().node("prompt_each").pipeline  # type: ignore[union-attr]
    assert segment.node("answer").func.__wrapped__ is answer  # type: ignore[union-attr]


def test_every_cached_step_of_the_segment_is_keyed_by_replica(tmp_path: Path) -> None:
    calls: list[str] = []

    @node(output_name="draft", cache=False)  # uncached: equal outputs carry no signature
    def draft(prompt: str) -> str:
        return prompt

    def polish(draft: str) -> str:
        calls.append(draft)
        return draft.title()

    chain = Chain("topic") << step(prompt).broadcast(2) << step(draft) << step(polish)
    pipeline = chain.build(cache=DiskCache(tmp_path))
    assert pipeline.run(topic="moss", output_name="polish") == ["A Haiku About Moss"] * 2
    assert len(calls) == 2
    pipeline.run(topic="moss")
    assert len(calls) == 2


def test_a_pipeline_step_in_a_broadcast_segment_caches_per_replica(tmp_path: Path) -> None:
    calls: list[str] = []

    def words(prompt: str) -> list[str]:
        calls.append(prompt)
        return prompt.split()

    inner = Pipeline([node(words)], name="splitter", cache=DiskCache(tmp_path))
    chain = Chain("topic") << step(prompt).broadcast(2) << step(inner)
    pipeline = chain.build()
    assert pipeline.run(topic="sun", output_name="words") == [["a", "haiku", "about", "sun"]] * 2
    assert len(calls) == 2
    pipeline.run(topic="sun")
    assert len(calls) == 2
    assert inner.node("words").func is words  # the user's pipeline itself is unchanged


def test_replicas_of_nested_broadcasts_multiply_and_cache_apart(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []

    def sample(prompt: str, replica: int) -> str:
        return f"{prompt}/{replica}"

    def score(sample: str, replica: int) -> str:
        calls.append((sample, replica))
        return f"{sample}:{replica}"

    chain = Chain("topic") << step(prompt).broadcast(2) << step(sample).broadcast(2) << step(score)
    pipeline = chain.build(cache=DiskCache(tmp_path))
    out = pipeline.run(topic="t", output_name="score")
    assert out == [["a haiku about t/0:0", "a haiku about t/0:1"],
                   ["a haiku about t/1:0", "a haiku about t/1:1"]]  # fmt: skip
    assert len(calls) == 4
    pipeline.run(topic="t")
    assert len(calls) == 4


def test_an_async_step_in_a_broadcast_segment_is_awaited_and_keyed(tmp_path: Path) -> None:
    calls: list[str] = []

    async def answer(prompt: str) -> str:
        await asyncio.sleep(0)
        calls.append(prompt)
        return prompt[::-1]

    chain = Chain("topic") << step(prompt).broadcast(2) << step(answer)
    pipeline = chain.build(cache=DiskCache(tmp_path))
    assert pipeline.run(topic="ab", output_name="answer") == ["ba tuoba ukiah a"] * 2
    pipeline.run(topic="ab")
    assert len(calls) == 2


def test_broadcast_on_the_last_step_is_refused() -> None:
    with pytest.raises(ChainError, match=r"ends the chain with .broadcast\(2\)"):
        (Chain("topic") << step(prompt).broadcast(2)).build()


def test_a_segment_of_uncached_steps_still_runs_once_per_replica() -> None:
    calls: list[str] = []

    @node(output_name="echo", cache=False)
    def echo(prompt: str) -> str:
        calls.append(prompt)
        return prompt

    pipeline = (Chain("topic") << step(prompt).broadcast(3) << step(echo)).build()
    assert pipeline.run(topic="x", output_name="echo") == ["a haiku about x"] * 3
    assert len(calls) == 3


def test_a_pipeline_step_keeps_its_bound_values_and_types_when_keyed_by_replica() -> None:
    def scaled(prompt: str, factor: int) -> str:
        return prompt * factor

    inner = (
        Pipeline([node(scaled)], name="scaler")
        .bind(factor=2)
        .with_input_types({"prompt": "string", "factor": "integer"})
    )
    pipeline = (Chain("topic") << step(prompt).broadcast(2) << step(inner)).build()
    assert pipeline.run(topic="x", output_name="scaled") == ["a haiku about x" * 2] * 2
    keyed = pipeline.node("prompt_each").pipeline.node("scaler").pipeline  # type: ignore[union-attr]
    assert keyed.bound_inputs == {"factor": 2}
    assert keyed.input_types == {"prompt": "string", "factor": "integer"}
    assert "replica" in keyed.inputs
