"""A11.1: the example of SPEC 11.1, as written there, with stand-in functions."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from nestflow.spec.loader import load_yaml

TEXT = """
def clean(text: str) -> str:
    return " ".join(text.split()).lower()

def headline(text: str) -> str:
    return text.upper()

def score(texts: list, threshold: float) -> dict:
    scores = [min(1.0, len(t) / 20) for t in texts]
    mean = sum(scores) / len(scores)
    return {"mean": mean, "summary": f"{len(texts)} texts, mean {mean:.2f}"}

def mean_of(report: dict) -> float:
    return report["mean"]
"""

ROOT = """
version: 1
workflow:
  name: review_docs                       # identifier; the pipeline name
  settings: {language: en}                # any extra keys are readable as {{workflow.<key>}}
  inputs:
    docs: {type: array}                   # required unless a default is given
    threshold: {type: number, default: 0.5}
  global_vars:
    model: small-v2
  config:                                 # workflow-level defaults (11.6)
    backend: {type: local, node_execution: threaded, max_workers: 4}
    cache: {type: disk, path: .nestflow-cache}
    timeout_seconds: 120
  steps:
    - name: cleaned
      type: for_each
      over: "{{inputs.docs}}"
      as: doc
      step:
        type: function
        function: "reviews.text:clean"
        inputs: {text: "{{doc.body}}"}
    - name: scoring
      type: pipeline
      pipeline_file: ./scoring.yaml       # relative to this file
      inputs: {texts: "{{steps.cleaned.result}}", threshold: "{{inputs.threshold}}"}
      outputs:
        - mean_score                      # inner step mean_score, published as mean_score
        - {path: report.summary, as: summary}
    - name: headline
      type: function
      function: "reviews.text:headline"
      condition: "{{steps.scoring.mean_score > inputs.threshold}}"
      inputs: {text: "Summary for {{workflow.name}}: {{steps.scoring.summary}}"}
"""

SCORING = """
version: 1
workflow:
  name: scoring
  inputs:
    texts: {type: array}
    threshold: {type: number}
  steps:
    - {name: report, type: function, function: "reviews.text:score"}
    - name: mean_score
      type: function
      function: "reviews.text:mean_of"
      inputs: {report: "{{steps.report.result}}"}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    package = tmp_path / "reviews"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "text.py").write_text(TEXT)
    (tmp_path / "review.yaml").write_text(textwrap.dedent(ROOT).lstrip())
    (tmp_path / "scoring.yaml").write_text(textwrap.dedent(SCORING).lstrip())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # the example's cache path is relative to where it runs
    try:
        yield tmp_path
    finally:
        for name in ("reviews.text", "reviews"):
            sys.modules.pop(name, None)


DOCS = [{"body": "  Good   soup, friendly staff and a view  "}, {"body": "Great service!"}]


def test_a11_1_the_example_loads_runs_and_publishes_what_it_says(folder: Path) -> None:
    flow = load_yaml(folder / "review.yaml")
    assert set(flow.outputs) == {"cleaned", "mean_score", "summary", "headline"}
    out = flow.run(docs=DOCS)
    cleaned = ["good soup, friendly staff and a view", "great service!"]
    assert out["cleaned"] == cleaned
    mean = (1.0 + len(cleaned[1]) / 20) / 2
    assert out["mean_score"] == pytest.approx(mean)
    assert out["summary"] == f"2 texts, mean {mean:.2f}"
    assert out["headline"] == f"SUMMARY FOR REVIEW_DOCS: 2 TEXTS, MEAN {mean:.2f}"
    assert (folder / ".nestflow-cache").is_dir()
    again = flow.run(docs=DOCS)
    assert again.report.cache_misses == 0
    below = flow.run(docs=DOCS, threshold=0.9)
    assert below["headline"] is None


def test_a11_1_the_picture_shows_scoring_as_a_cluster(folder: Path) -> None:
    source = load_yaml(folder / "review.yaml").visualize(depth=2).source
    assert "subgraph cluster" in source
    assert "scoring [pipeline scoring]" in source
    assert ".scoring" not in source
