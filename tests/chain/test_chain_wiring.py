"""Wiring a chain's steps (SPEC 13 "Wiring", 13.1): the three carry rules, names, errors.

Rule 1: the parameter named by ``input=``; rule 2: a parameter named like the previous
output; rule 3: the only parameter nothing else supplies. Every wiring problem is a
``ChainError`` at ``build()`` (A13.5), never during a run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nestflow import (
    Chain,
    ChainError,
    DefinitionError,
    DiskCache,
    InvalidNameError,
    InvalidOptionError,
    Pipeline,
    node,
    step,
)


def topic(subject: str) -> str:
    return f"{subject} at dawn"


def pair(left: str, right: str) -> str:
    return f"{left}|{right}"


def test_first_step_is_wired_by_name_to_the_chain_inputs_and_bound_values() -> None:
    def make_variants(instruction: str, n_variants: int) -> list[str]:
        return [instruction] * n_variants

    pipeline = (Chain("instruction", n_variants=2) << step(make_variants)).build()
    assert pipeline.run(instruction="hi", output_name="make_variants") == ["hi", "hi"]
    assert pipeline.run(instruction="hi", n_variants=3, output_name="make_variants") == ["hi"] * 3


def test_first_step_with_an_unsupplied_parameter_names_it_and_the_fix() -> None:
    with pytest.raises(ChainError, match=r"`make` needs `count`.*Chain\(\.\.\., 'count'\)"):
        (
            Chain("instruction")
            << step(node(lambda instruction, count: 0, name="make", output_name="made"))
        ).build()


def test_first_step_takes_no_input_option() -> None:
    with pytest.raises(ChainError, match="first step, which has no previous value"):
        (Chain("subject") << step(topic, input="subject")).build()


def test_rule_1_input_names_the_carry_parameter_even_over_a_name_match() -> None:
    def draft(topic: str) -> str:
        return topic.upper()

    def mood(topic: str, draft: str) -> str:
        return f"{topic} / {draft}"

    # Rule 2 would pick `draft`; input= sends the previous value (draft's) to `topic` instead,
    # and `draft` is then wired by name to the same earlier output.
    pipeline = (Chain("subject") << step(topic) << step(draft) << step(mood, input="topic")).build()
    assert pipeline.run(subject="sea", output_name="mood") == "SEA AT DAWN / SEA AT DAWN"
    plain = (Chain("subject") << step(topic) << step(draft) << step(mood)).build()
    assert plain.run(subject="sea", output_name="mood") == "sea at dawn / SEA AT DAWN"


def test_rule_1_input_may_name_a_parameter_with_a_default() -> None:
    def verse(subject: str, line: str = "-") -> str:
        return f"{subject}: {line}"

    with pytest.raises(ChainError, match="no parameter to receive the previous value `topic`"):
        (Chain("subject") << step(topic) << step(verse)).build()
    pipeline = (Chain("subject") << step(topic) << step(verse, input="line")).build()
    assert pipeline.run(subject="sea", output_name="verse") == "sea: sea at dawn"


def test_rule_1_input_must_be_a_parameter_of_the_step() -> None:
    with pytest.raises(ChainError, match=r"`pair` has no parameter `middle`; its parameters are"):
        (Chain("subject") << step(topic) << step(pair, input="middle")).build()


def test_rule_2_a_parameter_named_like_the_previous_output_is_the_carry() -> None:
    def title(topic: str, style: str) -> str:  # `style` unsupplied, but `topic` matches
        return f"{topic} ({style})"

    pipeline = (Chain("subject", style="haiku") << step(topic) << step(title)).build()
    assert pipeline.run(subject="sea", output_name="title") == "sea at dawn (haiku)"


def test_rule_3_the_only_unsupplied_parameter_is_the_carry() -> None:
    def verse(line: str, subject: str, rhyme: bool = False) -> str:
        return f"{line} [{subject}, {rhyme}]"

    pipeline = (Chain("subject") << step(topic) << step(verse)).build()
    assert pipeline.run(subject="sea", output_name="verse") == "sea at dawn [sea, False]"


def test_rule_3_counts_earlier_outputs_by_name_as_supplied() -> None:
    def draft(topic: str) -> str:
        return topic.upper()

    def combine(topic: str, polished: str) -> str:  # `topic` is an earlier output
        return f"{topic} -> {polished}"

    pipeline = (Chain("subject") << step(topic) << step(draft) << step(combine)).build()
    assert pipeline.run(subject="sea", output_name="combine") == "sea at dawn -> SEA AT DAWN"


def test_a13_5_two_unsatisfied_parameters_and_no_input_raise_naming_the_candidates() -> None:
    chain = Chain("subject") << step(topic) << step(pair)  # `<<` itself never raises
    with pytest.raises(ChainError) as caught:
        chain.build()
    message = str(caught.value)
    assert "`left`, `right` are all unsupplied" in message
    assert "previous value `topic`" in message
    assert "step(pair, input='left')" in message
    assert isinstance(caught.value, DefinitionError)


def test_a13_5_the_same_chain_builds_once_input_names_the_carry() -> None:
    chain = Chain("subject", right="R") << step(topic) << step(pair, input="left")
    assert chain.build().run(subject="sea", output_name="pair") == "sea at dawn|R"


def test_a_step_with_no_carry_candidate_names_the_previous_output_and_suggests_input() -> None:
    def echo(subject: str) -> str:
        return subject

    with pytest.raises(ChainError) as caught:
        (Chain("subject") << step(topic) << step(echo)).build()
    assert "no parameter to receive the previous value `topic`" in str(caught.value)
    assert "step(echo, input='...')" in str(caught.value)


def test_a_parameter_besides_the_carry_must_be_supplied_by_name() -> None:
    def title(topic: str, style: str) -> str:
        return topic + style

    with pytest.raises(ChainError, match=r"`title` needs `style`.*goes to `topic`"):
        (Chain("subject") << step(topic) << step(title)).build()


def test_build_reports_every_wiring_problem_at_once() -> None:
    chain = Chain("subject", unused=1) << step(topic) << step(pair) << step(pair, name="again")
    with pytest.raises(ChainError) as caught:
        chain.build()
    lines = str(caught.value).splitlines()
    assert lines[0] == "The chain has problems:"
    assert any("`unused` is given to the chain but no step reads it" in line for line in lines)
    assert sum("are all unsupplied" in line for line in lines) == 2


def test_an_empty_chain_does_not_build() -> None:
    with pytest.raises(ChainError, match=r"needs at least one step; add them with chain << step"):
        Chain("x").build()


def test_a_node_keeps_its_settings_in_a_chain(tmp_path: Path) -> None:
    calls: list[str] = []

    @node(output_name="stamp", cache=False)
    def stamp(topic: str) -> str:
        calls.append(topic)
        return topic + "!"

    pipeline = (Chain("subject") << step(topic) << step(stamp)).build(cache=DiskCache(tmp_path))
    assert pipeline.run(subject="a")["stamp"] == "a at dawn!"
    assert pipeline.run(subject="a").report.cache_hits == 1  # `topic` only: stamp is uncached
    assert calls == ["a at dawn", "a at dawn"]


def test_a_rewired_node_is_wired_by_its_input_names() -> None:
    shout = node(lambda text: text.upper(), name="shout", output_name="shout")
    fed = shout.with_inputs({"text": "subject"})  # reads the chain input `subject` by name
    pipeline = (Chain("subject") << step(fed)).build()
    assert pipeline.run(subject="sea", output_name="shout") == "SEA"


def test_a_pipeline_step_is_wired_by_its_inputs_and_publishes_its_outputs() -> None:
    words = node(lambda text: text.split(), name="words", output_name="words")
    count = node(lambda words: len(words), name="count", output_name="count")
    counting = Pipeline([words, count], name="counting")
    pipeline = (Chain("subject") << step(topic) << step(counting, input="text")).build()
    out = pipeline.run(subject="the sea")
    assert dict(out) == {
        "topic": "the sea at dawn",
        "words": ["the", "sea", "at", "dawn"],
        "count": 4,
    }
    assert pipeline.node_ids == ("topic", "counting")


def test_a_pipeline_step_of_one_output_carries_it_and_of_several_the_one_input_names() -> None:
    words = node(lambda text: text.split(), name="words", output_name="words")
    count = node(lambda words: len(words), name="count", output_name="count")
    counting = Pipeline([words, count], name="counting")

    def double(count: int) -> int:
        return 2 * count

    with pytest.raises(
        ChainError, match=r"several outputs \(`words`, `count`\).*step\(double, input='words'\)"
    ):
        (Chain("text") << step(counting) << step(double)).build()
    pipeline = (Chain("text") << step(counting) << step(double, input="count")).build()
    assert pipeline.run(text="a b c", output_name="double") == 6

    only = Pipeline([words], name="only")
    pipeline = (Chain("text") << step(only) << step(lambda_free_len)).build()
    assert pipeline.run(text="a b", output_name="lambda_free_len") == 2


def lambda_free_len(items: list[str]) -> int:
    return len(items)


def test_step_name_sets_the_node_id_and_the_output_stays_the_function_name() -> None:
    pipeline = (Chain("subject") << step(topic, name="opening")).build()
    assert pipeline.node_ids == ("opening",)
    assert pipeline.outputs == ("topic",)


def test_two_steps_publishing_one_name_is_a_chain_error_with_the_fix() -> None:
    def again(topic: str) -> str:
        return topic

    with pytest.raises(
        ChainError, match=r"`topic` is published by step `first` and is also a chain input"
    ):
        (Chain("topic") << step(topic, name="first")).build()
    with pytest.raises(ChainError, match=r"Two steps would both be named `topic`"):
        (
            Chain("subject") << step(topic) << step(node(again, name="topic", output_name="x"))
        ).build()


def test_chain_and_step_are_immutable() -> None:
    chain = Chain("subject")
    made = step(topic)
    with pytest.raises(AttributeError, match="immutable"):
        chain.steps = ()  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        made.input = "subject"  # type: ignore[misc]
    with pytest.raises(TypeError):
        chain.bound["x"] = 1  # type: ignore[index]


def test_lshift_returns_a_new_chain_and_leaves_the_old_one_as_it_was() -> None:
    base = Chain("subject") << step(topic)
    longer = base << step(lambda_free_len, input="items")
    assert len(base.steps) == 1
    assert len(longer.steps) == 2
    assert base.build().outputs == ("topic",)


def test_a_transition_returns_a_new_step() -> None:
    made = step(topic)
    scattered = made.scatter()
    assert made.fan is None
    assert scattered.fan is not None
    assert repr(scattered) == "step('topic').scatter()"


def test_a_step_takes_one_transition() -> None:
    with pytest.raises(ChainError, match=r"already has .scatter\(\); a step takes one of"):
        step(topic).scatter().aggregate()


def test_lshift_takes_functions_nodes_and_pipelines_directly() -> None:
    pipeline = (
        Chain("subject") << topic << node(lambda_free_len).with_inputs({"items": "topic"})
    ).build()
    assert pipeline.run(subject="a")["lambda_free_len"] == len("a at dawn")


@pytest.mark.parametrize(
    ("make", "error", "pattern"),
    [
        (lambda: step(42), TypeError, "takes a function, a Node or a Pipeline; got int"),
        (lambda: step(Pipeline([node(topic)]).as_node()), TypeError, "Pass its pipeline"),
        (lambda: step(topic, input=3), InvalidOptionError, r"step\(input=...\) takes a str"),
        (lambda: step(topic, name="two words"), InvalidNameError, "not a Python identifier"),
        (lambda: step(topic).broadcast(0), InvalidOptionError, "an int >= 1"),
        (lambda: step(topic).custom("fn"), InvalidOptionError, "takes a function"),
        (lambda: Chain("a", "a"), ChainError, "given twice"),
        (lambda: Chain("not valid"), InvalidNameError, "not a Python identifier"),
        (lambda: Chain("x") << Chain("y"), TypeError, "chain << chain is not supported"),
    ],
)
def test_misuse_is_refused_when_written_with_what_to_write_instead(
    make: object, error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=re.compile(pattern)):
        make()  # type: ignore[operator]


def test_a_pipeline_step_cannot_take_one_value_into_two_inputs() -> None:
    # `left` takes the carry (topic's value) and `topic` reads the same name: a Node could,
    # but as_node cannot feed two inner inputs from one outer name.
    joined = Pipeline(
        [node(lambda left, topic: left + topic, name="joined", output_name="joined")], name="j"
    )
    with pytest.raises(ChainError, match=r"(?s)Step `j`: .*would feed two inner inputs"):
        (Chain("subject") << step(topic) << step(joined, input="left")).build()


def test_a_chain_shows_its_steps() -> None:
    chain = Chain("text", n=2) << step(topic).scatter() << step(lambda_free_len, input="items")
    assert repr(chain) == (
        "Chain('text', n=2) << step('topic').scatter() << step('lambda_free_len', input='items')"
    )
    with pytest.raises(AttributeError, match="immutable"):
        del chain.steps  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del chain.steps[0].id  # type: ignore[misc]


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: step(step(topic)), r"step\(\) got a step already"),
        (lambda: step(topic).custom(len, fan_out="yes"), r"takes True or False"),
    ],
)
def test_more_misuse_is_refused(make: object, pattern: str) -> None:
    with pytest.raises((TypeError, DefinitionError), match=pattern):
        make()  # type: ignore[operator]
