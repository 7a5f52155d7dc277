"""The run report's execution tree, performance summary and JSON files (SPEC 9.5, A9.13)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nestflow import DiskCache, Pipeline, RunReport, capture, node


@node(output_name="loaded")
def load(x: int) -> int:
    return x + 1


@node(output_name="scanned")
def scan(loaded: int) -> int:
    time.sleep(0.02)
    return loaded * 2


@node(output_name="linted")
def lint(scanned: int) -> int:
    if scanned > 10:
        raise ValueError("bad config")
    return scanned


@node(output_name="embedded")
def embed(item: int) -> int:
    return item * 3


def ingest(cache: DiskCache | None = None) -> Pipeline:
    analysis = Pipeline([scan, lint], name="analysis")
    embed_all = Pipeline([embed], name="embedder").as_node(
        name="embed_all", map_over="items", input_mapping={"items": "item"}
    )
    return Pipeline([load, analysis, embed_all], name="ingest", cache=cache)


def test_a9_13_tree_marks_a_failure_with_its_exception_type() -> None:
    with capture() as cap, pytest.raises(ValueError):
        ingest().run(x=9, items=[1])
    text = cap.last.tree()
    lines = text.splitlines()
    assert lines[0].startswith(f"run {cap.last.run_id[:4]}")
    assert lines[1].startswith("ingest ")
    assert "├─ load " in text
    assert "└─ analysis [pipeline]" in text
    assert "   ├─ scan " in text
    assert "   └─ lint ✗ ValueError: bad config" in text


def test_tree_shows_cached_nodes_and_map_counts(tmp_path: Path) -> None:
    pipeline = ingest(DiskCache(tmp_path))
    pipeline.run(x=1, items=[1, 2, 3])
    warm = pipeline.run(x=1, items=[1, 2, 3, 4]).report
    text = warm.tree()
    assert "├─ load ⚡ cached" in text
    assert "│  ├─ scan ⚡ cached" in text
    assert "└─ embed_all [map ×4: 1 executed, 3 cached]" in text
    assert "   └─ embed [×4: 1 executed, 3 cached]" in text
    listed = warm.tree(items=True).splitlines()
    assert [line.strip().split(" ")[:2] for line in listed[-4:]] == [
        ["item", "0"],
        ["item", "1"],
        ["item", "2"],
        ["item", "3"],
    ]
    assert listed[-1].strip().endswith("s")  # item 3 ran: a duration
    assert listed[-2].strip().endswith("⚡ cached")


def test_a_mapped_root_is_a_map_line() -> None:
    report = Pipeline([embed], name="em").map(item=[1, 2], map_over="item").report
    assert report.tree().splitlines()[1].startswith("em [map ×2: 2 executed]")


def test_a9_13_summary_lists_per_depth_metrics_and_the_slowest_node() -> None:
    report = ingest().run(x=1, items=[1, 2]).report
    summary = report.summary()
    assert summary.node_executions == 5
    assert summary.deepest_nesting == 1
    assert summary.failures == 0
    assert summary.success_rate == 1.0
    assert set(summary.per_depth) == {0, 1}
    assert summary.per_depth[1]["nodes"] == 4
    path, item_path, seconds = summary.bottlenecks[0]
    assert path == "ingest > analysis > scan"
    assert item_path == ()
    assert seconds >= 0.02
    text = str(summary)
    assert "per depth:" in text
    assert "ingest > analysis > scan" in text.split("slowest:")[1].splitlines()[1]


def test_summary_counts_failures_and_cache_hits(tmp_path: Path) -> None:
    pipeline = ingest(DiskCache(tmp_path))
    pipeline.run(x=1, items=[1])
    with capture() as cap, pytest.raises(ValueError):
        pipeline.run(x=9, items=[1])
    summary = cap.last.summary()
    assert summary.failures == 1
    assert summary.cache_hits == 0
    assert summary.node_executions == 2  # load and scan ran again for x=9
    assert 0 < summary.success_rate < 1


def test_a_saved_report_loads_back_with_its_records_and_tree(tmp_path: Path) -> None:
    report = ingest().run(x=1, items=[1, 2]).report
    path = report.save(tmp_path / "runs")
    assert path == tmp_path / "runs" / f"{report.run_id}.json"
    assert not list((tmp_path / "runs").glob("*.tmp"))
    loaded = RunReport.load(path)
    assert loaded.records == report.records
    assert loaded.to_dict() == report.to_dict()
    assert loaded.tree() == report.tree()


def test_two_nodes_nesting_one_pipeline_are_two_branches_of_the_tree() -> None:
    inner = Pipeline([embed], name="embedder")
    per_item = inner.as_node(name="per_item", map_over="items", input_mapping={"items": "item"})
    single = inner.as_node(name="single", input_mapping={"one": "item"},
                           output_mapping={"embedded": "one_embedded"})  # fmt: skip
    report = Pipeline([per_item, single], name="both").run(items=[1, 2], one=5).report
    text = report.tree()
    assert "├─ per_item [map ×2: 2 executed]" in text
    assert "└─ single [pipeline]" in text
    assert [r.levels for r in report.records] == [("per_item",), ("per_item",), ("single",)]


def test_a_mapped_node_alone_in_its_pipeline_is_drawn_as_the_map() -> None:
    each = Pipeline([embed], name="embedder").as_node(
        name="each", map_over="items", input_mapping={"items": "item"}
    )
    lines = Pipeline([each], name="outer").run(items=[1, 2, 3, 4]).report.tree().splitlines()
    assert lines[1].startswith("outer ")
    assert "[" not in lines[1], "the root ran once"
    assert lines[2].startswith("└─ each [map ×4: 4 executed] ")
    assert lines[3].startswith("   └─ embed [×4: 4 executed] ")


def test_a_mapped_node_alone_in_a_nested_pipeline_is_drawn_as_the_map() -> None:
    each = Pipeline([embed], name="embedder").as_node(
        name="each", map_over="items", input_mapping={"items": "item"}
    )
    stage = Pipeline([each], name="stage")
    text = Pipeline([load, stage], name="outer").run(x=1, items=[1, 2]).report.tree()
    assert "└─ stage [pipeline] " in text
    assert "   └─ each [map ×2: 2 executed] " in text


def test_a_mapped_root_whose_only_node_maps_is_two_maps() -> None:
    each = Pipeline([embed], name="embedder").as_node(name="each", map_over="item")
    report = Pipeline([each], name="outer").map(item=[[1, 2], [3]], map_over="item").report
    lines = report.tree().splitlines()
    assert lines[1].startswith("outer [map ×2: 2 executed] ")
    assert lines[2].startswith("└─ each [map ×3: 3 executed] ")


def test_a_map_over_a_pipeline_that_only_nests_another_is_drawn_as_it_ran() -> None:
    # A map over a root whose only node nests a pipeline, and a run whose only node is a
    # mapped nested pipeline, leave the same item paths: the report's `maps` tells them apart.
    nested = Pipeline([Pipeline([embed], name="embedder")], name="outer")
    report = nested.map(item=[1, 2], map_over="item").report
    assert report.maps == [()]
    assert report.mapped is True
    lines = report.tree().splitlines()
    assert lines[1].startswith("outer [map ×2: 2 executed] ")
    assert lines[2].startswith("└─ embedder [pipeline] ")
    wrapper = Pipeline([Pipeline([embed], name="embedder")], name="wrapper")
    each = wrapper.as_node(name="each", map_over="item")
    report = Pipeline([each], name="outer").run(item=[1, 2]).report
    assert report.maps == [("each",)]
    lines = report.tree().splitlines()
    assert lines[1].startswith("outer ")
    assert "[" not in lines[1]
    assert lines[2].startswith("└─ each [map ×2: 2 executed] ")
    assert lines[3].startswith("   └─ embedder [pipeline] ")


def test_a_report_without_its_maps_is_read_from_item_paths() -> None:
    nested = Pipeline([Pipeline([embed], name="embedder")], name="outer")
    report = nested.map(item=[1, 2], map_over="item").report
    report.maps = None
    assert report.mapped is None
    assert report.tree().splitlines()[2].startswith("└─ embedder [map ×2: 2 executed] ")


def test_the_maps_of_a_run_are_saved_and_loaded(tmp_path: Path) -> None:
    each = Pipeline([embed], name="embedder").as_node(name="each", map_over="item")
    report = Pipeline([each], name="em").map(item=[[1, 2], [3]], map_over="item").report
    assert sorted(report.maps) == [(), ("each",)]
    loaded = RunReport.load(report.save(tmp_path))
    assert loaded.maps == report.maps
    assert loaded.mapped is True
    assert loaded.tree() == report.tree()
