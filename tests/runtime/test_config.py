"""Configuration inheritance: SPEC section 6 (A6.1, A6.2, A6.6 to A6.9) and LocalBackend basics.

There is no cache store and no timeout enforcement yet, so the cache and timeout parts of the
acceptance list are left to the issues that add them; the callbacks part is tested here. The
shared fixtures follow the SPEC: ``fa(x) -> a``, ``fb(a) -> b`` and ``fc(b) -> c`` append their
name to ``CALLS``; recorders are ``RecordingCallback`` objects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from nestflow import UNSET, LocalBackend, Pipeline, PipelineCallback, node
from nestflow.testing import RecordingCallback

CALLS: list[str] = []


@node(output_name="a")
def fa(x: int) -> int:
    CALLS.append("fa")
    if x < 0:
        raise ValueError(f"fa cannot take a negative x, got {x}")
    return x + 1


@node(output_name="b")
def fb(a: int) -> int:
    CALLS.append("fb")
    return a * 10


@node(output_name="c")
def fc(b: int) -> int:
    CALLS.append("fc")
    return b - 1


@pytest.fixture(autouse=True)
def _fresh_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


def _levels(
    l1: Mapping[str, Any] | None = None,
    l2: Mapping[str, Any] | None = None,
    l3: Mapping[str, Any] | None = None,
) -> tuple[Pipeline, Pipeline, Pipeline]:
    """``L3 = [fa]``, ``L2 = [L3, fb]``, ``L1 = [L2, fc]`` with the given configuration keywords."""
    level3 = Pipeline([fa], name="L3", **(l3 or {}))
    level2 = Pipeline([level3, fb], name="L2", **(l2 or {}))
    level1 = Pipeline([level2, fc], name="L1", **(l1 or {}))
    return level1, level2, level3


# --- A6.1 callbacks set on the root reach every level -----------------------------------------


def test_a6_1_root_callback_sees_every_level_and_results_are_right() -> None:
    rec = RecordingCallback()
    level1, _, _ = _levels(l1={"callbacks": [rec]})

    result = level1.run(x=1)

    assert result == {"a": 2, "b": 20, "c": 19}
    assert rec.names("node_start") == ["fa", "fb", "fc"]
    assert rec.names("node_end") == ["fa", "fb", "fc"]
    assert CALLS == ["fa", "fb", "fc"]


def test_a6_1_inherited_callback_sees_every_pipeline_level_start() -> None:
    rec = RecordingCallback()
    level1, _, _ = _levels(l1={"callbacks": [rec]})

    level1.run(x=1)

    assert rec.names("pipeline_start") == ["L1", "L2", "L3"]
    assert rec.names("pipeline_end") == ["L3", "L2", "L1"]


# --- A6.2 a level's own callback replaces the inherited one -----------------------------------


def test_a6_2_own_callback_on_l3_sees_only_fa_and_root_callback_misses_it() -> None:
    rec1, rec3 = RecordingCallback(), RecordingCallback()
    level1, _, _ = _levels(l1={"callbacks": [rec1]}, l3={"callbacks": [rec3]})

    result = level1.run(x=1)

    assert result == {"a": 2, "b": 20, "c": 19}
    assert rec3.names("node_start") == ["fa"]
    assert rec1.names("node_start") == ["fb", "fc"]
    assert "fa" not in rec1.names("node_end")


def test_a6_2_own_callback_on_l3_sees_only_its_own_pipeline_level() -> None:
    rec1, rec3 = RecordingCallback(), RecordingCallback()
    level1, _, _ = _levels(l1={"callbacks": [rec1]}, l3={"callbacks": [rec3]})

    level1.run(x=1)

    assert rec3.names("pipeline_start") == ["L3"]
    assert "L3" not in rec1.names("pipeline_start")
    assert rec1.names("pipeline_start") == ["L1", "L2"]


def test_explicit_callbacks_replace_the_inherited_list_without_merging() -> None:
    outer_rec, inner_rec = RecordingCallback(), RecordingCallback()
    level1, _, _ = _levels(l1={"callbacks": [outer_rec]}, l2={"callbacks": [inner_rec]})

    level1.run(x=1)

    assert level1.effective_config("L2").callbacks == (inner_rec,)
    assert level1.effective_config("L2", "L3").callbacks == (inner_rec,)
    assert inner_rec.names("node_start") == ["fa", "fb"]
    assert outer_rec.names("node_start") == ["fc"]


def test_with_callbacks_unset_returns_a_level_to_inheritance() -> None:
    root_rec, own_rec = RecordingCallback(), RecordingCallback()
    level3 = Pipeline([fa], name="L3", callbacks=[own_rec]).with_callbacks(UNSET)
    root = Pipeline([level3, fb], name="L2", callbacks=[root_rec])

    root.run(x=1)

    assert level3.callbacks is UNSET
    assert root.effective_config("L3").source("callbacks") == "inherited"
    assert root_rec.names("node_start") == ["fa", "fb"]
    assert own_rec.events == []


# --- A6.6 one L3 under two parents ------------------------------------------------------------


def _parents() -> tuple[Pipeline, Pipeline, Pipeline, RecordingCallback, RecordingCallback]:
    """The same ``L3`` under parents ``P`` and ``Q``, each with its own recorder."""
    level3 = Pipeline([fa], name="L3")
    rec_p, rec_q = RecordingCallback(), RecordingCallback()
    parent_p = Pipeline([level3, fb], name="P", callbacks=[rec_p])
    parent_q = Pipeline([level3, fb], name="Q", callbacks=[rec_q])
    return level3, parent_p, parent_q, rec_p, rec_q


def _assert_isolated(
    level3: Pipeline,
    parent_p: Pipeline,
    parent_q: Pipeline,
    rec_p: RecordingCallback,
    rec_q: RecordingCallback,
) -> None:
    """Each parent's runs reach only its own recorder; standalone L3 reaches neither."""
    rec_p.events.clear()
    rec_q.events.clear()
    rec_p.contexts.clear()
    rec_q.contexts.clear()

    assert parent_p.run(x=1) == {"a": 2, "b": 20}
    assert rec_p.names("node_start") == ["fa", "fb"]
    assert rec_q.events == []
    assert {ctx.hierarchy_path[0] for ctx in rec_p.contexts} == {"P"}

    assert parent_q.run(x=2) == {"a": 3, "b": 30}
    assert rec_q.names("node_start") == ["fa", "fb"]
    assert rec_p.names("node_start") == ["fa", "fb"]
    assert {ctx.hierarchy_path[0] for ctx in rec_q.contexts} == {"Q"}

    CALLS.clear()
    before_p, before_q = list(rec_p.events), list(rec_q.events)
    assert level3.run(x=3) == {"a": 4}
    assert CALLS == ["fa"]
    assert rec_p.events == before_p
    assert rec_q.events == before_q


def test_a6_6_same_child_under_two_parents_reports_only_to_its_parent() -> None:
    _assert_isolated(*_parents())


def test_a6_6_standalone_child_run_reaches_neither_parent_recorder() -> None:
    level3, parent_p, parent_q, rec_p, rec_q = _parents()
    parent_p.run(x=1)
    parent_q.run(x=1)
    before_p, before_q = list(rec_p.events), list(rec_q.events)

    assert level3.run(x=5) == {"a": 6}

    assert rec_p.events == before_p
    assert rec_q.events == before_q
    assert level3.effective_config().callbacks == ()


def test_a6_6_isolation_still_holds_after_a_nested_exception() -> None:
    level3, parent_p, parent_q, rec_p, rec_q = _parents()

    with pytest.raises(ValueError, match="negative"):
        parent_p.run(x=-1)

    assert ("error", "fa", "ValueError") in rec_p.events
    assert rec_q.events == []
    _assert_isolated(level3, parent_p, parent_q, rec_p, rec_q)


def test_a6_6_isolation_still_holds_after_a_threaded_map_over_the_parents() -> None:
    level3, parent_p, parent_q, rec_p, rec_q = _parents()
    backend = LocalBackend(map_execution="threaded", max_workers=4)

    mapped_p = parent_p.with_backend(backend).map(x=[1, 2, 3, 4], map_over="x")
    mapped_q = parent_q.with_backend(backend).map(x=[5, 6], map_over="x")

    assert mapped_p == {"a": [2, 3, 4, 5], "b": [20, 30, 40, 50]}
    assert mapped_q == {"a": [6, 7], "b": [60, 70]}
    assert sorted(rec_p.names("node_start")) == ["fa"] * 4 + ["fb"] * 4
    assert sorted(rec_q.names("node_start")) == ["fa"] * 2 + ["fb"] * 2
    _assert_isolated(level3, parent_p, parent_q, rec_p, rec_q)


# --- A6.7 concurrent runs in threads ----------------------------------------------------------


class _LockedRecorder(PipelineCallback):
    """Records ``(hook, id, root pipeline, run id)`` atomically; shared by concurrent runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[str, str, str, str]] = []

    def _add(self, hook: str, name: str, ctx: Any) -> None:
        with self._lock:
            self.events.append((hook, name, ctx.hierarchy_path[0], ctx.run_id))

    def on_pipeline_start(self, pipeline_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
        self._add("pipeline_start", pipeline_id, ctx)

    def on_node_start(self, node_id: str, inputs: Mapping[str, Any], ctx: Any) -> None:
        self._add("node_start", node_id, ctx)

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: Any
    ) -> None:
        self._add("node_end", node_id, ctx)

    def count(self, hook: str, name: str) -> int:
        return sum(1 for event in self.events if event[:2] == (hook, name))


def test_a6_7_sixteen_concurrent_threads_report_only_to_their_own_parent() -> None:
    level3 = Pipeline([fa], name="L3")
    rec_p, rec_q = _LockedRecorder(), _LockedRecorder()
    parent_p = Pipeline([level3, fb], name="P", callbacks=[rec_p])
    parent_q = Pipeline([level3, fb], name="Q", callbacks=[rec_q])
    barrier = threading.Barrier(16)
    results: dict[tuple[str, int], Any] = {}
    failures: list[BaseException] = []

    def work(parent: Pipeline, x: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[(parent.name, x)] = parent.run(x=x)
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    threads = [
        threading.Thread(target=work, args=(parent, x))
        for x in range(8)
        for parent in (parent_p, parent_q)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert results == {
        (name, x): {"a": x + 1, "b": (x + 1) * 10} for name in ("P", "Q") for x in range(8)
    }
    for rec, name in ((rec_p, "P"), (rec_q, "Q")):
        assert {event[2] for event in rec.events} == {name}
        assert rec.count("pipeline_start", name) == 8
        assert rec.count("pipeline_start", "L3") == 8
        assert rec.count("node_start", "fa") == 8
        assert rec.count("node_end", "fb") == 8
        assert len({event[3] for event in rec.events}) == 8
    assert not {event[3] for event in rec_p.events} & {event[3] for event in rec_q.events}


# --- A6.8 inspecting effective configuration --------------------------------------------------


def _explicit_root() -> Pipeline:
    level1, _, _ = _levels(
        l1={
            "cache": None,
            "timeout": 5,
            "retries": 2,
            "backend": LocalBackend(node_execution="threaded", max_workers=4),
        }
    )
    return level1


@pytest.mark.parametrize("aspect", ["backend", "cache", "timeout", "retries"])
def test_a6_8_values_set_on_l1_are_inherited_two_levels_down_with_origin_l1(aspect: str) -> None:
    config = _explicit_root().effective_config("L2", "L3")

    assert config.source(aspect) == "inherited"
    assert config.origin(aspect) == "L1"


def test_a6_8_effective_config_carries_the_inherited_values() -> None:
    config = _explicit_root().effective_config("L2", "L3")

    assert config.cache is None
    assert config.timeout == 5
    assert config.retries == 2
    assert config.backend == LocalBackend(node_execution="threaded", max_workers=4)


def test_a6_8_root_values_are_explicit_with_origin_the_root() -> None:
    config = _explicit_root().effective_config()

    assert config.source("timeout") == "explicit"
    assert config.origin("timeout") == "L1"
    assert config.source("backend") == "explicit"


def test_a6_8_a_level_own_value_is_explicit_and_becomes_the_childs_origin() -> None:
    level1, _, _ = _levels(l1={"timeout": 5}, l2={"timeout": 7})

    assert level1.effective_config("L2").source("timeout") == "explicit"
    assert level1.effective_config("L2").origin("timeout") == "L2"
    assert level1.effective_config("L2", "L3").timeout == 7
    assert level1.effective_config("L2", "L3").origin("timeout") == "L2"


@pytest.mark.parametrize("path", [(), ("L2",), ("L2", "L3")])
def test_unset_everywhere_resolves_to_library_defaults(path: tuple[str, ...]) -> None:
    level1, _, _ = _levels()
    config = level1.effective_config(*path)

    for aspect in ("backend", "cache", "callbacks", "timeout", "retries"):
        assert config.source(aspect) == "default"
    assert config.backend == LocalBackend()
    assert config.cache is None
    assert config.callbacks == ()
    assert config.timeout is None
    assert config.retries == 0


def test_a6_8_describe_config_has_one_line_per_level_with_markers() -> None:
    root = _explicit_root()
    label = root.backend.label
    lines = root.describe_config().splitlines()

    assert len(lines) == 3
    assert lines[0].startswith("L1 [")
    assert f"{label}*" in lines[0]
    assert "No cache*" in lines[0]
    assert "timeout: 5*" in lines[0]
    assert "↓ " not in lines[0]
    assert lines[1].startswith("└─ L2 [")
    assert lines[2].lstrip().startswith("└─ L3 [")
    for line in lines[1:]:
        assert f"↓ {label}" in line
        assert "↓ No cache" in line
        assert "↓ timeout: 5" in line
        assert "*" not in line


def test_a6_8_describe_config_shows_the_threaded_x4_label_of_the_backend() -> None:
    backend = LocalBackend(node_execution="threaded", map_execution="threaded", max_workers=4)
    level1, _, _ = _levels(l1={"backend": backend})
    lines = level1.describe_config().splitlines()

    assert "Local(threaded×4)*" in lines[0]
    assert "↓ Local(threaded×4)" in lines[1]
    assert "↓ Local(threaded×4)" in lines[2]


def test_describe_config_prints_root_defaults_without_markers() -> None:
    level1, _, _ = _levels()
    text = level1.describe_config()

    assert "Local(seq)" in text
    assert "*" not in text
    assert "↓" not in text
    assert len(text.splitlines()) == 3


def test_describe_config_depth_cuts_the_tree_short() -> None:
    root = _explicit_root()
    full = root.describe_config().splitlines()
    shallow = root.describe_config(depth=1).splitlines()

    assert len(shallow) < len(full)
    assert shallow == full[: len(shallow)]


def test_effective_config_through_a_function_node_raises_a_helpful_key_error() -> None:
    level1, _, _ = _levels()

    with pytest.raises(KeyError) as caught:
        level1.effective_config("fc")

    message = str(caught.value)
    assert "fc" in message
    assert "function node" in message
    assert "L2" in message


def test_effective_config_with_an_unknown_node_id_lists_the_nodes() -> None:
    level1, _, _ = _levels()

    with pytest.raises(KeyError) as caught:
        level1.effective_config("L9")

    message = str(caught.value)
    assert "L9" in message
    assert "L2" in message
    assert "fc" in message


def test_effective_config_is_not_stored_on_pipelines() -> None:
    level1, _, level3 = _levels(l1={"timeout": 5})
    level1.effective_config("L2", "L3")

    assert level3.timeout is UNSET
    assert level3.effective_config().timeout is None
    assert not hasattr(level3, "effective_backend")
    assert not hasattr(level3, "effective_cache")


# --- A6.9 callbacks=[] hides a subtree ---------------------------------------------------------


def test_a6_9_empty_callbacks_hide_child_events_but_not_nested_hooks() -> None:
    rec = RecordingCallback()
    level1, _, _ = _levels(l1={"callbacks": [rec]}, l2={"callbacks": []})

    result = level1.run(x=1)

    assert result == {"a": 2, "b": 20, "c": 19}
    assert rec.events == [
        ("pipeline_start", "L1"),
        ("nested_start", "L1", "L2"),
        ("nested_end", "L1", "L2"),
        ("node_start", "fc"),
        ("node_end", "fc"),
        ("pipeline_end", "L1"),
    ]
    assert [ctx.depth for ctx in rec.contexts] == [0] * 6


def test_a6_9_empty_callbacks_disable_callbacks_for_the_whole_subtree() -> None:
    level1, _, _ = _levels(l1={"callbacks": [RecordingCallback()]}, l2={"callbacks": []})

    assert level1.effective_config("L2").callbacks == ()
    assert level1.effective_config("L2", "L3").callbacks == ()
    assert level1.effective_config("L2", "L3").source("callbacks") == "inherited"
    assert level1.effective_config("L2", "L3").origin("callbacks") == "L2"


# --- LocalBackend: validation and labels ------------------------------------------------------


@pytest.mark.parametrize("keyword", ["node_execution", "map_execution"])
def test_local_backend_rejects_unknown_mode_names_listing_the_modes(keyword: str) -> None:
    with pytest.raises(ValueError, match="threads") as caught:
        LocalBackend(**{keyword: "threads"})  # type: ignore[arg-type]

    message = str(caught.value)
    assert keyword in message
    for mode in ("sequential", "threaded", "async", "parallel"):
        assert mode in message


@pytest.mark.parametrize("max_workers", [0, -1])
def test_local_backend_rejects_max_workers_below_one(max_workers: int) -> None:
    with pytest.raises(ValueError, match=r"max_workers must be an int >= 1") as caught:
        LocalBackend(node_execution="threaded", max_workers=max_workers)

    assert str(max_workers) in str(caught.value)


@pytest.mark.parametrize(
    ("backend", "label"),
    [
        (LocalBackend(), "Local(seq)"),
        (LocalBackend("threaded", "threaded", max_workers=4), "Local(threaded×4)"),
        (LocalBackend("async", "async"), "Local(async)"),
        (
            LocalBackend(node_execution="async", map_execution="threaded", max_workers=2),
            "Local(nodes=async, map=threaded×2)",
        ),
    ],
)
def test_local_backend_labels_name_the_modes_and_pool_sizes(
    backend: LocalBackend, label: str
) -> None:
    assert backend.label == label


def test_local_backend_label_shows_both_dimensions_when_only_nodes_are_threaded() -> None:
    backend = LocalBackend(node_execution="threaded", max_workers=4)

    assert backend.label == "Local(nodes=threaded×4, map=seq)"
