"""``nestflow run``: inputs, outputs, exit codes, progress and the saved report (A11.14)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_workspace import Invoke, command, on_a_terminal, without
from click.testing import Result

from nestflow import RunReport

RUNS = Path(".nestflow", "runs")

# --- A11.14 ----------------------------------------------------------------------------------


def test_a11_14_an_input_is_json_when_valid_else_text(nestflow: Invoke) -> None:
    done = nestflow("run", "flow.yaml", "--input", "n=3", "--input", "name=abc", "-o", "described")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"n": 3, "n_type": "int", "name": "abc", "name_type": "str"}
    assert done.stderr == ""  # no terminal: no progress


def test_a11_14_a_failing_run_exits_1_with_the_nested_report_on_stderr(nestflow: Invoke) -> None:
    done = nestflow("run", "failing.yaml", "--input", "n=2")
    assert done.returncode == 1
    assert done.stdout == ""
    report = done.stderr
    assert report.startswith("Pipeline run failed in a nested pipeline.")
    for line in (
        "  Pipeline: outer",
        "    Node: stage (pipeline)",
        "      Pipeline: inner",
        "        Node: explode (function)",
        "          Error: ValueError: cannot handle n=2",
        "    1. outer > stage",
        "    2. inner > explode",
    ):
        assert line in report
    assert "nestflow trace --last" in report


def test_a_failed_run_with_json_still_prints_its_document(script: Invoke, workspace: Path) -> None:
    done = script("run", "failing.yaml", "--input", "n=2", "--json")
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert document == {"status": "failed", "outputs": None, "run_id": document["run_id"]}
    assert RunReport.load(workspace / RUNS / f"{document['run_id']}.json").status == "failed"
    assert "Error: ValueError: cannot handle n=2" in done.stderr


def test_an_input_declared_as_a_string_keeps_its_text(script: Invoke) -> None:
    done = script("run", "flow.yaml", "-i", "n=3", "-i", "name=007", "-o", "described")
    assert json.loads(done.stdout)["name"] == "007"


# --- exit code 2: refused before anything runs ----------------------------------------------

REFUSED = {
    "missing input": (["flow.yaml", "-i", "n=3"], "missing inputs: `name`"),
    "unknown input": (["flow.yaml", "-i", "n=3", "-i", "name=a", "-i", "extra=1"], "`extra`"),
    "declared type": (["flow.yaml", "-i", "n=abc", "-i", "name=a"], "must be of type integer"),
    "not name=value": (["flow.yaml", "-i", "n"], "--input takes NAME=VALUE"),
    "input twice": (["flow.yaml", "-i", "n=1", "-i", "n=2", "-i", "name=a"], "given twice"),
    "unknown output": (["flow.yaml", "-i", "n=1", "-i", "name=a", "-o", "nope"], "nope"),
    "unknown option": (["flow.yaml", "--nope"], "No such option"),
    "no such file": (["missing.yaml"], "missing.yaml:0:0: file not found"),
    "load problems": (["bad.yaml"], "bad.yaml:9:17: cannot import module `nosuchmodule`"),
    "no such module": (["nosuchmodule:pipeline"], "cannot import module `nosuchmodule`"),
    "not a pipeline": (["flowfuncs:number"], "not a Pipeline"),
    "not a target": (["neither"], "neither a YAML file nor"),
    "inputs json": (["flow.yaml", "--inputs-json", "[1]"], "must be a JSON object"),
}


@pytest.mark.parametrize(("args", "said"), REFUSED.values(), ids=REFUSED.keys())
def test_a_usage_or_validation_problem_exits_2_before_running(
    script: Invoke, workspace: Path, args: list[str], said: str
) -> None:
    done = script("run", *args)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert done.stdout == ""
    assert not (workspace / ".nestflow").exists()  # nothing ran, nothing was recorded


def test_a_type_problem_names_the_input_and_its_declared_type(script: Invoke) -> None:
    done = script("run", "flow.yaml", "-i", "n=[1]", "-i", "name=a")
    assert done.returncode == 2
    assert "input `n` must be of type integer, got list [1]" in done.stderr


# --- outputs ---------------------------------------------------------------------------------


def test_json_prints_status_outputs_and_run_id(script: Invoke, workspace: Path) -> None:
    done = script("run", "flow.yaml", "-i", "n=3", "-i", "name=abc", "--json")
    document = json.loads(done.stdout)
    assert list(document) == ["status", "outputs", "run_id"]
    assert document["status"] == "ok"
    assert document["outputs"]["doubled"] == 6
    assert document["outputs"]["greeting"] == "hello abc"
    saved = workspace / ".nestflow" / "runs" / f"{document['run_id']}.json"
    assert RunReport.load(saved).status == "ok"


def test_one_output_prints_its_bare_value_and_a_string_raw(script: Invoke) -> None:
    number = script("run", "flow.yaml", "-i", "n=3", "-i", "name=abc", "--output", "doubled")
    assert number.stdout == "6\n"
    text = script("run", "flow.yaml", "-i", "n=3", "-i", "name=abc", "--output", "greeting")
    assert text.stdout == "hello abc\n"


def test_one_output_with_json_is_the_bare_value_as_json(script: Invoke) -> None:
    done = script("run", "flow.yaml", "-i", "n=3", "-i", "name=abc", "-o", "greeting", "--json")
    assert json.loads(done.stdout)["outputs"] == "hello abc"


def test_several_outputs_or_none_print_an_object(script: Invoke) -> None:
    some = script(
        "run", "flow.yaml", "-i", "n=3", "-i", "name=a", "-o", "greeting", "-o", "doubled"
    )
    assert json.loads(some.stdout) == {"greeting": "hello a", "doubled": 6}
    every = script("run", "flow.yaml", "-i", "n=3", "-i", "name=a")
    assert list(json.loads(every.stdout)) == ["described", "doubled", "greeting"]
    assert every.stdout.startswith('{\n  "described": {\n')  # indented


def test_a_value_json_cannot_hold_is_printed_as_its_repr(script: Invoke) -> None:
    done = script("run", "sets.yaml", "-i", "n=3", "--json")
    assert json.loads(done.stdout)["outputs"] == {"numbers": "{3}"}


def test_inputs_json_inline_and_from_a_file_with_input_winning(
    script: Invoke, workspace: Path
) -> None:
    (workspace / "inputs.json").write_text('{"n": 4, "name": "file"}', encoding="utf-8")
    inline = script("run", "flow.yaml", "--inputs-json", '{"n": 2, "name": "x"}', "-o", "doubled")
    assert inline.stdout == "4\n"
    from_file = script("run", "flow.yaml", "--inputs-json", "@inputs.json", "-i", "name=cli")
    assert json.loads(from_file.stdout)["greeting"] == "hello cli"
    assert json.loads(from_file.stdout)["doubled"] == 8


def test_a_module_attribute_target_runs_the_pipeline_it_names(nestflow: Invoke) -> None:
    done = nestflow("run", "flowfuncs:doubling", "-i", "x=21", "-o", "doubled")
    assert (done.returncode, done.stdout) == (0, "42\n")


# --- partial runs, caching -------------------------------------------------------------------


def test_a_partial_run_exits_0_and_sums_up_its_failures_on_stderr(script: Invoke) -> None:
    done = script("run", "flowfuncs:partial", "-i", "x=[1, 2, 3]", "--json")
    assert done.returncode == 0
    document = json.loads(done.stdout)
    assert document["status"] == "partial"
    assert document["outputs"] == {"y": [10, None, 30]}
    assert "Run partial: 1 failure continued past." in done.stderr
    assert "partial > each > fragile [item 1]: ValueError: two is bad" in done.stderr


def test_no_cache_runs_without_the_pipelines_cache(script: Invoke, workspace: Path) -> None:
    assert script("run", "flowfuncs:cached", "-i", "x=1", "--no-cache").stdout.strip()
    assert not (workspace / "cache").exists()
    script("run", "flowfuncs:cached", "-i", "x=1")
    again = json.loads(script("trace", "--json").stdout)
    assert again["cache_misses"] == 1
    script("run", "flowfuncs:cached", "-i", "x=1")
    assert json.loads(script("trace", "--json").stdout)["cache_hits"] == 1


# --- progress --------------------------------------------------------------------------------


RUN_FLOW = ["run", "flow.yaml", "-i", "n=3", "-i", "name=a"]


def test_progress_is_shown_on_stderr_when_stdout_is_a_terminal(workspace: Path) -> None:
    code, out, err = on_a_terminal([*command("script"), *RUN_FLOW], workspace)
    assert code == 0
    assert json.loads(out)["doubled"] == 6
    assert "flow [" in err
    assert "100%" in err
    assert "└─ greeting" in err


@pytest.mark.parametrize("flag", ["--no-progress", "--json"])
def test_no_progress_with_no_progress_or_json(workspace: Path, flag: str) -> None:
    code, out, err = on_a_terminal([*command("script"), *RUN_FLOW, flag], workspace)
    assert code == 0
    assert "doubled" in out
    assert err == ""


def test_without_rich_a_run_on_a_terminal_prints_its_outputs_plainly(workspace: Path) -> None:
    code, out, err = on_a_terminal([*without("rich"), *RUN_FLOW], workspace)
    assert code == 0, err
    assert json.loads(out)["doubled"] == 6
    assert err == ""


# --- the same, in this process (click's runner) ----------------------------------------------


@pytest.mark.parametrize(("args", "said"), REFUSED.values(), ids=REFUSED.keys())
def test_in_process_a_usage_or_validation_problem_exits_2(
    cli: Callable[..., Result], args: list[str], said: str
) -> None:
    done = cli("run", *args)
    assert (done.exit_code, done.stdout) == (2, "")
    assert said in done.stderr


def test_in_process_a_missing_input_is_shown_as_the_option_to_give(
    cli: Callable[..., Result],
) -> None:
    done = cli("run", "flow.yaml", "-i", "n=1")
    assert done.stderr.splitlines()[-1] == "Give them on the command line: --input name=..."


def test_in_process_a_failed_run_exits_1_and_a_partial_one_0(cli: Callable[..., Result]) -> None:
    failed = cli("run", "failing.yaml", "--inputs-json", '{"n": 2}')
    assert failed.exit_code == 1
    assert "Node: explode (function)" in failed.stderr
    partial = cli("run", "flowfuncs:partial", "-i", "x=[1, 2]", "-o", "y")
    assert (partial.exit_code, partial.stdout) == (0, "[\n  10,\n  null\n]\n")
    assert "Run partial: 1 failure continued past." in partial.stderr


def test_in_process_inputs_json_from_a_missing_file_exits_2(cli: Callable[..., Result]) -> None:
    done = cli("run", "flow.yaml", "--inputs-json", "@nowhere.json")
    assert done.exit_code == 2
    assert "cannot read --inputs-json file `nowhere.json`" in done.stderr
    bad = cli("run", "flow.yaml", "--inputs-json", "{nope")
    assert bad.exit_code == 2
    assert "--inputs-json is not valid JSON" in bad.stderr
