"""What pipeline steps publish: ``outputs`` with paths into values (SPEC 11.2, A11.5)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from nestflow import DiskCache
from nestflow.diagram.text import to_text
from nestflow.errors import SpecValidationError, TemplateError
from nestflow.spec.loader import load_yaml

MODULE = """
from dataclasses import dataclass

@dataclass
class Scores:
    values: list
    best: int

def report(text: str) -> dict:
    return {"summary": f"about {text}", "scores": Scores([1, 5, 3], 5), "words": text.split()}

def shout(text: str) -> str:
    return text.upper()
"""


@pytest.fixture
def folder(tmp_path: Path, step_module: Callable[[str, str], str]) -> Path:
    name = step_module("outsteps", MODULE)
    (tmp_path / "scorer.yaml").write_text(
        textwrap.dedent(
            f"""
            version: 1
            workflow:
              name: scorer
              inputs: {{text: {{type: string}}}}
              steps:
                - {{name: report, type: function, function: "{name}:report"}}
            """
        ).lstrip()
    )
    return tmp_path


def write(folder: Path, text: str) -> Path:
    module = f"outsteps_{folder.name.replace('-', '_')}"
    path = folder / "flow.yaml"
    path.write_text(textwrap.dedent(text).lstrip().replace("MOD", module))
    return path


def test_a11_5_a_path_into_an_output_is_published_under_its_name(folder: Path) -> None:
    flow = write(
        folder,
        """
        version: 1
        workflow:
          name: flow
          inputs: {text: {type: string}}
          steps:
            - name: scoring
              type: pipeline
              pipeline_file: ./scorer.yaml
              outputs:
                - {path: report.summary, as: summary}
                - {path: report.scores.best, as: best}
                - {path: report.scores.values.1, as: second}
            - name: loud
              type: function
              function: "MOD:shout"
              inputs: {text: "{{steps.scoring.summary}}"}
        """,
    )
    pipeline = load_yaml(flow)
    assert pipeline.outputs == ("summary", "best", "second", "loud")
    assert dict(pipeline.run(text="soup")) == {
        "summary": "about soup",
        "best": 5,
        "second": 5,
        "loud": "ABOUT SOUP",
    }
    shown = to_text(pipeline, depth=None)
    assert ".scoring" not in shown


def test_without_outputs_every_inner_output_is_published_and_both_forms_mix(
    folder: Path,
) -> None:
    flow = write(
        folder,
        """
        version: 1
        workflow:
          name: flow
          inputs: {text: {type: string}}
          steps:
            - {name: whole, type: pipeline, pipeline_file: ./scorer.yaml}
            - name: both
              type: pipeline
              pipeline_file: ./scorer.yaml
              outputs: [{path: report.summary, as: summary}, {path: report, as: full}]
        """,
    )
    out = load_yaml(flow).run(text="a b")
    assert out["report"]["words"] == ["a", "b"]
    assert out["summary"] == "about a b"
    assert out["full"]["summary"] == "about a b"


def test_a_for_each_walks_the_path_in_every_item_and_caches_per_item(
    folder: Path, tmp_path: Path
) -> None:
    flow = write(
        folder,
        """
        version: 1
        workflow:
          name: flow
          inputs: {texts: {type: array}}
          steps:
            - name: each
              type: for_each
              over: "{{inputs.texts}}"
              as: text
              pipeline_file: ./scorer.yaml
              outputs: [{path: report.words.0, as: first_words}]
        """,
    )
    pipeline = load_yaml(flow).with_cache(DiskCache(tmp_path / "cache"))
    assert pipeline.run(texts=["a b", "c d"])["first_words"] == ["a", "c"]
    again = pipeline.run(texts=["a b", "c d", "e"])
    assert again["first_words"] == ["a", "c", "e"]
    assert again.report.cache_misses == 1


def test_a_missing_segment_fails_the_run_naming_step_path_and_segment(folder: Path) -> None:
    flow = write(
        folder,
        """
        version: 1
        workflow:
          name: flow
          inputs: {text: {type: string}}
          steps:
            - name: scoring
              type: pipeline
              pipeline_file: ./scorer.yaml
              outputs: [{path: report.scores.worst, as: worst}]
        """,
    )
    with pytest.raises(TemplateError) as caught:
        load_yaml(flow).run(text="x")
    message = str(caught.value)
    assert "Step `scoring` cannot publish `worst`" in message
    assert "`report.scores.worst` has no `worst`" in message
    assert f"{flow}:9" in message


@pytest.mark.parametrize(
    "entry",
    ["{path: report..x, as: y}", "{path: report._secret, as: y}", "{path: report.x}"],
    ids=["empty-segment", "private-segment", "no-as"],
)
def test_an_unreadable_output_entry_fails_loading(folder: Path, entry: str) -> None:
    flow = write(
        folder,
        f"""
        version: 1
        workflow:
          name: flow
          inputs: {{text: {{type: string}}}}
          steps:
            - name: scoring
              type: pipeline
              pipeline_file: ./scorer.yaml
              outputs: [{entry}]
        """,
    )
    with pytest.raises(SpecValidationError):
        load_yaml(flow)
