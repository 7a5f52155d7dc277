"""Segments: ``scatter`` opens one, ``aggregate`` closes it, segments nest (SPEC 13, 13.1).

A13.5 (aggregate with no open segment) and A13.6 (a threaded map gives the sequential
result, in element order) are here, with what a chain publishes when it ends inside a
segment.
"""

from __future__ import annotations

import threading

import pytest

from nestflow import Chain, ChainError, LocalBackend, step


def words(text: str) -> list[str]:
    return text.split()


def letters(words: str) -> list[str]:
    return list(words)


def shout(letter: str) -> str:
    return letter.upper()


def length(word: str) -> int:
    return len(word)


def total(length: list[int]) -> int:
    return sum(length)


def test_scatter_runs_the_segment_once_per_element_and_aggregate_gathers_a_list() -> None:
    calls: list[str] = []

    def measure(word: str) -> int:
        calls.append(word)
        return len(word)

    pipeline = (
        Chain("text")
        << step(words).scatter()
        << step(measure).aggregate()
        << step(sum, input="iterable")
    ).build()
    out = pipeline.run(text="old pond frog")
    assert calls == ["old", "pond", "frog"]
    assert out["measure"] == [3, 4, 4]
    assert out["sum"] == 11


def test_the_step_after_aggregate_receives_the_list_by_rule_2() -> None:
    pipeline = (
        Chain("text") << step(words).scatter() << step(length).aggregate() << step(total)
    ).build()
    assert pipeline.run(text="a bb ccc", output_name="total") == 6


def test_a13_5_aggregate_without_an_open_segment_raises_at_build() -> None:
    chain = Chain("text") << step(words) << step(length).aggregate() << step(total)
    with pytest.raises(ChainError) as caught:
        chain.build()
    assert "Step `length` calls .aggregate(), but no segment is open there" in str(caught.value)
    assert ".scatter(), .broadcast(n) or .custom(fn, fan_out=True)" in str(caught.value)


def test_a_second_aggregate_closes_nothing_and_raises() -> None:
    chain = (
        Chain("text")
        << step(words).scatter()
        << step(length).aggregate()
        << step(total).aggregate()
    )
    with pytest.raises(ChainError, match=r"`total` calls \.aggregate"):
        chain.build()


def test_a_chain_ending_inside_a_segment_publishes_the_per_element_list() -> None:
    pipeline = (Chain("text") << step(words).scatter() << step(length)).build()
    out = pipeline.run(text="old pond")
    assert dict(out) == {"words": ["old", "pond"], "length": [3, 4]}


def test_a_scatter_inside_a_segment_is_a_double_map() -> None:
    pipeline = (
        Chain("text") << step(words).scatter() << step(letters).scatter() << step(shout)
    ).build(name="nested")
    out = pipeline.run(text="ab c")
    assert out["shout"] == [["A", "B"], ["C"]]
    assert out["letters"] == [["a", "b"], ["c"]]
    inner = pipeline.node("words_each").pipeline  # type: ignore[union-attr]
    assert inner.node("letters_each").map_over == ("letters",)  # type: ignore[union-attr]


def test_nested_segments_close_one_level_per_aggregate() -> None:
    def word_score(shout: list[str]) -> int:
        return len(shout)

    def best(word_score: list[int]) -> int:
        return max(word_score)

    pipeline = (
        Chain("text")
        << step(words).scatter()
        << step(letters).scatter()
        << step(shout).aggregate()
        << step(word_score).aggregate()
        << step(best)
    ).build()
    out = pipeline.run(text="a bbb cc")
    assert out["word_score"] == [1, 3, 2]
    assert out["best"] == 3


def test_a_scatter_on_the_last_step_is_refused() -> None:
    with pytest.raises(ChainError, match=r"`words` ends the chain with .scatter\(\)"):
        (Chain("text") << step(words).scatter()).build()


def test_steps_in_a_segment_read_chain_inputs_bound_values_and_earlier_outputs_by_name() -> None:
    def count(text: str) -> int:
        return len(text)

    def split(count: int, text: str) -> list[str]:
        return text.split()

    def label(word: str, count: int, prefix: str, text: str) -> str:
        return f"{prefix}{word}/{count}/{text}"

    pipeline = (
        Chain("text", prefix="#") << step(count) << step(split).scatter() << step(label)
    ).build()
    assert pipeline.run(text="a b", output_name="label") == ["#a/3/a b", "#b/3/a b"]


def test_an_empty_collection_runs_the_segment_zero_times() -> None:
    pipeline = (
        Chain("text") << step(words).scatter() << step(length).aggregate() << step(total)
    ).build()
    assert dict(pipeline.run(text="")) == {"words": [], "length": [], "total": 0}


def _threads_chain(seen: set[str]) -> Chain:
    def reverse(word: str) -> str:  # no sleep: the thread it ran on is the evidence
        seen.add(threading.current_thread().name)
        return word[::-1]

    def joined(reverse: list[str]) -> str:
        return " ".join(reverse)

    return Chain("text") << step(words).scatter() << step(reverse).aggregate() << step(joined)


def test_a13_6_a_threaded_map_returns_the_sequential_result_in_element_order() -> None:
    text = " ".join(f"w{i:02d}" for i in range(40))
    here = threading.current_thread().name
    seen_sequential: set[str] = set()
    sequential = _threads_chain(seen_sequential).build(backend=LocalBackend())
    seen_threaded: set[str] = set()
    threaded = _threads_chain(seen_threaded).build(
        backend=LocalBackend(map_execution="threaded", max_workers=4)
    )
    expected = sequential.run(text=text)
    got = threaded.run(text=text)
    assert dict(got) == dict(expected)
    assert got["reverse"] == [f"w{i:02d}"[::-1] for i in range(40)]
    assert seen_sequential == {here}
    assert here not in seen_threaded
