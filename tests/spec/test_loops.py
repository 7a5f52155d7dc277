"""``loop.*`` inside a for_each: index, first, last and length of each item (SPEC 11.3)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from nestflow import DiskCache
from nestflow.spec.loader import load_yaml

MODULE = """
CALLS = []

def tag(text: str) -> str:
    CALLS.append(text)
    return text
"""


@pytest.fixture
def module(step_module: Callable[[str, str], str]) -> str:
    return step_module("loopsteps", MODULE)


def flow(tmp_path: Path, module: str, body: str) -> Path:
    path = tmp_path / "flow.yaml"
    head = """
    version: 1
    workflow:
      name: looped
      inputs: {words: {type: array}, sizes: {type: array}}
      steps:
    """
    path.write_text(
        textwrap.dedent(head).lstrip()
        + textwrap.indent(textwrap.dedent(body).lstrip(), "    ").replace("MOD", module)
    )
    return path


def test_each_item_knows_its_place(tmp_path: Path, module: str) -> None:
    path = flow(
        tmp_path,
        module,
        """
        - name: each
          type: for_each
          over: "{{inputs.words}}"
          as: word
          step:
            type: function
            function: "MOD:tag"
            inputs:
              text: >-
                {{loop.index}}/{{loop.length}} {{word}}{{' first' if loop.first else ''}}{{'
                last' if loop.last else ''}}
        """,
    )
    out = load_yaml(path).run(words=["a", "b", "c"], sizes=[])
    assert out["each"] == ["0/3 a first", "1/3 b", "2/3 c last"]
    assert load_yaml(path).run(words=[], sizes=[])["each"] == []


def test_a_product_numbers_its_combinations_in_order(tmp_path: Path, module: str) -> None:
    path = flow(
        tmp_path,
        module,
        """
        - name: grid
          type: for_each
          over: {w: "{{inputs.words}}", s: "{{inputs.sizes}}"}
          mode: product
          step: {type: function, function: "MOD:tag", inputs: {text: "{{loop.index}}:{{w}}{{s}}"}}
        - name: pairs
          type: for_each
          over: {w: "{{inputs.words}}", s: "{{inputs.sizes}}"}
          step: {type: function, function: "MOD:tag", inputs: {text: "{{loop.index}}:{{w}}{{s}}"}}
        """,
    )
    out = load_yaml(path).run(words=["a", "b"], sizes=[1, 2])
    assert out["grid"] == ["0:a1", "1:a2", "2:b1", "3:b2"]
    assert out["pairs"] == ["0:a1", "1:b2"]
    with pytest.raises(ValueError, match="`words` has 2, `sizes` has 1 items"):
        load_yaml(path).run(words=["a", "b"], sizes=[1])


def test_items_are_cached_by_what_their_steps_read(tmp_path: Path, module: str) -> None:
    path = flow(
        tmp_path,
        module,
        """
        - name: each
          type: for_each
          over: "{{inputs.words}}"
          as: word
          step: {type: function, function: "MOD:tag", inputs: {text: "{{word}}@{{loop.index}}"}}
        """,
    )
    pipeline = load_yaml(path).with_cache(DiskCache(tmp_path / "cache"))
    calls = sys.modules[module].CALLS
    pipeline.run(words=["a", "b"], sizes=[])
    calls.clear()
    again = pipeline.run(words=["a", "b", "c"], sizes=[])
    assert again["each"] == ["a@0", "b@1", "c@2"]
    assert calls == ["c@2"]
    calls.clear()
    moved = pipeline.run(words=["z", "a"], sizes=[])
    assert moved["each"] == ["z@0", "a@1"]
    assert calls == ["z@0", "a@1"]  # a moved: its place is part of what it reads


def test_loop_is_readable_only_inside_a_for_each(tmp_path: Path, module: str) -> None:
    from nestflow.errors import TemplateError

    path = flow(
        tmp_path,
        module,
        """
        - {name: outside, type: function, function: "MOD:tag", inputs: {text: "{{loop.index}}"}}
        """,
    )
    with pytest.raises(TemplateError, match="loop"):
        load_yaml(path)
