"""YAML workflows: a loaded chain against the same chain built in Python, a templated input,
and the time a file (or a tree of files) takes to load."""

from __future__ import annotations

import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks.core import Row
from benchmarks.shapes import CHAIN
from benchmarks.timing import best
from nestflow import Pipeline, load_yaml, node

MODULE = "nestflow_bench_steps"


def _module(folder: Path) -> None:
    """An importable module of the chain's functions, and of one text function."""
    lines = [f"def s{i}(v):\n    return v + 1\n" for i in range(CHAIN)]
    lines.append("def measure(text):\n    return len(text)\n")
    (folder / f"{MODULE}.py").write_text("\n".join(lines))
    sys.path.insert(0, str(folder))


def _chain_yaml(name: str = "chain") -> str:
    steps = []
    for i in range(CHAIN):
        source = "{{inputs.v0}}" if i == 0 else f"{{{{steps.v{i}.result}}}}"
        steps.append(
            f'    - {{name: v{i + 1}, type: function, function: "{MODULE}:s{i}", '
            f'inputs: {{v: "{source}"}}}}'
        )
    head = f"version: 1\nworkflow:\n  name: {name}\n  inputs: {{v0: {{type: integer}}}}\n"
    return head + "  steps:\n" + "\n".join(steps) + "\n"


def _tree(folder: Path) -> Path:
    """A root file with two sub-pipeline files, each nesting a third: 3 levels, 5 files."""
    for middle in ("left", "right"):
        leaf = f"""
            version: 1
            workflow:
              name: leaf_{middle}
              inputs: {{v: {{type: integer}}}}
              steps:
                - name: {middle}_out
                  type: function
                  function: "{MODULE}:s0"
                  inputs: {{v: "{{{{inputs.v}}}}"}}
            """
        (folder / f"leaf_{middle}.yaml").write_text(textwrap.dedent(leaf))
        nested = f"""
            version: 1
            workflow:
              name: {middle}
              inputs: {{v: {{type: integer}}}}
              steps:
                - {{name: deep, type: pipeline, pipeline_file: ./leaf_{middle}.yaml}}
            """
        (folder / f"{middle}.yaml").write_text(textwrap.dedent(nested))
    root = folder / "root.yaml"
    root.write_text(
        textwrap.dedent(
            """
            version: 1
            workflow:
              name: root
              inputs: {v: {type: integer}}
              steps:
                - {name: left, type: pipeline, pipeline_file: ./left.yaml}
                - {name: right, type: pipeline, pipeline_file: ./right.yaml}
            """
        )
    )
    return root


def rows() -> list[Row]:
    folder = Path(tempfile.mkdtemp(prefix="nestflow-bench-yaml-"))
    _module(folder)
    module = __import__(MODULE)
    text = _chain_yaml()
    loaded = load_yaml(text)
    funcs = [getattr(module, f"s{i}") for i in range(CHAIN)]
    built = Pipeline(
        [node(f, output_name=f"v{i + 1}").with_inputs({"v": f"v{i}"}) for i, f in enumerate(funcs)],
        name="chain",
    )
    assert loaded.run(v0=0)[f"v{CHAIN}"] == built.run(v0=0)[f"v{CHAIN}"] == CHAIN
    yaml_per_node = best(lambda: loaded.run(v0=0), 2000) / CHAIN * 1e6
    python_per_node = best(lambda: built.run(v0=0), 2000) / CHAIN * 1e6

    templated = load_yaml(
        textwrap.dedent(
            f"""
            version: 1
            workflow:
              name: text
              inputs: {{n: {{type: integer}}}}
              steps:
                - {{name: size, type: function, function: "{MODULE}:measure",
                    inputs: {{text: "n={{{{inputs.n}}}}"}}}}
            """
        )
    )
    direct = Pipeline([node(module.measure, output_name="size").with_inputs({"text": "n"})])
    assert templated.run(n=7)["size"] == 3
    templated_us = best(lambda: templated.run(n=7), 5000) * 1e6
    direct_us = best(lambda: direct.run(n="n=7"), 5000) * 1e6

    load_ms = best(lambda: load_yaml(text), 20) * 1e3
    root = _tree(folder)
    assert dict(load_yaml(root).run(v=1)) == {"left_out": 2, "right_out": 2}
    tree_ms = best(lambda: load_yaml(root), 20) * 1e3
    return [
        Row("YAML chain of 100: per node", "µs", yaml_per_node, python_per_node, "<= 1.2x"),
        Row("YAML step with a text template: per run", "µs", templated_us, direct_us, "+ a few"),
        Row("YAML load, 100 function steps", "ms", load_ms, 0.0, "a few"),
        Row("YAML load, 3-level file tree", "ms", tree_ms, 0.0, "a few"),
    ]
