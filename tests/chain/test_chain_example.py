"""The chain of SPEC 13's example: result, picture, caching per element, names (A13.1, A13.2).

The stand-ins log their calls, so what executed is read from the log, not from timings.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nestflow import Chain, DiskCache, Pipeline, ProgressCallback, step
from nestflow.diagram.text import to_text

Calls = list[str]


def haiku_chain(calls: Calls) -> Chain:
    """The example of SPEC 13 with deterministic stand-ins that log each call."""

    def make_variants(instruction: str, n_variants: int) -> list[str]:
        calls.append("make_variants")
        return [f"{instruction}, take {i}" for i in range(n_variants)]

    def answer(variant: str) -> str:
        calls.append(f"answer {variant[-1]}")
        return variant.replace("Write a haiku", "old pond").upper()

    def grade(answer: str) -> tuple[int, str]:
        calls.append(f"grade {answer[-1]}")
        return int(answer[-1]) * 7 % 5, answer  # take 2 scores highest of 0..4

    def pick_best(grade: list[tuple[int, str]]) -> str:
        calls.append("pick_best")
        return max(grade)[1]

    return (
        Chain("instruction", n_variants=5)
        << step(make_variants).scatter()
        << step(answer)
        << step(grade).aggregate()
        << step(pick_best)
    )


@pytest.fixture
def calls() -> Calls:
    return []


@pytest.fixture
def haiku(calls: Calls) -> Pipeline:
    return haiku_chain(calls).build(name="haiku")


def test_a13_1_the_example_returns_the_best_answer(haiku: Pipeline, calls: Calls) -> None:
    assert haiku.run(instruction="Write a haiku", output_name="pick_best") == "OLD POND, TAKE 2"
    assert calls == [
        "make_variants",
        *(f"{step} {i}" for i in range(5) for step in ("answer", "grade")),
        "pick_best",
    ]


def test_a13_1_visualize_depth_2_shows_the_segment_as_a_mapped_cluster(haiku: Pipeline) -> None:
    pytest.importorskip("graphviz")
    source = haiku.visualize(depth=2).source
    cluster = source[source.index("subgraph cluster_make_variants_each") :]
    cluster = cluster[: cluster.index("}")]
    assert "maps over make_variants" in cluster
    assert '"make_variants_each/answer"' in cluster
    assert '"make_variants_each/grade"' in cluster
    assert "pick_best" not in cluster


def test_a13_1_to_text_depth_2_shows_the_segment_as_a_mapped_nested_pipeline(
    haiku: Pipeline,
) -> None:
    assert to_text(haiku, depth=2).splitlines() == [
        "haiku",
        "  [make_variants] (instruction, n_variants) -> make_variants",
        (
            "  [make_variants_each] (make_variants) -> answer, grade"
            "  · pipeline make_variants_each · maps over make_variants"
        ),
        "      [answer] (make_variants) -> answer",
        "      [grade] (answer) -> grade",
        "  [pick_best] (grade) -> pick_best",
    ]


def test_a13_2_adding_one_variant_runs_only_the_new_element_and_the_gather(
    tmp_path: Path, calls: Calls
) -> None:
    haiku = haiku_chain(calls).build(name="haiku", cache=DiskCache(tmp_path))
    haiku.run(instruction="Write a haiku")
    calls.clear()
    out = haiku.run(instruction="Write a haiku", n_variants=6)
    # make_variants runs again (its input changed); of the elements only the new one does.
    assert calls == ["make_variants", "answer 5", "grade 5", "pick_best"]
    assert len(out["answer"]) == 6
    again = haiku_chain(calls).build(name="haiku", cache=DiskCache(tmp_path))
    calls.clear()
    assert again.run(instruction="Write a haiku", n_variants=6).report.cache_hits == 14
    assert calls == []


def test_names_each_step_publishes_under_its_output_name_segments_as_lists(
    haiku: Pipeline,
) -> None:
    out = haiku.run(instruction="Write a haiku")
    assert list(out) == ["make_variants", "answer", "grade", "pick_best"]
    assert haiku.outputs == ("make_variants", "answer", "grade", "pick_best")
    assert out["answer"] == [f"OLD POND, TAKE {i}" for i in range(5)]
    assert [score for score, _ in out["grade"]] == [0, 2, 4, 1, 3]


def test_names_the_segment_of_a_scatter_step_s_is_the_nested_node_and_pipeline_s_each(
    haiku: Pipeline,
) -> None:
    segment = haiku.node("make_variants_each")
    assert segment.pipeline.name == "make_variants_each"  # type: ignore[union-attr]
    assert segment.map_over == ("make_variants",)  # type: ignore[union-attr]
    assert haiku.node_ids == ("make_variants", "make_variants_each", "pick_best")


def test_a_chain_run_reports_like_any_pipeline(haiku: Pipeline) -> None:
    out = haiku.run(instruction="Write a haiku")
    tree = out.report.tree()
    assert "├─ make_variants_each [map ×5: 5 executed]" in tree
    assert "│  ├─ answer [×5: 5 executed]" in tree
    paths = {record.path for record in out.report.records}
    assert paths == {
        "haiku > make_variants",
        "haiku > make_variants_each > answer",
        "haiku > make_variants_each > grade",
        "haiku > pick_best",
    }


def _private_free(text: str) -> bool:
    return ".replicas" not in text and ".custom" not in text and ".in" not in text


@pytest.mark.parametrize(
    "transition",
    [
        lambda s: s.broadcast(2),
        lambda s: s.custom(lambda value: {"variant": value}),
        lambda s: s.custom(lambda value: [{"variant": value}] * 2, fan_out=True),
    ],
    ids=["broadcast", "custom", "custom_fan_out"],
)
def test_generated_helper_nodes_never_appear_in_results_reports_or_pictures(
    transition: Callable[[Any], Any], tmp_path: Path
) -> None:
    def topic(instruction: str) -> str:
        return instruction.title()

    def answer(variant: str) -> str:
        return variant.upper()

    pytest.importorskip("rich")
    from rich.console import Console

    console = Console(record=True, width=200, file=io.StringIO())
    progress = ProgressCallback(console=console)
    pipeline = (Chain("instruction") << transition(step(topic)) << step(answer)).build(
        name="flow", cache=DiskCache(tmp_path), callbacks=[progress]
    )
    out = pipeline.run(instruction="a haiku")
    assert "answer" in console.export_text()
    assert _private_free(console.export_text())
    assert set(out) <= {"topic", "answer"}
    assert all(not name.startswith(".") for name in pipeline.outputs)
    assert _private_free(out.report.tree())
    assert all(not line.lstrip().startswith("[.") for line in to_text(pipeline, 3).splitlines())
    pytest.importorskip("graphviz")
    lines = pipeline.visualize(depth=3).source.splitlines()
    boxes = [line.split("[label=")[0] for line in lines if "[label=" in line]
    assert all(_private_free(box) for box in boxes if "->" not in box)
