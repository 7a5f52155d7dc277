"""RunRecorder: the report of each root run saved as ``<directory>/<run_id>.json``."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestflow import Pipeline, RunReport, capture, node
from nestflow.callbacks.recorder import RunRecorder


@node(output_name="y")
def fragile(x: int) -> int:
    if x == 2:
        raise ValueError("two is bad")
    return 10 * x


@node(output_name="z")
def plus_one(y: int) -> int:
    return y + 1


def _saved(folder: Path) -> list[RunReport]:
    return [RunReport.load(path) for path in sorted(folder.glob("*.json"))]


def test_a_root_run_is_saved_under_its_run_id_as_it_ended(tmp_path: Path) -> None:
    pipeline = Pipeline([fragile, plus_one], name="flat", callbacks=[RunRecorder(tmp_path)])
    with capture() as runs:
        assert pipeline.run(x=1)["z"] == 11
    live = runs.last
    (saved,) = _saved(tmp_path)
    assert (tmp_path / f"{live.run_id}.json").is_file()
    assert (saved.run_id, saved.pipeline, saved.status) == (live.run_id, "flat", "ok")
    assert 0 < saved.duration_s <= live.duration_s
    assert saved.tree().splitlines()[2:] == live.tree().splitlines()[2:]  # durations aside
    assert [r.node for r in saved.records] == ["fragile", "plus_one"]


def test_a_failed_run_is_saved_as_failed_with_its_error(tmp_path: Path) -> None:
    pipeline = Pipeline([fragile], name="flat", callbacks=[RunRecorder(tmp_path)])
    with pytest.raises(ValueError, match="two is bad"):
        pipeline.run(x=2)
    (saved,) = _saved(tmp_path)
    assert saved.status == "failed"
    assert [(e.node_path, e.exception_type) for e in saved.errors] == [
        ("flat > fragile", "ValueError")
    ]


def test_a_run_continuing_past_failures_is_saved_as_partial(tmp_path: Path) -> None:
    inner = Pipeline([fragile], name="inner")
    each = inner.as_node(name="each", map_over="x", on_error="continue")
    outer = Pipeline([each], name="outer", callbacks=[RunRecorder(tmp_path)])
    outer.run(x=[1, 2, 3])
    (saved,) = _saved(tmp_path)  # nested levels are part of the root's report, not files
    assert saved.status == "partial"
    assert saved.failed_items == [(1,)]


def test_a_map_is_one_run_and_one_file(tmp_path: Path) -> None:
    pipeline = Pipeline([fragile], name="flat", callbacks=[RunRecorder(tmp_path)])
    assert pipeline.map(x=[1, 3, 4], map_over="x", output_name="y") == [10, 30, 40]
    (saved,) = _saved(tmp_path)
    assert saved.mapped is True
    assert len(saved.records) == 3


def test_the_default_directory_is_nestflow_runs_of_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    recorder = RunRecorder()
    assert repr(recorder) == "RunRecorder('.nestflow/runs')"
    Pipeline([fragile], callbacks=[recorder]).run(x=1)
    assert len(_saved(tmp_path / ".nestflow" / "runs")) == 1
