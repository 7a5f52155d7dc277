"""Pipeline.map: items, zip and product, selection, order, fail-fast and events (SPEC section 4)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import nestflow
from nestflow import LocalBackend, MapInputError, Outputs, Pipeline, node
from nestflow.testing import RecordingCallback

MODES = ("sequential", "threaded", "async")


@pytest.fixture(params=MODES)
def map_backend(request: pytest.FixtureRequest) -> LocalBackend:
    """A LocalBackend for each map_execution mode covered by this issue."""
    return LocalBackend(map_execution=request.param)


def mul_pipeline(calls: list[int] | None = None) -> Pipeline:
    """``mul(x, factor) -> result``; each call appends ``x`` to ``calls``."""
    seen = calls if calls is not None else []

    @node(output_name="result")
    def mul(x: int, factor: int) -> int:
        seen.append(x)
        return x * factor

    return Pipeline([mul], name="mul")


def xy_pipeline() -> Pipeline:
    @node(output_name="result")
    def times(x: int, y: int) -> int:
        return x * y

    return Pipeline([times], name="xy")


def abc_pipeline(calls: list[str]) -> Pipeline:
    """``fa(x)->a``, ``fb(a)->b``, ``fc(b)->c``; every call is appended to ``calls``."""

    @node(output_name="a")
    def fa(x: int) -> int:
        calls.append("fa")
        return x + 1

    @node(output_name="b")
    def fb(a: int) -> int:
        calls.append("fb")
        return a * 10

    @node(output_name="c")
    def fc(b: int) -> int:
        calls.append("fc")
        return -b

    return Pipeline([fa, fb, fc], name="abc")


def all_notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", []))


# --- A4.1 basic map ----------------------------------------------------------------------------


def test_a4_1_map_over_one_name_broadcasts_the_rest(map_backend: LocalBackend) -> None:
    pipeline = mul_pipeline().with_backend(map_backend)

    result = pipeline.map(inputs={"x": [1, 2, 3], "factor": 10}, map_over="x")

    assert result == {"result": [10, 20, 30]}
    assert isinstance(result, Outputs)
    assert result.report.status == "ok"


def test_a4_1_map_over_given_as_list_is_the_same_as_a_string() -> None:
    pipeline = mul_pipeline()

    by_string = pipeline.map(inputs={"x": [1, 2, 3], "factor": 10}, map_over="x")
    by_list = pipeline.map(inputs={"x": [1, 2, 3], "factor": 10}, map_over=["x"])

    assert by_list == by_string == {"result": [10, 20, 30]}


def test_a4_1_map_accepts_every_input_call_style() -> None:
    pipeline = mul_pipeline()

    by_mapping = pipeline.map({"x": [1, 2], "factor": 3}, map_over="x")
    by_keyword = pipeline.map(x=[1, 2], factor=3, map_over="x")

    assert by_mapping == by_keyword == {"result": [3, 6]}


def test_a4_1_empty_collection_returns_empty_lists_and_executes_nothing(
    map_backend: LocalBackend,
) -> None:
    calls: list[int] = []
    pipeline = mul_pipeline(calls).with_backend(map_backend)

    result = pipeline.map(inputs={"x": [], "factor": 10}, map_over="x")

    assert result == {"result": []}
    assert calls == []


# --- A4.2 zip and product ----------------------------------------------------------------------


def test_a4_2_zip_pairs_the_ith_elements(map_backend: LocalBackend) -> None:
    pipeline = xy_pipeline().with_backend(map_backend)

    result = pipeline.map(x=[1, 2], y=[10, 20], map_over=["x", "y"])

    assert result == {"result": [10, 40]}


def test_a4_2_product_runs_every_combination_first_name_slowest(
    map_backend: LocalBackend,
) -> None:
    pipeline = xy_pipeline().with_backend(map_backend)

    result = pipeline.map(x=[1, 2], y=[10, 20, 30], map_over=["x", "y"], map_mode="product")

    assert result == {"result": [10, 20, 30, 20, 40, 60]}


def test_a4_2_product_of_three_names_follows_itertools_product_order() -> None:
    @node(output_name="code")
    def combine(a: str, b: str, c: str) -> str:
        return a + b + c

    result = Pipeline([combine]).map(
        a=["p", "q"], b=["1", "2"], c=["x", "y", "z"], map_over=["a", "b", "c"], map_mode="product"
    )

    assert result["code"] == [
        "p1x", "p1y", "p1z", "p2x", "p2y", "p2z",
        "q1x", "q1y", "q1z", "q2x", "q2y", "q2z",
    ]  # fmt: skip


def test_a4_2_product_order_follows_map_over_order_not_parameter_order() -> None:
    result = xy_pipeline().map(
        x=[1, 2], y=[10, 20], map_over=["y", "x"], map_mode="product", output_name="result"
    )

    assert result == [10, 20, 20, 40]


def test_a4_2_zip_length_mismatch_names_each_length() -> None:
    calls: list[int] = []

    @node(output_name="result")
    def times(x: int, y: int) -> int:
        calls.append(x)
        return x * y

    with pytest.raises(ValueError, match="length") as caught:
        Pipeline([times]).map(x=[1, 2, 3], y=[10, 20], map_over=["x", "y"])

    assert isinstance(caught.value, MapInputError)
    message = str(caught.value)
    assert "x" in message
    assert "y" in message
    assert "3" in message
    assert "2" in message
    assert calls == []


# --- A4.3 / A4.4 selection ---------------------------------------------------------------------


def test_a4_3_output_nodes_returns_only_selection_and_skips_other_nodes(
    map_backend: LocalBackend,
) -> None:
    calls: list[str] = []
    pipeline = abc_pipeline(calls).with_backend(map_backend)

    result = pipeline.map(x=[1, 2], map_over="x", output_nodes=["b"])

    assert result == {"b": [20, 30]}
    assert "fc" not in calls
    assert sorted(calls) == ["fa", "fa", "fb", "fb"]


def test_a4_3_output_name_list_restricts_keys() -> None:
    calls: list[str] = []

    result = abc_pipeline(calls).map(x=[1, 2], map_over="x", output_name=["a", "b"])

    assert result == {"a": [2, 3], "b": [20, 30]}
    assert "fc" not in calls


def test_a4_3_map_without_selection_returns_every_output_column() -> None:
    result = abc_pipeline([]).map(x=[1], map_over="x")

    assert result == {"a": [2], "b": [20], "c": [-20]}


def test_a4_4_output_name_string_returns_a_plain_list() -> None:
    calls: list[str] = []

    result = abc_pipeline(calls).map(x=[1, 2, 3], map_over="x", output_name="b")

    assert type(result) is list
    assert result == [20, 30, 40]
    assert "fc" not in calls


def test_a4_4_output_name_string_on_empty_map_returns_empty_list() -> None:
    result = abc_pipeline([]).map(x=[], map_over="x", output_name="b")

    assert result == []
    assert type(result) is list


# --- A4.5 collections --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "expected"),
    [((1, 2, 3), [10, 20, 30]), (range(1, 4), [10, 20, 30]), ([], [])],
    ids=["tuple", "range", "empty-list"],
)
def test_a4_5_map_over_tuple_and_range_works(items: Any, expected: list[int]) -> None:
    result = mul_pipeline().map(x=items, factor=10, map_over="x", output_name="result")

    assert result == expected


@pytest.mark.parametrize("value", ["abc", b"abc"], ids=["str", "bytes"])
def test_a4_5_map_over_str_or_bytes_raises_map_input_error_suggesting_a_list(
    value: Any,
) -> None:
    calls: list[int] = []

    with pytest.raises(MapInputError, match="list") as caught:
        mul_pipeline(calls).map(x=value, factor=10, map_over="x")

    assert "x" in str(caught.value)
    assert calls == []


def test_a4_5_map_over_a_dict_raises_map_input_error() -> None:
    calls: list[int] = []

    with pytest.raises(MapInputError, match="x"):
        mul_pipeline(calls).map(x={"a": 1, "b": 2}, factor=10, map_over="x")

    assert calls == []


def test_a4_5_generators_are_materialised_once() -> None:
    produced: list[int] = []

    def numbers() -> Any:
        for n in (1, 2, 3):
            produced.append(n)
            yield n

    result = mul_pipeline().map(x=numbers(), factor=10, map_over="x")

    assert result == {"result": [10, 20, 30]}
    assert produced == [1, 2, 3]


def test_a4_5_generator_in_zip_mode_pairs_with_a_list() -> None:
    result = xy_pipeline().map(
        x=(n for n in (1, 2)), y=[10, 20], map_over=["x", "y"], output_name="result"
    )

    assert result == [10, 40]


def test_a4_5_map_over_a_name_that_is_not_an_input_lists_the_inputs() -> None:
    calls: list[int] = []

    with pytest.raises(MapInputError) as caught:
        mul_pipeline(calls).map(x=[1], factor=2, map_over="z")

    message = str(caught.value)
    assert "z" in message
    assert "x" in message
    assert "factor" in message
    assert calls == []


# --- A4.6 broadcast ----------------------------------------------------------------------------


def test_a4_6_list_input_not_in_map_over_reaches_every_item_unchanged(
    map_backend: LocalBackend,
) -> None:
    weights = [7, 8]
    seen: list[list[int]] = []

    @node(output_name="weighted")
    def weigh(x: int, weights: list[int]) -> list[int]:
        seen.append(list(weights))
        return [x * w for w in weights]

    pipeline = Pipeline([weigh]).with_backend(map_backend)
    result = pipeline.map(x=[1, 2, 3], weights=weights, map_over="x")

    assert result == {"weighted": [[7, 8], [14, 16], [21, 24]]}
    assert seen == [[7, 8], [7, 8], [7, 8]]
    assert weights == [7, 8]


def test_a4_6_each_item_sees_only_its_own_values(map_backend: LocalBackend) -> None:
    @node(output_name="a")
    def first(x: int) -> int:
        time.sleep((3 - x) * 0.005)  # later items finish first under concurrent modes
        return x * 10

    @node(output_name="pair")
    def second(x: int, a: int) -> tuple[int, int]:
        return x, a

    pipeline = Pipeline([first, second]).with_backend(map_backend)
    result = pipeline.map(x=[0, 1, 2, 3], map_over="x", output_name="pair")

    assert result == [(0, 0), (1, 10), (2, 20), (3, 30)]


# --- A4.7 result order -------------------------------------------------------------------------


def reversed_durations_pipeline(finished: list[int]) -> Pipeline:
    """Item ``i`` of 3 sleeps ``(2 - i) * 0.025`` s: item 0 is the slowest."""
    lock = threading.Lock()

    @node(output_name="echo")
    def slow(x: int) -> int:
        time.sleep((2 - x) * 0.025)
        with lock:
            finished.append(x)
        return x * 100

    return Pipeline([slow], name="slow")


def test_a4_7_results_follow_item_order_when_durations_are_reversed(
    map_backend: LocalBackend,
) -> None:
    finished: list[int] = []
    pipeline = reversed_durations_pipeline(finished).with_backend(map_backend)

    result = pipeline.map(x=[0, 1, 2], map_over="x")

    assert result == {"echo": [0, 100, 200]}
    assert sorted(finished) == [0, 1, 2]


@pytest.mark.parametrize(
    "backend",
    [
        LocalBackend(map_execution="threaded", max_workers=4),
        LocalBackend(map_execution="async", max_workers=4),
    ],
    ids=["threaded", "async"],
)
def test_a4_7_concurrent_map_modes_run_items_at_the_same_time(backend: LocalBackend) -> None:
    # Every item waits for the other two: this only completes when the items overlap.
    barrier = threading.Barrier(3)

    @node(output_name="echo")
    def meet(x: int) -> int:
        barrier.wait(timeout=2)
        return x * 100

    pipeline = Pipeline([meet]).with_backend(backend)

    assert pipeline.map(x=[0, 1, 2], map_over="x", output_name="echo") == [0, 100, 200]


# --- A4.8 fail-fast (without a cache) ----------------------------------------------------------


@pytest.mark.parametrize("observed", [False, True], ids=["fast-path", "general-path"])
def test_a4_8_sequential_map_fails_fast_at_the_failing_item(observed: bool) -> None:
    calls: list[int] = []

    @node(output_name="y")
    def inv(x: int) -> float:
        calls.append(x)
        return 1 / x

    pipeline = Pipeline([inv], name="invert")
    if observed:
        pipeline = pipeline.with_callbacks([RecordingCallback()])

    with pytest.raises(ZeroDivisionError) as caught:
        pipeline.map(x=[1, 0, 2], map_over="x")

    assert calls == [1, 0]
    notes = all_notes(caught.value)
    assert "item 1" in notes
    assert "inv" in notes


def test_a4_8_failed_map_report_has_failed_status() -> None:
    @node(output_name="y")
    def inv(x: int) -> float:
        return 1 / x

    with nestflow.capture() as cap, pytest.raises(ZeroDivisionError):
        Pipeline([inv]).map(x=[1, 0, 2], map_over="x")

    assert cap.last.status == "failed"
    assert [(r.item_path, r.status) for r in cap.last.records] == [
        ((0,), "executed"),
        ((1,), "failed"),
    ]


# --- A4.9 concurrent failures ------------------------------------------------------------------


def test_a4_9_threaded_map_raises_lowest_failed_item_and_notes_the_others() -> None:
    @node(output_name="checked")
    def check(x: int) -> int:
        if x == 2:
            time.sleep(0.03)  # item 5 fails first in time; item 2 must still win
            raise ValueError(f"bad item {x}")
        if x == 5:
            raise ValueError(f"bad item {x}")
        return x

    backend = LocalBackend(map_execution="threaded", max_workers=8)
    pipeline = Pipeline([check], name="checker").with_backend(backend)

    with pytest.raises(ValueError, match="bad item") as caught:
        pipeline.map(x=list(range(8)), map_over="x")

    assert str(caught.value) == "bad item 2"
    notes = all_notes(caught.value)
    assert "item 2" in notes
    assert "item 5" in notes


# --- events ------------------------------------------------------------------------------------


def test_map_fires_pipeline_map_and_item_events_around_nodes_in_order() -> None:
    recorder = RecordingCallback()
    pipeline = mul_pipeline().with_callbacks([recorder])

    result = pipeline.map(x=[1, 2, 3], factor=2, map_over="x")

    assert result == {"result": [2, 4, 6]}
    expected: list[tuple[Any, ...]] = [("pipeline_start", "mul"), ("map_start", 3)]
    for index in range(3):
        expected += [
            ("item_start", index),
            ("node_start", "mul"),
            ("node_end", "mul"),
            ("item_end", index),
        ]
    expected += [("map_end",), ("pipeline_end", "mul")]
    assert recorder.events == expected


def test_map_node_events_carry_the_item_index() -> None:
    recorder = RecordingCallback()
    mul_pipeline().with_callbacks([recorder]).map(x=[1, 2, 3], factor=2, map_over="x")

    node_indexes = [
        ctx.item_index
        for event, ctx in zip(recorder.events, recorder.contexts, strict=True)
        if event[0] in ("node_start", "node_end")
    ]
    assert node_indexes == [0, 0, 1, 1, 2, 2]


def test_map_events_pair_every_item_under_concurrent_modes(map_backend: LocalBackend) -> None:
    recorder = RecordingCallback()
    pipeline = mul_pipeline().with_backend(map_backend).with_callbacks([recorder])

    pipeline.map(x=[1, 2, 3], factor=2, map_over="x")

    kinds = [e[0] for e in recorder.events]
    assert kinds.count("pipeline_start") == kinds.count("pipeline_end") == 1
    assert recorder.events[:2] == [("pipeline_start", "mul"), ("map_start", 3)]
    assert recorder.events[-2:] == [("map_end",), ("pipeline_end", "mul")]
    assert sorted(recorder.names("item_start")) == [0, 1, 2]
    assert sorted(recorder.names("item_end")) == [0, 1, 2]


def test_map_with_callback_gives_same_results_as_without(map_backend: LocalBackend) -> None:
    plain = abc_pipeline([]).with_backend(map_backend)
    observed = plain.with_callbacks([RecordingCallback()])

    inputs = {"x": [3, 1, 2]}
    assert observed.map(inputs, map_over="x") == plain.map(inputs, map_over="x")


def test_map_report_has_one_record_per_node_and_item() -> None:
    result = abc_pipeline([]).map(x=[1, 2], map_over="x", output_nodes=["b"])

    records = result.report.records
    assert [(r.node, r.item_path) for r in records] == [
        ("fa", (0,)),
        ("fb", (0,)),
        ("fa", (1,)),
        ("fb", (1,)),
    ]
    assert all(r.status == "executed" for r in records)
