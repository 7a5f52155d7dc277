"""``nestflow visualize``: DOT text, files, text lines, and the exit codes of its problems."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_workspace import Invoke, invoker, without
from click.testing import Result

from nestflow import load_yaml


def test_visualize_prints_dot_text_of_the_pipeline(nestflow: Invoke) -> None:
    done = nestflow("visualize", "failing.yaml", "--orient", "LR")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("digraph outer {")
    assert "rankdir=LR" in done.stdout


def test_text_lines_follow_the_depth(cli: Callable[..., Result], workspace: Path) -> None:
    pipeline = load_yaml(workspace / "failing.yaml")
    assert cli("visualize", "failing.yaml", "--text").stdout == pipeline.to_text() + "\n"
    expanded = cli("visualize", "failing.yaml", "--text", "--depth", "all").stdout
    assert expanded == pipeline.to_text(depth=None) + "\n"
    assert "[explode]" in expanded


def test_depth_2_expands_the_nested_pipeline_as_a_cluster(cli: Callable[..., Result]) -> None:
    collapsed = cli("visualize", "failing.yaml").stdout
    expanded = cli("visualize", "failing.yaml", "--depth", "2").stdout
    assert "subgraph cluster" not in collapsed
    assert "subgraph cluster" in expanded


def test_output_writes_the_file_its_suffix_names(
    cli: Callable[..., Result], workspace: Path
) -> None:
    done = cli("visualize", "flow.yaml", "--output", "flow.dot")
    assert (done.exit_code, done.stdout) == (0, "")
    assert (workspace / "flow.dot").read_text(encoding="utf-8").startswith("digraph flow {")
    cli("visualize", "flow.yaml", "--text", "--output", "flow.txt")
    assert (workspace / "flow.txt").read_text(encoding="utf-8").startswith("flow\n")


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot program")
def test_output_renders_an_svg(cli: Callable[..., Result], workspace: Path) -> None:
    assert cli("visualize", "flow.yaml", "-o", "flow.svg").exit_code == 0
    assert "<svg" in (workspace / "flow.svg").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--depth", "0"], "expected a level of at least 1"),
        (["--depth", "deep"], "expected a level of at least 1"),
        (["--orient", "UP"], "Invalid value for '--orient'"),
        (["--output", "flow.nosuchformat"], "unknown format"),
    ],
)
def test_bad_options_exit_2(cli: Callable[..., Result], args: list[str], said: str) -> None:
    done = cli("visualize", "flow.yaml", *args)
    assert done.exit_code == 2
    assert said in done.stderr


def test_without_graphviz_a_graph_exits_1_and_says_how_to_install_it(workspace: Path) -> None:
    invoke = invoker(without("graphviz"), workspace)
    done = invoke("visualize", "flow.yaml")
    assert done.returncode == 1
    assert "pip install 'nestflow[viz]'" in done.stderr
    assert invoke("visualize", "flow.yaml", "--text").returncode == 0
