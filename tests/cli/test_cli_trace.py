"""``nestflow trace``: the tree and summary of a run ``nestflow run`` recorded (A11.15)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from cli_workspace import Invoke
from click.testing import Result

from nestflow import RunReport

RUNS = Path(".nestflow", "runs")


def _saved(folder: Path, run_id: str) -> RunReport:
    return RunReport.load(folder / RUNS / f"{run_id}.json")


def _run_id(result: Result) -> str:
    run_id: str = json.loads(result.stdout)["run_id"]
    return run_id


def test_a11_15_trace_last_prints_the_tree_of_the_previous_run(
    nestflow: Invoke, workspace: Path
) -> None:
    nestflow("run", "flow.yaml", "-i", "n=1", "-i", "name=first")
    ran = nestflow("run", "flowfuncs:partial", "-i", "x=[1, 2, 3]", "--json")
    run_id = json.loads(ran.stdout)["run_id"]
    done = nestflow("trace", "--last")
    assert done.returncode == 0, done.stderr
    report = _saved(workspace, run_id)
    tree = report.tree()
    assert done.stdout.startswith(tree + "\n\n")
    assert tree.startswith(f"run {run_id[:4]}…")
    assert "\npartial " in tree
    assert "└─ each [map ×3: 2 executed, 1 failed]" in tree
    assert done.stdout.endswith(str(report.summary()) + "\n")


def test_a_failed_run_is_recorded_and_traced_as_failed(script: Invoke, workspace: Path) -> None:
    assert script("run", "failing.yaml", "-i", "n=2").returncode == 1
    done = script("trace")  # without RUN_ID: the last run
    assert done.returncode == 0
    assert "explode ✗ ValueError: cannot handle n=2" in done.stdout
    (saved,) = (workspace / RUNS).glob("*.json")
    report = RunReport.load(saved)
    assert report.status == "failed"
    assert report.duration_s > 0
    assert [e.node_path for e in report.errors] == ["outer > stage > explode"]


def test_a_run_id_or_its_start_picks_that_run(cli: Callable[..., Result]) -> None:
    first = _run_id(cli("run", "flow.yaml", "-i", "n=1", "-i", "name=a", "--json"))
    cli("run", "flowfuncs:doubling", "-i", "x=2")
    assert "flow " in cli("trace", first).stdout.splitlines()[1]
    assert cli("trace", first[:10]).stdout == cli("trace", first).stdout
    assert "doubling " in cli("trace", "--last").stdout.splitlines()[1]


def test_items_lists_the_items_of_maps(cli: Callable[..., Result]) -> None:
    cli("run", "flowfuncs:partial", "-i", "x=[1, 2, 3]")
    listed = cli("trace", "--last", "--items").stdout
    assert "item 1 ✗ ValueError: two is bad" in listed
    assert "item 1" not in cli("trace", "--last").stdout


def test_json_prints_the_saved_report(cli: Callable[..., Result], workspace: Path) -> None:
    run_id = _run_id(cli("run", "flow.yaml", "-i", "n=1", "-i", "name=a", "--json"))
    shown = json.loads(cli("trace", "--last", "--json").stdout)
    assert shown == _saved(workspace, run_id).to_dict() | {"records": shown["records"]}
    assert [r["node"] for r in shown["records"]] == ["described", "doubled", "greeting"]


def test_trace_refuses_what_it_cannot_find_with_exit_2(
    cli: Callable[..., Result], workspace: Path
) -> None:
    nothing = cli("trace", "--last")
    assert nothing.exit_code == 2
    assert "No recorded runs in .nestflow/runs" in nothing.stderr
    run_id = _run_id(cli("run", "flow.yaml", "-i", "n=1", "-i", "name=a", "--json"))
    unknown = cli("trace", "ffff-not-a-run")
    assert unknown.exit_code == 2
    assert run_id[:12] in unknown.stderr
    both = cli("trace", run_id, "--last")
    assert both.exit_code == 2
    assert "not both" in both.stderr
    twin = workspace / RUNS / f"{run_id[:6]}twin.json"
    shutil.copy(workspace / RUNS / f"{run_id}.json", twin)
    ambiguous = cli("trace", run_id[:6])
    assert ambiguous.exit_code == 2
    assert "starts 2 run ids" in ambiguous.stderr
    twin.write_text("{not json", encoding="utf-8")
    damaged = cli("trace", twin.stem)
    assert damaged.exit_code == 2
    assert "not a readable run report" in damaged.stderr
