"""Pipeline objects of one structure share their plans; each still runs with its own settings.

A script or notebook cell that builds its pipeline again from the same nodes, with a new cache
object, must not plan or sign again; but whatever differs between the two objects (cache,
callbacks, backend, bound values, names) must show in their runs.
"""

from __future__ import annotations

import gc
import pickle
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cloudpickle

from nestflow import CallbackContext, DiskCache, LocalBackend, Pipeline, PipelineCallback, node
from nestflow.core.config import UNSET
from nestflow.core.node import SHARED_PLANS
from nestflow.runtime.plan import plan_for

CALLS: list[str] = []


@node(output_name="y")
def inc(x: int) -> int:
    CALLS.append("inc")
    return x + 1


@node(output_name="z")
def double(y: int) -> int:
    CALLS.append("double")
    return y * 2


@node(output_name="x")
def start(v: int) -> int:
    return v + 1


class Seen(PipelineCallback):
    def __init__(self) -> None:
        self.nodes: list[str] = []

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        self.nodes.append(node_id)


def test_two_objects_of_one_structure_share_a_plan_and_keep_their_own_settings(
    tmp_path: Path,
) -> None:
    first = Pipeline([inc, double], name="p", cache=DiskCache(tmp_path / "a"))
    seen = Seen()
    second = Pipeline([inc, double], name="p", cache=None, callbacks=[seen])
    assert plan_for(first) is plan_for(second)
    CALLS.clear()
    assert first.run(x=1)["z"] == 4
    assert first.run(x=1).report.cache_hits == 2, "the first one caches"
    assert second.run(x=1)["z"] == 4
    assert second.run(x=1).report.cache_hits == 0, "the second one has no cache"
    assert CALLS == ["inc", "double"] * 3
    assert seen.nodes == ["inc", "double"] * 2, "only the second one's callback hears it"


def test_a_shared_plan_keeps_no_configuration_alive(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    pipeline = Pipeline([inc, double], name="kept", cache=cache, callbacks=[Seen()])
    pipeline.run(x=1)
    plan = plan_for(pipeline)
    assert plan.pipeline.cache is UNSET
    assert plan.pipeline.callbacks is UNSET
    gone = weakref.ref(cache)
    del pipeline, cache
    gc.collect()
    assert gone() is None, "the nodes live on, and so does the plan, but not the cache"
    assert plan_for(Pipeline([inc, double], name="kept")) is plan


def test_different_structures_do_not_share() -> None:
    base = plan_for(Pipeline([inc, double], name="s"))
    assert plan_for(Pipeline([inc, double], name="other")) is not base
    assert plan_for(Pipeline([inc, double.with_name("twice")], name="s")) is not base
    assert plan_for(Pipeline([inc, node(double.func, output_name="z")], name="s")) is not base
    assert plan_for(Pipeline([inc, double], name="s"), ("y",)) is not base


def test_bound_values_are_never_shared_between_nested_pipelines() -> None:
    inner = Pipeline([inc, double], name="inner")
    one = Pipeline([inner.bind(x=1).as_node(name="n")], name="outer")
    ten = Pipeline([inner.bind(x=10).as_node(name="n")], name="outer")
    assert one.run()["z"] == 4
    assert ten.run()["z"] == 22


def test_a_nested_pipeline_runs_with_its_own_settings_whatever_plan_it_shares(
    tmp_path: Path,
) -> None:
    inner = Pipeline([inc, double], name="inner", cache=DiskCache(tmp_path))
    uncached = inner.with_cache(None)
    with_cache = Pipeline([inner.as_node(name="n")], name="outer")
    without = Pipeline([uncached.as_node(name="n")], name="outer")
    with_cache.run(x=1)
    assert with_cache.run(x=1).report.cache_hits == 2
    assert without.run(x=1).report.cache_hits == 0
    threads = Pipeline([inner.with_backend(LocalBackend(node_execution="threaded")).as_node()])
    assert threads.run(x=1)["z"] == 4


def test_a_node_pickles_without_the_plans_it_anchors() -> None:
    Pipeline([inc, double], name="pickled").run(x=1)
    assert SHARED_PLANS in inc.__dict__
    copy = pickle.loads(cloudpickle.dumps(inc))  # as a node goes to a worker process
    assert SHARED_PLANS not in copy.__dict__
    assert Pipeline([copy, double], name="pickled").run(x=2)["z"] == 6


def test_a_new_cache_version_signs_anew_with_a_shared_plan(tmp_path: Path) -> None:
    Pipeline([inc, double], name="v", cache=DiskCache(tmp_path)).run(x=1)
    CALLS.clear()
    again = Pipeline([inc, double], name="v", cache=DiskCache(tmp_path)).run(x=1)
    assert again.report.cache_hits == 2
    assert CALLS == []
    bumped = DiskCache(tmp_path, cache_version="2")
    assert Pipeline([inc, double], name="v", cache=bumped).run(x=1).report.cache_hits == 0
    assert CALLS == ["inc", "double"]


def test_threads_planning_one_structure_at_once_all_get_right_answers() -> None:
    failures: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for index in range(60):
                name = f"t{(offset + index) % 20}"  # more structures than a node keeps
                pipeline = Pipeline([inc, double], name=name)
                wanted = ("y",) if index % 2 else ("z",)
                got = pipeline.run(x=index, output_name=wanted[0])
                assert got == (index + 1 if index % 2 else (index + 1) * 2)
        except BaseException as exc:  # reported below, from the main thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_nothing_a_nested_run_was_configured_with_outlives_its_pipelines(tmp_path: Path) -> None:
    seen, cache = Seen(), DiskCache(tmp_path)
    inner = Pipeline([inc, double], name="inner", callbacks=[seen])
    outer = Pipeline([start, inner.as_node(name="n")], name="outer")  # a module-level node first
    assert outer.with_cache(cache).run(v=0)["z"] == 4
    heard, stored = weakref.ref(seen), weakref.ref(cache)
    del seen, cache, inner, outer
    gc.collect()
    assert heard() is None, "the module-level nodes live on, but not the inner callback"
    assert stored() is None, "nor the cache of the outer run"
