"""One pipeline nested by two nodes: every view names its levels by the nested nodes' ids.

``encode`` is nested twice in ``retrieval``: mapped over the corpus as ``encode_corpus`` and
once for the query as ``encode_query``. By pipeline names both would read
``retrieval > encode > embed``; error notes, log lines, the performance summary and the
report's stats say ``retrieval > encode_corpus > embed`` and ``retrieval > encode_query >
embed``, as the execution tree and the progress display do (SPEC 9.2, 9.5).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from nestflow import LoggingCallback, Pipeline, capture, node

CORPUS = "retrieval > encode_corpus > embed"
QUERY = "retrieval > encode_query > embed"


@node(output_name="vector")
def embed(passage: str) -> int:
    if passage == "bad":
        raise ValueError(f"cannot embed {passage!r}")
    return len(passage)


@node(output_name="best")
def rank(vectors: list[int], query_vector: int) -> int:
    return min(vectors, key=lambda v: abs(v - query_vector))


def retrieval(**options: Any) -> Pipeline:
    encode = Pipeline([embed], name="encode")
    encode_corpus = encode.as_node(
        name="encode_corpus",
        map_over="passages",
        input_mapping={"passages": "passage"},
        output_mapping={"vector": "vectors"},
    )
    encode_query = encode.as_node(
        name="encode_query",
        input_mapping={"query": "passage"},
        output_mapping={"vector": "query_vector"},
    )
    return Pipeline([encode_corpus, encode_query, rank], name="retrieval", **options)


def notes_of(**inputs: Any) -> list[str]:
    with pytest.raises(ValueError, match="cannot embed") as raised:
        retrieval().run(**inputs)
    return [n for n in getattr(raised.value, "__notes__", []) if n.startswith("nestflow: node")]


def test_an_error_note_names_the_nested_node_that_failed() -> None:
    assert notes_of(passages=["ab", "bad"], query="abc") == [f"nestflow: node {CORPUS} (depth 1)"]
    assert notes_of(passages=["ab", "abc"], query="bad") == [f"nestflow: node {QUERY} (depth 1)"]


def test_the_error_context_and_record_name_the_nested_node() -> None:
    with capture() as cap, pytest.raises(ValueError) as raised:
        retrieval().run(passages=["ab"], query="bad")
    assert raised.value.__nestflow__.path == QUERY  # type: ignore[attr-defined]
    assert raised.value.__nestflow__.levels == (  # type: ignore[attr-defined]
        ("retrieval", "encode_query"),
        ("encode", None),
    )
    assert [e.node_path for e in cap.last.errors] == [QUERY]


def test_log_lines_name_the_nested_node_of_each_event(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nestflow")
    retrieval(callbacks=[LoggingCallback()]).run(passages=["ab", "abc"], query="abcd")
    found = [json.loads(r.getMessage()) for r in caplog.records if r.name == "nestflow"]
    ends = [(r["path"], r["pipeline"], r["item_index"]) for r in found if r["event"] == "node_end"]
    assert ends == [
        (CORPUS, "encode", 0),
        (CORPUS, "encode", 1),
        (QUERY, "encode", None),
        ("retrieval > rank", "retrieval", None),
    ]
    levels = [r["path"] for r in found if r["event"] == "pipeline_start"]
    assert levels == ["retrieval", "retrieval > encode_corpus", "retrieval > encode_query"]
    maps = {r["path"] for r in found if r["event"].startswith("map_")}
    assert maps == {"retrieval > encode_corpus"}


def test_readable_log_lines_name_the_nested_node(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("nestflow.readable")
    caplog.set_level(logging.INFO, logger="nestflow.readable")
    callback = LoggingCallback(logger, structured=False)
    retrieval(callbacks=[callback]).run(passages=["ab"], query="abcd")
    lines = [r.getMessage() for r in caplog.records if r.name == "nestflow.readable"]
    assert any(line.startswith(f"  node_end {CORPUS} [item 0]") for line in lines)
    assert any(line.startswith(f"  node_end {QUERY} ") for line in lines)


def test_the_summary_names_the_nested_node_of_each_slow_execution() -> None:
    report = retrieval().run(passages=["ab", "abc"], query="abcd").report
    summary = report.summary()
    paths = sorted(path for path, _, _ in summary.bottlenecks)
    assert paths == [CORPUS, CORPUS, QUERY, "retrieval > rank"]
    slowest = str(summary).split("slowest:")[1]
    assert CORPUS in slowest
    assert QUERY in slowest


def test_stats_by_pipeline_count_each_nesting_of_a_pipeline_apart() -> None:
    report = retrieval().run(passages=["ab", "abc"], query="abcd").report
    by_level = report.stats(by="pipeline")
    assert {key: row["executed"] for key, row in by_level.items()} == {
        "retrieval > encode_corpus": 2,
        "retrieval > encode_query": 1,
        "retrieval": 1,
    }
    by_node = report.stats(by="node")
    assert {key: row["executed"] for key, row in by_node.items()} == {
        CORPUS: 2,
        QUERY: 1,
        "retrieval > rank": 1,
    }


def test_the_record_keeps_the_pipeline_path_and_gives_the_id_path() -> None:
    report = retrieval().run(passages=["ab"], query="abcd").report
    corpus, query, _ = report.records
    assert corpus.path == query.path == "retrieval > encode > embed"
    assert corpus.id_path == ("retrieval", "encode_corpus", "embed")
    assert query.id_path == ("retrieval", "encode_query", "embed")
