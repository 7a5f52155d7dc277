"""Nesting pipelines: pipelines as nodes, as_node mappings, map_over and selection (SPEC 5).

Every test that runs a pipeline runs twice through the ``run_path`` fixture: once on the
fast path (no callbacks anywhere) and once on the general path (a ``RecordingCallback``
attached to the outermost pipeline and inherited by every level). Both must give the
same results, so each test asserts the same expected values on both.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from nestflow import (
    DependencyError,
    InvalidNameError,
    MapInputError,
    MappingError,
    MissingInputError,
    Pipeline,
    PipelineNode,
    UnknownOutputError,
    node,
)
from nestflow.testing import RecordingCallback

# --- the two execution paths -------------------------------------------------------------------


@dataclass
class RunPath:
    """How a test runs its outermost pipeline: bare (fast path) or with a callback (general)."""

    name: str
    recorder: RecordingCallback | None

    def attach(self, pipeline: Pipeline) -> Pipeline:
        """The pipeline to run on this path."""
        if self.recorder is None:
            return pipeline
        return pipeline.with_callbacks([self.recorder])

    def run(self, pipeline: Pipeline, *args: Any, **kwargs: Any) -> Any:
        """Run ``pipeline`` on this path; on the general path, check the callback saw it."""
        self._reset()
        result = self.attach(pipeline).run(*args, **kwargs)
        self._check_observed(pipeline)
        return result

    def map(self, pipeline: Pipeline, *args: Any, **kwargs: Any) -> Any:
        """Map ``pipeline`` on this path; on the general path, check the callback saw it."""
        self._reset()
        result = self.attach(pipeline).map(*args, **kwargs)
        self._check_observed(pipeline)
        return result

    def _reset(self) -> None:
        if self.recorder is not None:
            self.recorder.events.clear()
            self.recorder.contexts.clear()

    def _check_observed(self, pipeline: Pipeline) -> None:
        if self.recorder is not None:
            assert self.recorder.events[0] == ("pipeline_start", pipeline.name)
            assert self.recorder.events[-1] == ("pipeline_end", pipeline.name)


@pytest.fixture(params=["fast", "general"])
def run_path(request: pytest.FixtureRequest) -> RunPath:
    """The fast path (no callbacks) and the general path (an inherited RecordingCallback)."""
    recorder = RecordingCallback() if request.param == "general" else None
    return RunPath(request.param, recorder)


@pytest.fixture
def calls() -> Counter[str]:
    """How many times each counting node ran."""
    return Counter()


# --- shared nodes ------------------------------------------------------------------------------


@node(output_name="doubled")
def double(x: int) -> int:
    return 2 * x


@node(output_name="incremented")
def add_one(doubled: int) -> int:
    return doubled + 1


@node(output_name="result")
def square(incremented: int) -> int:
    return incremented**2


@node(output_name="result")
def inc(doubled: int) -> int:
    return doubled + 1


@node(output_name="negated")
def negate(result: int) -> int:
    return -result


@node(output_name="result")
def shout(passage: str) -> str:
    return passage.upper()


@node(output_name="scaled")
def scale(item: int, factor: int) -> int:
    return item * factor


@node(output_name="product")
def multiply(a: int, b: int) -> int:
    return a * b


def counted(calls: Counter[str], output_name: str, fn: Callable[..., Any], name: str) -> Any:
    """A node named ``name`` around ``fn`` (same parameters) that counts its calls."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return fn(*args, **kwargs)

    wrapper.__name__ = name
    return node(wrapper, output_name=output_name, name=name)


def uvw_pipeline(calls: Counter[str]) -> Pipeline:
    """``outer = [inner(u, v), w(u)]`` with u = x + 1, v = u + 1, w = 10 * u (S17, S18)."""
    make_u = counted(calls, "u", lambda x: x + 1, name="make_u")
    make_v = counted(calls, "v", lambda u: u + 1, name="make_v")
    make_w = counted(calls, "w", lambda u: u * 10, name="make_w")
    inner = Pipeline([make_u, make_v], name="inner")
    return Pipeline([inner, make_w], name="outer")


# --- A5.1 pipelines as nodes -------------------------------------------------------------------


def test_a5_1_nested_pipeline_outputs_appear_in_outer_result(run_path: RunPath) -> None:
    outer = Pipeline([Pipeline([double, add_one]), square])
    result = run_path.run(outer, x=5)
    assert result == {"doubled": 10, "incremented": 11, "result": 121}


def test_a5_1_nested_pipeline_outputs_are_listed_in_outer_outputs() -> None:
    outer = Pipeline([Pipeline([double, add_one]), square])
    assert outer.outputs == ("doubled", "incremented", "result")
    assert outer.inputs == ("x",)


def test_a5_1_three_levels_give_the_same_result(run_path: RunPath) -> None:
    level2 = Pipeline([double], name="level2")
    level1 = Pipeline([level2, add_one], name="level1")
    root = Pipeline([level1, square], name="root")
    result = run_path.run(root, x=5)
    assert result == {"doubled": 10, "incremented": 11, "result": 121}


def test_a5_1_three_levels_with_all_nodes_innermost(run_path: RunPath) -> None:
    level2 = Pipeline([double, add_one, square], name="level2")
    root = Pipeline([Pipeline([level2], name="level1")], name="root")
    assert run_path.run(root, x=5) == {"doubled": 10, "incremented": 11, "result": 121}


def test_a5_1_four_levels_of_nesting_publish_every_level(run_path: RunPath) -> None:
    level3 = Pipeline([double], name="level3")
    level2 = Pipeline([level3, add_one], name="level2")
    level1 = Pipeline([level2, square], name="level1")
    root = Pipeline([level1, negate], name="root")
    result = run_path.run(root, x=5)
    assert result == {"doubled": 10, "incremented": 11, "result": 121, "negated": -121}


def test_a5_1_nested_run_records_nodes_under_the_nested_path(run_path: RunPath) -> None:
    level2 = Pipeline([double], name="level2")
    root = Pipeline([Pipeline([level2, add_one], name="level1"), square], name="root")
    result = run_path.run(root, x=5)
    paths = [record.path for record in result.report.records]
    assert paths == ["root > level1 > level2 > double", "root > level1 > add_one", "root > square"]


# --- A5.2 mapping a pipeline that contains a pipeline -------------------------------------------


def test_a5_2_map_over_pipeline_with_nested_pipeline_is_columnar(run_path: RunPath) -> None:
    outer = Pipeline([Pipeline([double, inc])])
    result = run_path.map(outer, inputs={"x": [1, 2, 3]}, map_over="x")
    assert result == {"doubled": [2, 4, 6], "result": [3, 5, 7]}


# --- A5.3 input_mapping ------------------------------------------------------------------------


def test_a5_3_input_mapping_feeds_outer_name_to_inner_input(run_path: RunPath) -> None:
    inner = Pipeline([shout], name="inner")
    outer = Pipeline([inner.as_node(input_mapping={"document": "passage"})], name="outer")
    assert outer.inputs == ("document",)
    assert run_path.run(outer, document="hello") == {"result": "HELLO"}


def test_a5_3_reversed_input_mapping_says_reverse() -> None:
    inner = Pipeline([shout], name="inner")
    with pytest.raises(MappingError) as info:
        inner.as_node(input_mapping={"passage": "document"})
    message = str(info.value)
    assert "document" in message
    assert "passage" in message
    assert "reverse" in message


def test_a5_3_mapping_error_is_a_value_error() -> None:
    inner = Pipeline([shout], name="inner")
    with pytest.raises(ValueError, match="reverse"):
        inner.as_node(input_mapping={"passage": "document"})


def test_a5_3_unknown_input_mapping_target_lists_inner_inputs() -> None:
    inner = Pipeline([scale], name="inner")
    with pytest.raises(MappingError) as info:
        inner.as_node(input_mapping={"items": "itme"})
    message = str(info.value)
    assert "itme" in message
    assert "item" in message.replace("itme", "")
    assert "factor" in message


def test_a5_3_two_outer_names_feeding_one_inner_input_are_rejected() -> None:
    inner = Pipeline([shout], name="inner")
    with pytest.raises(MappingError) as info:
        inner.as_node(input_mapping={"document": "passage", "text": "passage"})
    message = str(info.value)
    assert "passage" in message
    assert "document" in message
    assert "text" in message


# --- A5.4 output_mapping -----------------------------------------------------------------------


def test_a5_4_output_mapping_renames_and_hides_the_inner_name(run_path: RunPath) -> None:
    inner = Pipeline([shout], name="inner")
    outer = Pipeline([inner.as_node(output_mapping={"result": "processed_data"})], name="outer")
    result = run_path.run(outer, passage="hello")
    assert result == {"processed_data": "HELLO"}
    assert "result" not in result


def test_a5_4_output_mapping_exposes_only_the_mapped_outputs() -> None:
    inner = Pipeline([double, add_one], name="inner")
    mapped = inner.as_node(output_mapping={"doubled": "D"})
    assert mapped.outputs == ("D",)
    assert Pipeline([mapped], name="outer").outputs == ("D",)


def test_a5_4_output_mapping_of_one_output_returns_exactly_it(
    run_path: RunPath, calls: Counter[str]
) -> None:
    make_u = counted(calls, "u", lambda x: x + 1, name="make_u")
    make_v = counted(calls, "v", lambda u: u + 1, name="make_v")
    inner = Pipeline([make_u, make_v], name="inner")
    outer = Pipeline([inner.as_node(output_mapping={"u": "U"})], name="outer")
    assert run_path.run(outer, x=1) == {"U": 2}


def test_a5_4_hidden_output_cannot_be_requested(run_path: RunPath) -> None:
    inner = Pipeline([double, add_one], name="inner")
    outer = Pipeline([inner.as_node(output_mapping={"incremented": "inc"})], name="outer")
    with pytest.raises(UnknownOutputError, match="inc"):
        run_path.attach(outer).run(x=1, output_name="doubled")


def test_a5_4_hidden_outputs_are_computed_when_needed_internally(
    run_path: RunPath, calls: Counter[str]
) -> None:
    make_u = counted(calls, "u", lambda x: x + 1, name="make_u")
    make_v = counted(calls, "v", lambda u: u + 1, name="make_v")
    make_w = counted(calls, "w", lambda V: V * 10, name="make_w")
    inner = Pipeline([make_u, make_v], name="inner")
    outer = Pipeline([inner.as_node(output_mapping={"v": "V"}), make_w], name="outer")
    result = run_path.run(outer, x=1)
    assert result == {"V": 3, "w": 30}
    assert "u" not in result
    assert calls == {"make_u": 1, "make_v": 1, "make_w": 1}


def test_a5_4_hidden_outputs_still_appear_in_the_report(
    run_path: RunPath, calls: Counter[str]
) -> None:
    make_u = counted(calls, "u", lambda x: x + 1, name="make_u")
    make_v = counted(calls, "v", lambda u: u + 1, name="make_v")
    inner = Pipeline([make_u, make_v], name="inner")
    outer = Pipeline([inner.as_node(output_mapping={"v": "V"})], name="outer")
    result = run_path.run(outer, x=1)
    paths = [record.path for record in result.report.records]
    assert paths == ["outer > inner > make_u", "outer > inner > make_v"]


def test_a5_4_reversed_output_mapping_says_reverse() -> None:
    inner = Pipeline([shout], name="inner")
    with pytest.raises(MappingError) as info:
        inner.as_node(output_mapping={"processed_data": "result"})
    message = str(info.value)
    assert "processed_data" in message
    assert "result" in message
    assert "reverse" in message


def test_a5_4_unknown_output_mapping_key_lists_inner_outputs() -> None:
    inner = Pipeline([double, add_one], name="inner")
    with pytest.raises(MappingError) as info:
        inner.as_node(output_mapping={"doubeld": "d"})
    message = str(info.value)
    assert "doubeld" in message
    assert "doubled" in message.replace("doubeld", "")
    assert "incremented" in message


def test_a5_4_two_inner_outputs_landing_on_one_outer_name_are_rejected() -> None:
    inner = Pipeline([double, add_one], name="inner")
    with pytest.raises(MappingError) as info:
        inner.as_node(output_mapping={"doubled": "z", "incremented": "z"})
    message = str(info.value)
    assert re.search(r"\bz\b", message)
    assert "doubled" in message
    assert "incremented" in message


# --- A5.5 collisions between nested nodes -------------------------------------------------------


@node(output_name="result")
def times_two(x: int) -> int:
    return 2 * x


@node(output_name="result")
def times_three(x: int) -> int:
    return 3 * x


@node(output_name="combined")
def combine(result_a: int, result_b: int) -> int:
    return result_a + result_b


def test_a5_5_output_mapping_resolves_colliding_nested_outputs(run_path: RunPath) -> None:
    branch_a = Pipeline([times_two], name="branch_a")
    branch_b = Pipeline([times_three], name="branch_b")
    outer = Pipeline(
        [
            branch_a.as_node(output_mapping={"result": "result_a"}),
            branch_b.as_node(output_mapping={"result": "result_b"}),
            combine,
        ],
        name="outer",
    )
    result = run_path.run(outer, x=5)
    assert result == {"result_a": 10, "result_b": 15, "combined": 25}


def test_a5_5_colliding_nested_outputs_raise_dependency_error_naming_both_nodes() -> None:
    branch_a = Pipeline([times_two], name="branch_a")
    branch_b = Pipeline([times_three], name="branch_b")
    with pytest.raises(DependencyError) as info:
        Pipeline([branch_a, branch_b], name="outer")
    message = str(info.value)
    assert "result" in message
    assert "branch_a" in message
    assert "branch_b" in message
    assert "output_mapping" in message


# --- A5.6 map_over with input_mapping and broadcast inputs --------------------------------------


def test_a5_6_map_over_with_input_mapping_maps_each_element(run_path: RunPath) -> None:
    inner = Pipeline([scale], name="scale_one")
    mapped = inner.as_node(
        map_over="items",
        input_mapping={"items": "item"},
        output_mapping={"scaled": "scaled_list"},
    )
    outer = Pipeline([mapped], name="outer")
    result = run_path.run(outer, items=[1, 2, 3], factor=10)
    assert result == {"scaled_list": [10, 20, 30]}


def test_a5_6_broadcast_input_reaches_all_items_without_input_mapping(
    run_path: RunPath,
) -> None:
    inner = Pipeline([scale], name="scale_one")
    outer = Pipeline([inner.as_node(map_over="item")], name="outer")
    assert outer.inputs == ("item", "factor")
    result = run_path.run(outer, item=[1, 2, 3], factor=10)
    assert result == {"scaled": [10, 20, 30]}


def test_a5_6_broadcast_input_reaches_all_items_with_input_mapping(run_path: RunPath) -> None:
    inner = Pipeline([scale], name="scale_one")
    mapped = inner.as_node(map_over="items", input_mapping={"items": "item", "k": "factor"})
    outer = Pipeline([mapped], name="outer")
    assert set(outer.inputs) == {"items", "k"}
    result = run_path.run(outer, items=[1, 2, 3], k=7)
    assert result == {"scaled": [7, 14, 21]}


def test_a5_6_broadcast_list_input_reaches_every_item_unchanged(run_path: RunPath) -> None:
    seen: list[list[int]] = []

    @node(output_name="picked")
    def pick(index: int, table: list[int]) -> int:
        seen.append(table)
        return table[index]

    inner = Pipeline([pick], name="pick_one")
    mapped = inner.as_node(map_over="indices", input_mapping={"indices": "index"})
    outer = Pipeline([mapped], name="outer")
    table = [100, 200, 300]
    result = run_path.run(outer, indices=[2, 0], table=table)
    assert result == {"picked": [300, 100]}
    assert seen == [table, table]


def test_a5_6_mapped_node_inputs_are_outer_names() -> None:
    inner = Pipeline([scale], name="scale_one")
    mapped = inner.as_node(map_over="items", input_mapping={"items": "item"})
    assert isinstance(mapped, PipelineNode)
    assert mapped.inputs == ("items", "factor")
    assert mapped.outputs == ("scaled",)


def test_a5_6_every_visible_output_becomes_a_list_in_item_order(run_path: RunPath) -> None:
    @node(output_name="square_of")
    def square_item(item: int) -> int:
        return item * item

    inner = Pipeline([scale, square_item], name="per_item")
    outer = Pipeline([inner.as_node(map_over="item")], name="outer")
    result = run_path.run(outer, item=[3, 1, 2], factor=2)
    assert result == {"scaled": [6, 2, 4], "square_of": [9, 1, 4]}


def test_a5_6_map_over_empty_list_returns_empty_lists_and_calls_nothing(
    run_path: RunPath, calls: Counter[str]
) -> None:
    scaled = counted(calls, "scaled", lambda item, factor: item * factor, name="scale")
    inner = Pipeline([scaled], name="scale_one")
    outer = Pipeline([inner.as_node(map_over="item")], name="outer")
    assert run_path.run(outer, item=[], factor=2) == {"scaled": []}
    assert calls == {}


def test_a5_6_inner_pipeline_runs_once_per_item(run_path: RunPath, calls: Counter[str]) -> None:
    scaled = counted(calls, "scaled", lambda item, factor: item * factor, name="scale")
    inner = Pipeline([scaled], name="scale_one")
    outer = Pipeline([inner.as_node(map_over="item")], name="outer")
    run_path.run(outer, item=[1, 2, 3, 4], factor=2)
    assert calls == {"scale": 4}


def test_a5_6_mapped_node_output_feeds_a_downstream_node_as_a_list(run_path: RunPath) -> None:
    received: list[Any] = []

    @node(output_name="total")
    def total(scaled_list: list[int]) -> int:
        received.append(scaled_list)
        return sum(scaled_list)

    inner = Pipeline([scale], name="scale_one")
    mapped = inner.as_node(
        map_over="items",
        input_mapping={"items": "item"},
        output_mapping={"scaled": "scaled_list"},
    )
    outer = Pipeline([mapped, total], name="outer")
    assert run_path.run(outer, items=(1, 2, 3), factor=2) == {
        "scaled_list": [2, 4, 6],
        "total": 12,
    }
    assert received == [[2, 4, 6]]
    assert type(received[0]) is list


# --- A5.7 product mode ------------------------------------------------------------------------


def test_a5_7_map_over_two_names_in_product_mode(run_path: RunPath) -> None:
    inner = Pipeline([multiply], name="mul")
    outer = Pipeline([inner.as_node(map_over=["a", "b"], map_mode="product")], name="outer")
    result = run_path.run(outer, a=[1, 2], b=[10, 20, 30])
    assert result == {"product": [10, 20, 30, 20, 40, 60]}


def test_a5_7_map_over_two_names_zips_by_default(run_path: RunPath) -> None:
    inner = Pipeline([multiply], name="mul")
    outer = Pipeline([inner.as_node(map_over=["a", "b"])], name="outer")
    assert run_path.run(outer, a=[1, 2], b=[10, 20]) == {"product": [10, 40]}


def test_a5_7_zip_of_unequal_lengths_raises_map_input_error(run_path: RunPath) -> None:
    inner = Pipeline([multiply], name="mul")
    outer = Pipeline([inner.as_node(map_over=["a", "b"])], name="outer")
    with pytest.raises(MapInputError, match="length"):
        run_path.attach(outer).run(a=[1, 2, 3], b=[10, 20])


# --- A5.8 double map ---------------------------------------------------------------------------


def scale_list_pipeline() -> Pipeline:
    """``o1``: a pipeline whose only node maps ``scale`` over ``items`` (S15)."""
    inner = Pipeline([scale], name="scale_one")
    mapped = inner.as_node(
        map_over="items",
        input_mapping={"items": "item"},
        output_mapping={"scaled": "scaled_list"},
    )
    return Pipeline([mapped], name="o1")


def test_a5_8_outer_map_over_mapped_node_is_a_double_map(run_path: RunPath) -> None:
    o1 = scale_list_pipeline()
    result = run_path.map(o1, inputs={"items": [[1, 2], [3]], "factor": 2}, map_over="items")
    assert result == {"scaled_list": [[2, 4], [6]]}


def test_a5_8_double_map_feeds_each_outer_item_its_own_list(run_path: RunPath) -> None:
    @node(output_name="total")
    def total(scaled_list: list[int]) -> int:
        return sum(scaled_list)

    o1 = scale_list_pipeline()
    outer = Pipeline([*o1.nodes, total], name="o2")
    result = run_path.map(outer, items=[[1, 2], [3], []], factor=3, map_over="items")
    assert result == {"scaled_list": [[3, 6], [9], []], "total": [9, 9, 0]}


def test_a5_8_double_map_calls_inner_node_once_per_inner_item(
    run_path: RunPath, calls: Counter[str]
) -> None:
    scaled = counted(calls, "scaled", lambda item, factor: item * factor, name="scale")
    inner = Pipeline([scaled], name="scale_one")
    mapped = inner.as_node(map_over="items", input_mapping={"items": "item"})
    outer = Pipeline([mapped], name="outer")
    result = run_path.map(outer, items=[[1, 2], [3], [4, 5, 6]], factor=1, map_over="items")
    assert result == {"scaled": [[1, 2], [3], [4, 5, 6]]}
    assert calls == {"scale": 6}


def test_a5_8_mapped_node_inside_nested_pipeline_inside_a_map(run_path: RunPath) -> None:
    o1 = scale_list_pipeline()
    root = Pipeline([o1], name="root")
    result = run_path.map(root, items=[[1], [2, 3]], factor=10, map_over="items")
    assert result == {"scaled_list": [[10], [20, 30]]}


# --- A5.9 the encode-corpus example -------------------------------------------------------------


class StandInEncoder:
    """Encodes a text as the lengths of its words (a pure-Python stand-in for a model)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, text: str) -> tuple[int, ...]:
        self.seen.append(text)
        return tuple(len(word) for word in text.split())


class StandInIndexer:
    """Builds an index ``{passage id: vector}`` from a list of encoded passages."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    def build(self, encoded: list[dict[str, Any]]) -> dict[str, tuple[int, ...]]:
        self.received.append(encoded)
        return {entry["id"]: entry["vector"] for entry in encoded}


@node(output_name="cleaned")
def clean(passage: dict[str, str]) -> str:
    return " ".join(passage["text"].split()).casefold()


@node(output_name="embedding")
def encode(cleaned: str, encoder: StandInEncoder) -> tuple[int, ...]:
    return encoder.encode(cleaned)


@node(output_name="encoded_passage")
def pack(passage: dict[str, str], embedding: tuple[int, ...]) -> dict[str, Any]:
    return {"id": passage["id"], "vector": embedding}


@node(output_name="index")
def build_index(encoded_corpus: list[dict[str, Any]], indexer: StandInIndexer) -> Any:
    return indexer.build(encoded_corpus)


def encode_corpus_index() -> Pipeline:
    """The pipeline of SPEC 5.3."""
    clean_p = Pipeline([clean], name="clean_p")
    encode_p = Pipeline([encode], name="encode_p")
    encode_one = Pipeline([clean_p, encode_p, pack], name="encode_one")
    encode_corpus = encode_one.as_node(
        name="encode_corpus",
        map_over="corpus",
        input_mapping={"corpus": "passage"},
        output_mapping={"encoded_passage": "encoded_corpus"},
    )
    return Pipeline([encode_corpus, build_index], name="index")


PASSAGES = [
    {"id": "p1", "text": "  Hello   nested World "},
    {"id": "p2", "text": "Pipelines\tare nodes"},
]


def test_a5_9_encode_corpus_builds_an_index_over_all_passages(run_path: RunPath) -> None:
    encoder, indexer = StandInEncoder(), StandInIndexer()
    result = run_path.run(encode_corpus_index(), corpus=PASSAGES, encoder=encoder, indexer=indexer)
    assert result["index"] == {"p1": (5, 6, 5), "p2": (9, 3, 5)}
    assert list(result["index"]) == ["p1", "p2"]
    assert encoder.seen == ["hello nested world", "pipelines are nodes"]


def test_a5_9_encode_corpus_exposes_encoded_corpus_not_encoded_passage(
    run_path: RunPath,
) -> None:
    index = encode_corpus_index()
    assert "encoded_corpus" in index.outputs
    assert "encoded_passage" not in index.outputs
    result = run_path.run(
        index, corpus=PASSAGES, encoder=StandInEncoder(), indexer=StandInIndexer()
    )
    assert set(result) == {"encoded_corpus", "index"}
    assert result["encoded_corpus"] == [
        {"id": "p1", "vector": (5, 6, 5)},
        {"id": "p2", "vector": (9, 3, 5)},
    ]


def test_a5_9_build_index_receives_one_list_of_encoded_passages(run_path: RunPath) -> None:
    indexer = StandInIndexer()
    run_path.run(encode_corpus_index(), corpus=PASSAGES, encoder=StandInEncoder(), indexer=indexer)
    assert len(indexer.received) == 1
    assert isinstance(indexer.received[0], list)
    assert [entry["id"] for entry in indexer.received[0]] == ["p1", "p2"]


def test_a5_9_encode_corpus_node_id_and_inputs() -> None:
    index = encode_corpus_index()
    assert index.node_ids == ("encode_corpus", "build_index")
    assert set(index.inputs) == {"corpus", "encoder", "indexer"}


# --- A5.10 / A5.11 selection across levels ------------------------------------------------------


def test_a5_10_plain_run_returns_inner_outputs_nothing_consumes(
    run_path: RunPath, calls: Counter[str]
) -> None:
    assert run_path.run(uvw_pipeline(calls), x=1) == {"u": 2, "v": 3, "w": 20}


def test_a5_10_unconsumed_inner_output_can_be_requested(
    run_path: RunPath, calls: Counter[str]
) -> None:
    result = run_path.run(uvw_pipeline(calls), x=1, output_nodes=["v"])
    assert result == {"v": 3}
    assert calls == {"make_u": 1, "make_v": 1}


def test_a5_10_unconsumed_inner_output_as_bare_value(
    run_path: RunPath, calls: Counter[str]
) -> None:
    assert run_path.run(uvw_pipeline(calls), x=1, output_name="v") == 3


def test_a5_11_requesting_w_does_not_execute_the_inner_node_producing_v(
    run_path: RunPath, calls: Counter[str]
) -> None:
    result = run_path.run(uvw_pipeline(calls), x=1, output_nodes=["w"])
    assert result == {"w": 20}
    assert calls == {"make_u": 1, "make_w": 1}
    assert calls["make_v"] == 0


def test_a5_11_selection_reaches_three_levels_down(run_path: RunPath, calls: Counter[str]) -> None:
    make_a = counted(calls, "a", lambda x: x + 1, name="make_a")
    make_b = counted(calls, "b", lambda a: a * 2, name="make_b")
    make_c = counted(calls, "c", lambda a: a * 3, name="make_c")
    make_d = counted(calls, "d", lambda b: b - 1, name="make_d")
    inner = Pipeline([make_a, make_b], name="inner")
    mid = Pipeline([inner, make_c], name="mid")
    top = Pipeline([mid, make_d], name="top")
    assert run_path.run(top, x=1, output_name="c") == 6
    assert calls == {"make_a": 1, "make_c": 1}


def test_a5_11_selection_of_a_downstream_node_runs_only_its_inner_ancestors(
    run_path: RunPath, calls: Counter[str]
) -> None:
    make_a = counted(calls, "a", lambda x: x + 1, name="make_a")
    make_b = counted(calls, "b", lambda a: a * 2, name="make_b")
    make_c = counted(calls, "c", lambda a: a * 3, name="make_c")
    make_d = counted(calls, "d", lambda b: b - 1, name="make_d")
    inner = Pipeline([make_a, make_b], name="inner")
    mid = Pipeline([inner, make_c], name="mid")
    top = Pipeline([mid, make_d], name="top")
    assert run_path.run(top, x=1, output_nodes=["d"]) == {"d": 3}
    assert calls == {"make_a": 1, "make_b": 1, "make_d": 1}


def test_a5_11_inputs_feeding_only_unselected_inner_nodes_are_not_required(
    run_path: RunPath, calls: Counter[str]
) -> None:
    make_a = counted(calls, "a", lambda x: x + 1, name="make_a")
    make_b = counted(calls, "b", lambda a, y: a * y, name="make_b")
    inner = Pipeline([make_a, make_b], name="inner")
    top = Pipeline([Pipeline([inner], name="mid")], name="top")
    assert run_path.run(top, x=1, output_nodes=["a"]) == {"a": 2}
    with pytest.raises(MissingInputError, match="top > mid > inner > make_b"):
        run_path.attach(top).run(x=1, output_nodes=["b"])
    assert calls == {"make_a": 1}


def test_a5_11_selection_through_output_mapping_uses_the_outer_name(
    run_path: RunPath, calls: Counter[str]
) -> None:
    make_u = counted(calls, "u", lambda x: x + 1, name="make_u")
    make_v = counted(calls, "v", lambda x: x * 5, name="make_v")
    inner = Pipeline([make_u, make_v], name="inner")
    outer = Pipeline([inner.as_node(output_mapping={"u": "U", "v": "V"})], name="outer")
    assert run_path.run(outer, x=2, output_nodes=["V"]) == {"V": 10}
    assert calls == {"make_v": 1}


def test_a5_11_selection_reaches_into_a_mapped_node(run_path: RunPath, calls: Counter[str]) -> None:
    make_p = counted(calls, "p", lambda item: item + 1, name="make_p")
    make_q = counted(calls, "q", lambda item: item - 1, name="make_q")
    inner = Pipeline([make_p, make_q], name="per_item")
    outer = Pipeline([inner.as_node(map_over="item")], name="outer")
    assert run_path.run(outer, item=[1, 2, 3], output_nodes=["q"]) == {"q": [0, 1, 2]}
    assert calls == {"make_q": 3}


# --- A5.12 map_over validation ------------------------------------------------------------------


def test_a5_12_unknown_map_over_name_lists_the_node_inputs() -> None:
    inner = Pipeline([scale], name="scale_one")
    with pytest.raises(MappingError) as info:
        inner.as_node(map_over="nope")
    message = str(info.value)
    assert "nope" in message
    assert "item" in message
    assert "factor" in message


def test_a5_12_map_over_must_use_the_outer_name_after_renaming() -> None:
    inner = Pipeline([scale], name="scale_one")
    with pytest.raises(MappingError) as info:
        inner.as_node(map_over="item", input_mapping={"items": "item"})
    message = str(info.value)
    assert re.search(r"\bitems\b", message)
    assert "factor" in message


def test_a5_12_map_over_error_is_a_value_error() -> None:
    inner = Pipeline([scale], name="scale_one")
    with pytest.raises(ValueError, match="nope"):
        inner.as_node(map_over=["item", "nope"])


# --- node ids of nested pipelines ---------------------------------------------------------------


def test_s5_2_nested_node_id_defaults_to_the_inner_pipeline_name(run_path: RunPath) -> None:
    inner = Pipeline([double], name="doubler")
    outer = Pipeline([inner, add_one], name="outer")
    assert outer.node_ids == ("doubler", "add_one")
    assert inner.as_node().name == "doubler"
    assert run_path.run(outer, x=1) == {"doubled": 2, "incremented": 3}


def test_s5_2_nested_node_id_is_overridden_by_as_node_name(run_path: RunPath) -> None:
    inner = Pipeline([double], name="doubler")
    outer = Pipeline([inner.as_node(name="twice"), add_one], name="outer")
    assert outer.node_ids == ("twice", "add_one")
    assert outer.execution_order() == ("twice", "add_one")
    assert isinstance(outer.node("twice"), PipelineNode)
    assert run_path.run(outer, x=4) == {"doubled": 8, "incremented": 9}


def test_s5_2_nested_node_ids_of_one_pipeline_used_twice_are_deduplicated(
    run_path: RunPath,
) -> None:
    inner = Pipeline([double], name="doubler")
    outer = Pipeline(
        [
            inner.as_node(output_mapping={"doubled": "first"}),
            inner.as_node(input_mapping={"y": "x"}, output_mapping={"doubled": "second"}),
        ],
        name="outer",
    )
    assert outer.node_ids == ("doubler", "doubler_2")
    assert run_path.run(outer, x=1, y=10) == {"first": 2, "second": 20}


def test_s5_2_nested_node_explicit_duplicate_names_are_rejected() -> None:
    inner = Pipeline([double], name="doubler")
    with pytest.raises(InvalidNameError, match="twice"):
        Pipeline(
            [
                inner.as_node(name="twice", output_mapping={"doubled": "a"}),
                inner.as_node(name="twice", output_mapping={"doubled": "b"}),
            ]
        )


# --- both paths agree ---------------------------------------------------------------------------


def test_s5_1_fast_and_general_paths_return_identical_nested_results() -> None:
    index = encode_corpus_index()
    fast = index.run(corpus=PASSAGES, encoder=StandInEncoder(), indexer=StandInIndexer())
    recorder = RecordingCallback()
    general = index.with_callbacks([recorder]).run(
        corpus=PASSAGES, encoder=StandInEncoder(), indexer=StandInIndexer()
    )
    assert fast == general
    assert recorder.names("node_start") == ["clean", "encode", "pack"] * 2 + ["build_index"]


def test_s5_1_general_path_callbacks_are_inherited_by_nested_levels() -> None:
    recorder = RecordingCallback()
    level2 = Pipeline([double], name="level2")
    root = Pipeline([Pipeline([level2, add_one], name="level1"), square], name="root")
    root.with_callbacks([recorder]).run(x=5)
    assert recorder.names("pipeline_start") == ["root", "level1", "level2"]
    assert recorder.names("node_end") == ["double", "add_one", "square"]
