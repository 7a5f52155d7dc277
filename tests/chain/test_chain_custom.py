"""``.custom(fn, fan_out=False)``: fn turns a step's value into the next step's keyword
arguments (A13.4); it is fingerprinted for caching; a wrong shape fails the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nestflow import Chain, ChainError, DefinitionError, DiskCache, Pipeline, step


def topics(text: str) -> list[str]:
    return text.split(",")


def poem(subject: str, lines: int = 3) -> str:
    return f"{subject} in {lines} lines"


def three(found: list[str]) -> list[dict[str, Any]]:
    return [{"subject": s.strip(), "lines": n} for n, s in enumerate(found, start=1)]


def test_a13_4_fan_out_of_three_dicts_runs_the_next_step_three_times_with_them() -> None:
    calls: list[tuple[str, int]] = []

    def write(subject: str, lines: int = 3) -> str:
        calls.append((subject, lines))
        return f"{subject} in {lines} lines"

    pipeline = (Chain("text") << step(topics).custom(three, fan_out=True) << step(write)).build()
    out = pipeline.run(text="frog, pond, moon")
    assert calls == [("frog", 1), ("pond", 2), ("moon", 3)]
    assert out["write"] == ["frog in 1 lines", "pond in 2 lines", "moon in 3 lines"]
    assert pipeline.node_ids[-1] == "topics_each"  # the segment opened by the custom step


def test_a13_4_a_custom_function_returning_a_string_fails_the_run_with_chain_error() -> None:
    def wrong(found: list[str]) -> str:
        return "frog"

    pipeline = (Chain("text") << step(topics).custom(wrong, fan_out=True) << step(poem)).build()
    with pytest.raises(ChainError) as caught:
        pipeline.run(text="frog")
    message = str(caught.value)
    assert "The custom function of step `topics` returned a str: 'frog'" in message
    assert "with fan_out=True it must return a list of dicts" in message
    assert "step `poem` (it takes subject, lines (optional))" in message
    assert isinstance(caught.value, DefinitionError)  # SPEC 13.1: the one run-time one


def test_without_fan_out_one_dict_feeds_the_next_step_once() -> None:
    def first(found: list[str]) -> dict[str, Any]:
        return {"subject": found[0]}

    pipeline = (Chain("text") << step(topics).custom(first) << step(poem)).build()
    assert pipeline.run(text="frog,pond", output_name="poem") == "frog in 3 lines"


def test_without_fan_out_a_list_is_the_wrong_shape() -> None:
    pipeline = (Chain("text") << step(topics).custom(three) << step(poem)).build()
    with pytest.raises(
        ChainError, match=r"returned a list: .*with fan_out=False it must return one dict"
    ):
        pipeline.run(text="frog")


@pytest.mark.parametrize(
    ("returned", "found"),
    [
        ([{"subject": "a"}, "b"], "returned a list whose item 1 is a str: 'b'"),
        (
            [{"subject": "a", "colour": "red"}],
            "returned (item 0) keys step `poem` does not take: ['colour']",
        ),
        ([{"lines": 2}], "returned (item 0) no value for `subject`"),
    ],
)
def test_wrong_items_or_keys_fail_the_run_naming_what_was_found(returned: Any, found: str) -> None:
    pipeline = (
        Chain("text") << step(topics).custom(lambda _: returned, fan_out=True) << step(poem)
    ).build()
    with pytest.raises(ChainError) as caught:
        pipeline.run(text="frog")
    assert found in str(caught.value)


def test_parameters_supplied_by_name_stay_wired_by_name() -> None:
    def styled(subject: str, style: str) -> str:
        return f"{subject} ({style})"

    pipeline = (
        Chain("text", style="haiku")
        << step(topics).custom(lambda found: [{"subject": s} for s in found], fan_out=True)
        << step(styled)
    ).build()
    assert pipeline.run(text="a,b", output_name="styled") == ["a (haiku)", "b (haiku)"]


def test_inside_a_segment_custom_receives_the_list_and_ends_the_segment() -> None:
    received: list[Any] = []

    def longest(found: list[int]) -> dict[str, Any]:
        received.append(found)
        return {"size": max(found)}

    def report(size: int) -> str:
        return f"longest: {size}"

    pipeline = (
        Chain("text")
        << step(topics).scatter()
        << step(len, input="obj").custom(longest)
        << step(report)
    ).build()
    assert pipeline.run(text="ab,c,def", output_name="report") == "longest: 3"
    assert received == [[2, 1, 3]]
    assert pipeline.node_ids[:2] == ("topics", "topics_each")


def test_the_custom_function_is_fingerprinted_for_caching(tmp_path: Path) -> None:
    calls: list[str] = []

    def fan_one(found: list[str]) -> list[dict[str, Any]]:
        calls.append("one")
        return [{"subject": s} for s in found]

    def fan_two(found: list[str]) -> list[dict[str, Any]]:
        calls.append("two")
        return [{"subject": s.upper()} for s in found]

    def built(fn: Any) -> Pipeline:
        chain = Chain("text") << step(topics).custom(fn, fan_out=True) << step(poem)
        return chain.build(cache=DiskCache(tmp_path))

    assert built(fan_one).run(text="a,b", output_name="poem") == ["a in 3 lines", "b in 3 lines"]
    assert built(fan_one).run(text="a,b").report.cache_hits == 4  # topics, custom, two poems
    assert calls == ["one"]
    assert built(fan_two).run(text="a,b", output_name="poem") == ["A in 3 lines", "B in 3 lines"]
    assert calls == ["one", "two"]


def test_a_custom_step_publishes_its_own_output_and_nothing_generated() -> None:
    pipeline = (Chain("text") << step(topics).custom(three, fan_out=True) << step(poem)).build()
    assert pipeline.outputs == ("topics", "poem")


def test_custom_needs_a_following_step_and_one_with_a_parameter_left_for_it() -> None:
    with pytest.raises(ChainError, match=r"ends the chain with .custom\(fn\)"):
        (Chain("text") << step(topics).custom(three)).build()

    def counted(text: str) -> int:
        return len(text)

    with pytest.raises(ChainError, match=r"have nowhere to go.*step\(counted, input='\.\.\.'\)"):
        (Chain("text") << step(topics).custom(three) << step(counted)).build()


def test_input_names_a_parameter_the_custom_arguments_feed_even_when_supplied_by_name() -> None:
    def counted(text: str) -> int:
        return len(text)

    pipeline = (
        Chain("text")
        << step(topics).custom(lambda found: {"text": "".join(found)})
        << step(counted, input="text")
    ).build()
    assert pipeline.run(text="ab,cd", output_name="counted") == 4


def test_custom_on_a_step_of_several_outputs_is_refused_at_build() -> None:
    from nestflow import node

    halves = Pipeline(
        [node(lambda text: text[:2], name="head", output_name="head"),
         node(lambda text: text[2:], name="tail", output_name="tail")],
        name="halves",
    )  # fmt: skip
    with pytest.raises(
        ChainError, match=r"publishes `head`, `tail`, but .custom\(fn\) hands fn one"
    ):
        (Chain("text") << step(halves).custom(three) << step(poem)).build()


def test_a_pipeline_after_custom_takes_its_required_inputs_from_the_dict() -> None:
    inner = Pipeline([step(poem).target], name="poet")
    pipeline = (
        Chain("text")
        << step(topics).custom(lambda found: [{"subject": s} for s in found], fan_out=True)
        << step(inner)
    ).build()
    assert pipeline.run(text="a,b", output_name="poem") == ["a in 3 lines", "b in 3 lines"]


def test_an_async_custom_function_is_awaited(tmp_path: Path) -> None:
    async def first(found: list[str]) -> dict[str, Any]:
        return {"subject": found[-1]}

    pipeline = (Chain("text") << step(topics).custom(first) << step(poem)).build(
        cache=DiskCache(tmp_path)
    )
    assert pipeline.run(text="a,b", output_name="poem") == "b in 3 lines"
    assert pipeline.run(text="a,b").report.cache_hits == 3


def test_input_after_custom_must_be_a_parameter() -> None:
    with pytest.raises(ChainError, match=r"`poem` has no parameter `verse`"):
        (Chain("text") << step(topics).custom(three) << step(poem, input="verse")).build()
