"""LoggingCallback: structured JSON records and readable lines (SPEC 9.3, A9.11)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from nestflow import DiskCache, LoggingCallback, Pipeline, node


@node(output_name="doubled")
def double(x: int) -> int:
    return x * 2


@node(output_name="shown")
def show(doubled: int) -> str:
    if doubled < 0:
        raise ValueError("negative")
    return f"<{doubled}>"


def nested(callback: LoggingCallback, **options: Any) -> Pipeline:
    inner = Pipeline([double, show], name="inner")
    per_x = inner.as_node(name="per_x", map_over="xs", input_mapping={"xs": "x"})
    return Pipeline([per_x], name="outer", callbacks=[callback], **options)


def records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "nestflow"]


def test_a9_11_json_records_carry_depth_path_and_item_index(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="nestflow")
    nested(LoggingCallback()).run(xs=[1, 2])
    found = records(caplog)
    ends = [r for r in found if r["event"] == "node_end" and r["node"] == "show"]
    assert [(r["path"], r["depth"], r["item_index"]) for r in ends] == [
        ("outer > per_x > show", 1, 0),
        ("outer > per_x > show", 1, 1),
    ]
    assert all(r["duration_s"] >= 0 for r in ends)
    assert all(r["run_id"] == found[0]["run_id"] for r in found)
    assert {"event", "pipeline", "cached", "signature", "attempt", "error_type"} <= set(ends[0])
    assert found[0]["event"] == "pipeline_start"
    assert found[0]["depth"] == 0
    assert caplog.records[0].nestflow["path"] == "outer"  # type: ignore[attr-defined]


def test_cache_hits_and_failures_are_logged_with_their_fields(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, logger="nestflow")
    pipeline = nested(LoggingCallback(), cache=DiskCache(tmp_path))
    pipeline.run(xs=[3])
    caplog.clear()
    pipeline.run(xs=[3])
    cached = [r for r in records(caplog) if r["event"] == "node_cached"]
    assert {r["node"] for r in cached} == {"double", "show"}
    assert all(r["cached"] and len(r["signature"]) == 12 for r in cached)
    caplog.clear()
    with pytest.raises(ValueError, match="negative"):
        pipeline.run(xs=[-1])
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors
    first = json.loads(errors[0].getMessage())
    assert (first["event"], first["error_type"], first["error_message"]) == (
        "error",
        "ValueError",
        "negative",
    )


def test_readable_lines_are_indented_by_depth(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("nestflow.readable")
    caplog.set_level(logging.DEBUG, logger="nestflow.readable")
    nested(LoggingCallback(logger, level=logging.DEBUG, structured=False)).run(xs=[5])
    lines = [r.getMessage() for r in caplog.records if r.name == "nestflow.readable"]
    assert lines[0] == "pipeline_start outer"
    shown = next(line for line in lines if line.startswith("  node_end outer > per_x > show"))
    assert "[item 0]" in shown
    assert shown.endswith(" ms")
