"""Loading workflow files: every problem at once, with file, line and column (SPEC 11.9)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from nestflow import DiskCache, Pipeline
from nestflow.errors import (
    CircularDependencyError,
    ImportReferenceError,
    InputError,
    SpecValidationError,
    TemplateError,
)
from nestflow.spec.loader import load_yaml

MODULE = """
from nestflow import node

def clean(text: str) -> str:
    return text.strip().lower()

def count(texts: list) -> int:
    return len(texts)

def shout(text: str, times: int = 1) -> str:
    return text.upper() * times

CALLS = []

@node(output_name="doubled")
def doubled(n: int) -> int:
    CALLS.append(n)
    return 2 * n

NOT_A_FUNCTION = 3

def nap(label: str) -> list:
    import time
    started = time.perf_counter()
    time.sleep(0.3)
    return [label, started, time.perf_counter()]

def pair(a: int, b: str) -> str:
    return f"{b}{a}"
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A folder with an importable module ``yamlsteps`` (its functions) on the path."""
    module = f"yamlsteps_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module, None)


def module_of(workdir: Path) -> str:
    return f"yamlsteps_{workdir.name.replace('-', '_')}"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_a_workflow_of_function_steps_loads_and_runs(workdir: Path) -> None:
    m = module_of(workdir)
    flow = write(
        workdir,
        "flow.yaml",
        f"""
        version: 1
        workflow:
          name: flow
          inputs:
            text: {{type: string}}
            n: {{type: integer, default: 3}}
          steps:
            - name: cleaned
              type: function
              function: "{m}:clean"
            - name: loud
              type: function
              function: "{m}:shout"
              inputs: {{text: "{{{{steps.cleaned.result}}}}"}}
            - name: doubled
              type: function
              function: "{m}:doubled"
        """,
    )
    pipeline = load_yaml(flow)
    assert isinstance(pipeline, Pipeline)
    assert pipeline.name == "flow"
    assert set(pipeline.outputs) == {"cleaned", "loud", "doubled"}
    out = pipeline.run(text="  Hi ")
    assert dict(out) == {"cleaned": "hi", "loud": "HI", "doubled": 6}
    assert Pipeline.from_yaml(str(flow)).run(text="x", n=1)["doubled"] == 2


def test_a_step_naming_a_node_shares_its_cache_entries(workdir: Path, tmp_path: Path) -> None:
    m = module_of(workdir)
    flow = write(
        workdir,
        "flow.yaml",
        f"""
        version: 1
        workflow:
          name: flow
          inputs:
            n: {{type: integer}}
          steps:
            - name: doubled
              type: function
              function: "{m}:doubled"
        """,
    )
    module = sys.modules.get(m) or __import__(m)
    cache = DiskCache(tmp_path / "cache")
    assert Pipeline([module.doubled], name="flow", cache=cache).run(n=4)["doubled"] == 8
    out = load_yaml(flow).with_cache(cache).run(n=4)
    assert out["doubled"] == 8
    assert out.report.cache_hits == 1
    assert module.CALLS == [4]


def test_every_problem_of_a_file_is_reported_at_once_with_its_place(workdir: Path) -> None:
    m = module_of(workdir)
    flow = write(
        workdir,
        "bad.yaml",
        f"""
        version: 1
        workflow:
          name: bad
          steps:
            - name: one
              type: function
              function: "no_such_module_here:clean"
            - name: two
              type: function
              function: "{m}:missing_function"
            - name: three
              type: function
              function: "{m}:NOT_A_FUNCTION"
        """,
    )
    with pytest.raises(ImportReferenceError) as caught:
        load_yaml(flow)
    problems = caught.value.problems
    assert [(Path(f).name, line) for f, line, _, _ in problems] == [
        ("bad.yaml", 7),
        ("bad.yaml", 10),
        ("bad.yaml", 13),
    ]
    assert "no_such_module_here" in problems[0][3]
    assert "no attribute `missing_function`" in problems[1][3]
    assert "not a function" in problems[2][3]
    assert f"{flow.resolve()}:7:" in str(caught.value)


def test_an_unknown_key_names_the_closest_valid_one(workdir: Path) -> None:
    flow = write(
        workdir,
        "typo.yaml",
        """
        version: 1
        workflow:
          name: typo
          stepz: []
        """,
    )
    with pytest.raises(SpecValidationError) as caught:
        load_yaml(flow)
    messages = [p[3] for p in caught.value.problems]
    assert any("unknown key `stepz`" in m and "did you mean `steps`" in m for m in messages)
    assert any("needs `steps:`" in m for m in messages)


def test_a_step_with_an_unknown_type_and_a_duplicate_name(workdir: Path) -> None:
    m = module_of(workdir)
    flow = write(
        workdir,
        "steps.yaml",
        f"""
        version: 1
        workflow:
          name: steps
          steps:
            - {{name: a, type: functoin, function: "{m}:clean"}}
            - {{name: b, type: function, function: "{m}:clean", inputz: {{}}}}
            - {{name: b, type: function, function: "{m}:clean"}}
        """,
    )
    with pytest.raises(SpecValidationError) as caught:
        load_yaml(flow)
    text = str(caught.value)
    assert "unknown step type 'functoin' (did you mean `function`?)" in text
    assert "unknown key `inputz` in a function step (did you mean `inputs`?)" in text
    assert "a second step named `b`" in text
    assert len(caught.value.problems) == 3


def test_yaml_that_does_not_parse_and_unsafe_tags_are_errors(workdir: Path) -> None:
    broken = write(workdir, "broken.yaml", "workflow: [1,\n")
    with pytest.raises(SpecValidationError, match="not valid YAML"):
        load_yaml(broken)
    unsafe = "version: 1\nworkflow: !!python/object/apply:os.system ['touch /tmp/x']\n"
    with pytest.raises(SpecValidationError, match="is not read here") as caught:
        load_yaml(unsafe)
    assert caught.value.problems[0][:3] == ("<text>", 2, 11)


def test_files_that_refer_to_each_other_are_a_cycle_with_the_whole_chain(workdir: Path) -> None:
    m = module_of(workdir)
    write(
        workdir,
        "main.yaml",
        """
        version: 1
        workflow:
          name: main
          steps:
            - {name: a, type: pipeline, pipeline_file: ./pipeline_a.yaml}
        """,
    )
    for name, other in (("pipeline_a", "pipeline_b"), ("pipeline_b", "pipeline_a")):
        write(
            workdir,
            f"{name}.yaml",
            f"""
            version: 1
            workflow:
              name: {name}
              inputs: {{text: {{type: string}}}}
              steps:
                - {{name: cleaned_{name}, type: function, function: "{m}:clean"}}
                - {{name: next, type: pipeline, pipeline_file: ./{other}.yaml}}
            """,
        )
    with pytest.raises(CircularDependencyError) as caught:
        load_yaml(workdir / "main.yaml")
    text = str(caught.value)
    assert "main -> pipeline_a -> pipeline_b -> pipeline_a" in text
    assert "<- already in the chain" in text
    assert "pipeline_b.yaml:7:" in text, "the reference that closes the cycle is cited"


def test_a_missing_file_is_named(workdir: Path) -> None:
    with pytest.raises(SpecValidationError, match="No workflow file"):
        load_yaml(workdir / "absent.yaml")
    flow = write(
        workdir,
        "outer.yaml",
        """
        version: 1
        workflow:
          name: outer
          steps:
            - {name: inner, type: pipeline, pipeline_file: ./nowhere.yaml}
        """,
    )
    with pytest.raises(SpecValidationError, match="cannot read") as caught:
        load_yaml(flow)
    assert caught.value.problems[0][1] == 5


def test_an_undeclared_input_in_a_template_fails_at_load_time(workdir: Path) -> None:
    m = module_of(workdir)
    flow = write(
        workdir,
        "undeclared.yaml",
        f"""
        version: 1
        workflow:
          name: undeclared
          inputs: {{text: {{type: string}}}}
          steps:
            - name: loud
              type: function
              function: "{m}:shout"
              inputs: {{text: "{{{{inputs.txt}}}}"}}
        """,
    )
    with pytest.raises(TemplateError) as caught:
        load_yaml(flow)
    (file, line, column, message) = caught.value.problems[0]
    assert (Path(file).name, line) == ("undeclared.yaml", 9)
    assert column > 1
    assert "txt" in message


def test_a_for_each_maps_a_function_step_over_a_list(workdir: Path, tmp_path: Path) -> None:
    m = module_of(workdir)
    flow = write(
        workdir,
        "each.yaml",
        f"""
        version: 1
        workflow:
          name: each
          inputs: {{docs: {{type: array}}}}
          steps:
            - name: cleaned
              type: for_each
              over: "{{{{inputs.docs}}}}"
              as: doc
              step:
                type: function
                function: "{m}:clean"
                inputs: {{text: "{{{{doc}}}}"}}
            - name: total
              type: function
              function: "{m}:count"
              inputs: {{texts: "{{{{steps.cleaned.result}}}}"}}
        """,
    )
    pipeline = load_yaml(flow).with_cache(DiskCache(tmp_path / "c"))
    docs = [" A", "b ", " C ", "d", "E"]
    out = pipeline.run(docs=docs)
    assert out["cleaned"] == ["a", "b", "c", "d", "e"]
    assert out["total"] == 5
    again = pipeline.run(docs=[*docs[:4], "F"])
    assert again["cleaned"][-1] == "f"
    assert again.report.cache_hits >= 4, "each element is cached on its own"


def test_a_pipeline_step_takes_literals_and_references_and_publishes_chosen_outputs(
    workdir: Path,
) -> None:
    m = module_of(workdir)
    write(
        workdir,
        "sub.yaml",
        f"""
        version: 1
        workflow:
          name: sub
          inputs: {{text: {{type: string}}, times: {{type: integer}}}}
          steps:
            - {{name: cleaned, type: function, function: "{m}:clean"}}
            - name: loud
              type: function
              function: "{m}:shout"
              inputs: {{text: "{{{{steps.cleaned.result}}}}", times: "{{{{inputs.times}}}}"}}
        """,
    )
    flow = write(
        workdir,
        "outer.yaml",
        """
        version: 1
        workflow:
          name: outer
          inputs: {raw: {type: string}}
          steps:
            - name: first
              type: pipeline
              pipeline_file: ./sub.yaml
              inputs: {text: "{{inputs.raw}}", times: 2}
        """,
    )
    out = load_yaml(flow).run(raw=" Ab ")
    assert dict(out) == {"cleaned": "ab", "loud": "ABAB"}, "every inner output is published"
    chosen = flow.read_text().replace("times: 2}", "times: 2}\n      outputs: [loud]")
    flow.write_text(chosen)
    assert dict(load_yaml(flow).run(raw=" Ab ")) == {"loud": "ABAB"}
    wrong = chosen.replace("outputs: [loud]", "outputs: [shouted]")
    flow.write_text(wrong)
    with pytest.raises(SpecValidationError, match="has no output `shouted`"):
        load_yaml(flow)


def test_a_parallel_step_runs_its_sub_steps_side_by_side(workdir: Path) -> None:
    m = module_of(workdir)
    flow = write(
        workdir,
        "parallel.yaml",
        f"""
        version: 1
        workflow:
          name: fanout
          steps:
            - name: together
              type: parallel
              steps:
                - {{name: first, type: function, function: "{m}:nap", inputs: {{label: one}}}}
                - {{name: second, type: function, function: "{m}:nap", inputs: {{label: two}}}}
                - {{name: third, type: function, function: "{m}:nap", inputs: {{label: three}}}}
            - name: labels
              type: function
              function: "{m}:count"
              inputs: {{texts: "{{{{steps.together.result}}}}"}}
        """,
    )
    out = load_yaml(flow).run()
    spans = [out[name][1:] for name in ("first", "second", "third")]
    assert [out[name][0] for name in ("first", "second", "third")] == ["one", "two", "three"]
    latest_start = max(start for start, _ in spans)
    earliest_end = min(end for _, end in spans)
    assert latest_start < earliest_end, "the three sub-steps overlapped"
    assert out["labels"] == 3, "the step's result is a mapping keyed by sub-step"


def test_a_for_each_maps_several_lists_by_zip_or_product(workdir: Path) -> None:
    m = module_of(workdir)
    text = f"""
        version: 1
        workflow:
          name: grid
          inputs: {{ns: {{type: array}}, tags: {{type: array}}}}
          steps:
            - name: labelled
              type: for_each
              over: {{a: "{{{{inputs.ns}}}}", b: "{{{{inputs.tags}}}}"}}
              mode: MODE
              step:
                type: function
                function: "{m}:pair"
                inputs: {{a: "{{{{a}}}}", b: "{{{{b}}}}"}}
        """
    zipped = load_yaml(textwrap.dedent(text.replace("MODE", "zip")).lstrip())
    assert zipped.run(ns=[1, 2], tags=["x", "y"])["labelled"] == ["x1", "y2"]
    product = load_yaml(textwrap.dedent(text.replace("MODE", "product")).lstrip())
    assert product.run(ns=[1, 2], tags=["x", "y"])["labelled"] == ["x1", "y1", "x2", "y2"]


def test_inputs_are_checked_against_their_declared_types_when_a_run_starts(
    workdir: Path,
) -> None:
    m = module_of(workdir)
    flow = write(
        workdir,
        "typed.yaml",
        f"""
        version: 1
        workflow:
          name: typed
          inputs:
            text: {{type: string}}
            times: {{type: integer, default: 1}}
          steps:
            - {{name: loud, type: function, function: "{m}:shout"}}
        """,
    )
    pipeline = load_yaml(flow)
    assert pipeline.input_types == {"text": "string", "times": "integer"}
    assert pipeline.run(text="a", times=2)["loud"] == "AA"
    with pytest.raises(InputError) as caught:
        pipeline.run(text=3, times="two")
    message = str(caught.value)
    assert "input `text` must be of type string, got int 3" in message
    assert "input `times` must be of type integer, got str 'two'" in message
    with pytest.raises(InputError, match="got bool True"):
        pipeline.run(text="a", times=True)


def test_a_for_each_over_a_file_takes_inputs_outputs_and_config(workdir: Path) -> None:
    m = module_of(workdir)
    write(
        workdir,
        "item.yaml",
        f"""
        version: 1
        workflow:
          name: item
          inputs: {{text: {{type: string}}, times: {{type: integer}}}}
          steps:
            - {{name: cleaned, type: function, function: "{m}:clean"}}
            - name: loud
              type: function
              function: "{m}:shout"
              inputs: {{text: "{{{{steps.cleaned.result}}}}"}}
        """,
    )
    flow = write(
        workdir,
        "many.yaml",
        """
        version: 1
        workflow:
          name: many
          inputs: {docs: {type: array}, n: {type: integer}}
          steps:
            - name: each
              type: for_each
              over: "{{inputs.docs}}"
              as: text
              pipeline_file: ./item.yaml
              inputs: {times: "{{inputs.n}}"}
              outputs: [loud]
              config: {timeout_seconds: 30, max_retries: 1}
        """,
    )
    pipeline = load_yaml(flow)
    assert pipeline.outputs == ("loud",)
    assert pipeline.run(docs=[" a", "B "], n=2)["loud"] == ["AA", "BB"]
    config = pipeline.effective_config("each")
    assert config.timeout == 30
    assert config.retries == 1


def test_an_output_is_published_under_another_name_with_path_and_as(workdir: Path) -> None:
    m = module_of(workdir)
    write(
        workdir,
        "inner.yaml",
        f"""
        version: 1
        workflow:
          name: inner
          inputs: {{text: {{type: string}}}}
          steps:
            - {{name: cleaned, type: function, function: "{m}:clean"}}
        """,
    )
    flow = write(
        workdir,
        "renamed.yaml",
        """
        version: 1
        workflow:
          name: renamed
          inputs: {raw: {type: string}}
          steps:
            - name: first
              type: pipeline
              pipeline_file: ./inner.yaml
              inputs: {text: "{{inputs.raw}}"}
              outputs: [{path: cleaned, as: tidy}]
        """,
    )
    assert dict(load_yaml(flow).run(raw=" X ")) == {"tidy": "x"}
    flow.write_text(flow.read_text().replace("path: cleaned", "path: cleaned.body"))
    with pytest.raises(TemplateError, match=r"cannot publish `tidy`: the path `cleaned\.body`"):
        load_yaml(flow).run(raw=" X ")


def test_what_is_not_supported_yet_is_a_problem_naming_the_key(workdir: Path) -> None:
    m = module_of(workdir)
    flow = write(
        workdir,
        "later.yaml",
        f"""
        version: 1
        workflow:
          name: later
          inputs: {{text: {{type: string}}}}
          config: {{max_total_steps: 5}}
          steps:
            - {{name: a, type: function, function: "{m}:clean"}}
            - {{name: c, type: call, url: "http://localhost"}}
        """,
    )
    with pytest.raises(SpecValidationError) as caught:
        load_yaml(flow)
    text = str(caught.value)
    for key in ("call",):
        assert f"`{key}`" in text, key


def test_a_literal_for_a_sub_pipeline_cannot_be_shadowed_by_a_name_of_the_workflow(
    workdir: Path,
) -> None:
    m = module_of(workdir)
    write(
        workdir,
        "loud.yaml",
        f"""
        version: 1
        workflow:
          name: loud
          inputs: {{text: {{type: string}}, times: {{type: integer}}}}
          steps:
            - {{name: shouted, type: function, function: "{m}:shout"}}
        """,
    )
    flow = write(
        workdir,
        "outer.yaml",
        """
        version: 1
        workflow:
          name: outer
          inputs: {text: {type: string}, times: {type: integer}}
          steps:
            - name: twice
              type: pipeline
              pipeline_file: ./loud.yaml
              inputs: {text: "{{inputs.text}}", times: 2}
        """,
    )
    with pytest.raises(
        SpecValidationError, match="would be replaced by a workflow input"
    ) as caught:
        load_yaml(flow)
    assert caught.value.problems[0][1] == 9
    flow.write_text(flow.read_text().replace(", times: {type: integer}}", "}"))
    assert load_yaml(flow).run(text="a")["shouted"] == "AA"
