"""Per-item ``on_error="continue"`` in maps (SPEC 5.2, 7.8).

Every item runs; a failed item gives ``None`` at its position in every output list and one
error record carrying its index; the run is ``partial``; consumers of the lists run; failed
items are never cached, so a second run computes only them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from nestflow import DiskCache, LocalBackend, Pipeline, PipelineCallback, node
from nestflow.callbacks.events import CallbackContext

cloudpickle.register_pickle_by_value(sys.modules[__name__])

BACKENDS = {
    "sequential": LocalBackend(),
    "threaded": LocalBackend(map_execution="threaded", max_workers=3),
    "async": LocalBackend(map_execution="async", node_execution="async"),
    "parallel": LocalBackend(map_execution="parallel", max_workers=2),
}


@node(output_name="embedding")
def embed(doc: str) -> int:
    if "bad" in doc:
        raise ValueError(f"cannot embed {doc!r}")
    return len(doc)


@node(output_name="count")
def count(embeddings: list[int | None]) -> int:
    return sum(1 for e in embeddings if e is not None)


def corpus_pipeline(backend: LocalBackend, **config: Any) -> Pipeline:
    encode = Pipeline([embed], name="encode")
    each = encode.as_node(
        name="encode_corpus",
        map_over="docs",
        input_mapping={"docs": "doc"},
        output_mapping={"embedding": "embeddings"},
        on_error="continue",
    )
    return Pipeline([each, count], name="retrieval", backend=backend, **config)


DOCS = ["alpha", "bad one", "gamma", "delta", "bad two", "epsilon"]


@pytest.mark.parametrize("mode", sorted(BACKENDS))
def test_every_item_runs_and_a_failed_item_is_none_at_its_position(mode: str) -> None:
    out = corpus_pipeline(BACKENDS[mode]).run(docs=DOCS)
    assert out["embeddings"] == [5, None, 5, 5, None, 7]
    assert out["count"] == 4, "the consumer ran on the list"
    report = out.report
    assert report.status == "partial"
    assert sorted((e.exception_type, e.item_path) for e in report.errors) == [
        ("ValueError", (1,)),
        ("ValueError", (4,)),
    ]
    assert {e.message for e in report.errors} == {
        "cannot embed 'bad one'",
        "cannot embed 'bad two'",
    }


@pytest.mark.parametrize("mode", sorted(BACKENDS))
def test_a_root_map_keeps_going_with_on_error_continue(mode: str) -> None:
    encode = Pipeline([embed], name="encode", backend=BACKENDS[mode])
    out = encode.map(doc=DOCS, map_over="doc", on_error="continue")
    assert out["embedding"] == [5, None, 5, 5, None, 7]
    assert out.report.status == "partial"
    assert sorted(e.item_path for e in out.report.errors) == [(1,), (4,)]
    assert out.report.failed_items == [(1,), (4,)]


def test_a_root_map_still_fails_fast_by_default() -> None:
    encode = Pipeline([embed], name="encode")
    with pytest.raises(ValueError, match="cannot embed 'bad one'") as caught:
        encode.map(doc=DOCS, map_over="doc")
    assert "nestflow: map item 1 of 6" in caught.value.__notes__


def test_map_on_error_must_be_raise_or_continue() -> None:
    encode = Pipeline([embed], name="encode")
    with pytest.raises(ValueError, match=r"on_error must be 'raise'.*got 'skip'"):
        encode.map(doc=DOCS, map_over="doc", on_error="skip")


def test_failed_items_are_not_cached_and_only_they_run_again(tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"

    @node(output_name="embedding")
    def logged(doc: str) -> int:
        with open(calls, "a", encoding="utf-8") as file:
            file.write(doc + "\n")
        if "bad" in doc and not (tmp_path / "fixed").exists():
            raise ValueError(f"cannot embed {doc!r}")
        return len(doc)

    encode = Pipeline([logged], name="encode", cache=DiskCache(tmp_path / "cache"))
    first = encode.map(doc=DOCS, map_over="doc", on_error="continue")
    assert first["embedding"] == [5, None, 5, 5, None, 7]
    (tmp_path / "fixed").touch()
    calls.write_text("")
    second = encode.map(doc=DOCS, map_over="doc", on_error="continue")
    assert second["embedding"] == [5, 7, 5, 5, 7, 7]
    assert second.report.status == "ok"
    assert calls.read_text().split("\n")[:-1] == ["bad one", "bad two"]


class ItemEnds(PipelineCallback):
    def __init__(self) -> None:
        self.ends: list[tuple[int, str | None]] = []

    def on_map_item_end(
        self, node_id: str, item_index: int, duration: float, ctx: CallbackContext
    ) -> None:
        self.ends.append((item_index, type(ctx.error).__name__ if ctx.error else None))


@pytest.mark.parametrize("mode", ["sequential", "threaded"])
def test_each_failed_item_ends_with_its_error(mode: str) -> None:
    seen = ItemEnds()
    pipeline = corpus_pipeline(BACKENDS[mode], callbacks=[seen])
    pipeline.run(docs=DOCS)
    assert sorted(seen.ends) == [
        (0, None),
        (1, "ValueError"),
        (2, None),
        (3, None),
        (4, "ValueError"),
        (5, None),
    ]


def test_a_map_that_cannot_start_still_continues_past_the_whole_node() -> None:
    """A mapped input that is not a collection fails the node as a whole: with continue,
    its outputs are None and its consumers are skipped (SPEC 7.8)."""
    out = corpus_pipeline(LocalBackend()).run(docs=3)
    assert out["embeddings"] is None
    assert out["count"] is None
    assert out.report.status == "partial"
    (record,) = out.report.errors
    assert record.exception_type == "MapInputError"
    assert record.node_path == "retrieval > encode_corpus"


def test_failed_items_name_items_of_inner_maps_by_their_path() -> None:
    encode = Pipeline([embed], name="encode")
    per_doc = encode.as_node(
        name="per_doc", map_over="docs", input_mapping={"docs": "doc"}, on_error="continue"
    )
    per_batch = Pipeline([per_doc], name="batch").as_node(
        name="per_batch", map_over="batches", input_mapping={"batches": "docs"}
    )
    out = Pipeline([per_batch], name="corpus").run(batches=[["a", "bad"], ["c"], ["bad", "e"]])
    assert out["embedding"] == [[1, None], [1], [None, 1]]
    assert out.report.failed_items == [(0, 1), (2, 0)]
    assert Pipeline([embed], name="ok").map(doc=["a"], map_over="doc").report.failed_items == []


@node(output_name="size")
def size_of(doc: object) -> int:
    return len(str(doc))


def test_an_item_that_cannot_be_shipped_is_one_failed_item_named_by_its_node() -> None:
    import threading

    each = Pipeline([size_of], name="measure").as_node(
        name="per_doc", map_over="docs", input_mapping={"docs": "doc"}, on_error="continue"
    )
    backend = LocalBackend(map_execution="parallel", max_workers=2)
    out = Pipeline([each], name="corpus", backend=backend).run(docs=["ab", threading.Lock(), "c"])
    assert out["size"] == [2, None, 1]
    (record,) = out.report.errors
    assert record.exception_type == "SerializationError"
    assert record.item_path == (1,)
    assert record.node_path == "corpus > per_doc"
    assert out.report.failed_items == [(1,)]
