"""``record_usage`` counters per run, and the site a node function marked for it runs at.

Usage is added wherever the node runs: inline, in pool threads, in worker processes (one
node, or a whole map item) and on dask, and lands in the run's report once. A function
marked ``__nestflow_site__`` sees its pipeline and node while it runs, and its events reach
``on_remote_event``: at once from the coordinating thread, on return from anywhere else.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from nestflow import LocalBackend, Pipeline, node, record_usage
from nestflow.callbacks.events import CallbackContext, PipelineCallback
from nestflow.core.usage import Usage, collecting, current
from nestflow.errors import InvalidOptionError
from nestflow.runtime.report import RunReport
from nestflow.runtime.sites import current_site


@node(output_name="reply")
def ask(prompt: str) -> str:
    record_usage("llm_tokens", len(prompt.split()))
    record_usage("calls")
    return prompt.upper()


@node(output_name="length")
def measure(reply: str) -> int:
    return len(reply)


def test_a_run_reports_the_counters_its_nodes_recorded() -> None:
    outputs = Pipeline([ask, measure]).run({"prompt": "three small words"})
    assert outputs.report.usage == {"llm_tokens": 3.0, "calls": 1.0}


def test_a_run_without_counters_reports_none() -> None:
    assert Pipeline([measure]).run({"reply": "x"}).report.usage == {}


def test_outside_a_run_record_usage_does_nothing() -> None:
    assert current() is None
    record_usage("llm_tokens", 5)  # no error, nowhere to add
    assert ask("a b") == "A B"


def test_two_runs_keep_their_own_counters() -> None:
    pipeline = Pipeline([ask])
    first = pipeline.run({"prompt": "a"}).report.usage
    second = pipeline.run({"prompt": "a b c d"}).report.usage
    assert (first["llm_tokens"], second["llm_tokens"]) == (1.0, 4.0)


BACKENDS = {
    "sequential": LocalBackend(),
    "threaded items": LocalBackend(map_execution="threaded"),
    "parallel items": LocalBackend(map_execution="parallel", max_workers=2),
    "parallel nodes": LocalBackend(node_execution="parallel", max_workers=2),
    "async items": LocalBackend(map_execution="async"),
}


@pytest.mark.parametrize("backend", BACKENDS.values(), ids=BACKENDS.keys())
def test_usage_from_every_local_backend_adds_up_once(backend: LocalBackend) -> None:
    pipeline = Pipeline([ask, measure], backend=backend)
    prompts = ["a", "b c", "d e f", "g h i j"]
    outputs = pipeline.map({"prompt": prompts}, map_over="prompt")
    assert outputs.report.usage == {"llm_tokens": 10.0, "calls": 4.0}


def test_usage_of_a_nested_pipeline_counts_for_the_run() -> None:
    inner = Pipeline([ask], name="inner")
    outer = Pipeline([inner.as_node(name="each", map_over="prompt")], name="outer")
    outputs = outer.run({"prompt": ["x y", "z"]})
    assert outputs["reply"] == ["X Y", "Z"]
    assert outputs.report.usage["llm_tokens"] == 3.0


@pytest.fixture(scope="module")
def dask_backend() -> Any:
    from nestflow import DaskBackend

    backend = DaskBackend(n_workers=1, threads_per_worker=2)
    yield backend
    backend.close()


def test_usage_from_dask_workers_reaches_the_run(dask_backend: Any) -> None:
    node_level = Pipeline([ask], backend=dask_backend)
    assert node_level.run({"prompt": "a b"}).report.usage == {"llm_tokens": 2.0, "calls": 1.0}
    mapped = node_level.map({"prompt": ["a", "b c"]}, map_over="prompt")
    assert mapped.report.usage == {"llm_tokens": 3.0, "calls": 2.0}


@node(output_name="reply")
def ask_then_fail(prompt: str) -> str:
    record_usage("llm_tokens", 9)
    raise RuntimeError("the model refused")


def test_usage_of_a_failed_run_is_kept() -> None:
    from nestflow import capture

    with capture() as captured, pytest.raises(RuntimeError):
        Pipeline([ask_then_fail]).run({"prompt": "x"})
    assert captured.reports[-1].usage == {"llm_tokens": 9.0}


@pytest.mark.parametrize("where", ["parallel node", "dask node"])
def test_usage_of_a_call_that_fails_in_a_worker_is_kept(where: str, dask_backend: Any) -> None:
    from nestflow import capture

    backend = (
        dask_backend
        if where == "dask node"
        else LocalBackend(node_execution="parallel", max_workers=1)
    )
    with capture() as captured, pytest.raises(RuntimeError, match="refused"):
        Pipeline([ask_then_fail], backend=backend).run({"prompt": "x"})
    assert captured.reports[-1].usage == {"llm_tokens": 9.0}


def test_the_report_keeps_usage_through_json(tmp_path: Any) -> None:
    report = Pipeline([ask]).run({"prompt": "a b"}).report
    loaded = RunReport.load(report.save(tmp_path))
    assert loaded.usage == {"llm_tokens": 2.0, "calls": 1.0}


@pytest.mark.parametrize(
    ("name", "amount", "says"),
    [
        ("", 1, "non-empty str name"),
        (3, 1, "non-empty str name"),
        ("tokens", "5", "finite number"),
        ("tokens", math.nan, "finite number"),
        ("tokens", True, "finite number"),
    ],
)
def test_bad_counters_are_refused_saying_what_was_expected(
    name: Any, amount: Any, says: str
) -> None:
    with pytest.raises(InvalidOptionError, match=says):
        record_usage(name, amount)


def test_threads_adding_at_once_lose_nothing() -> None:
    usage = Usage()

    def add() -> None:
        with collecting(usage):
            for _ in range(2_000):
                record_usage("n", 1)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert usage.totals() == {"n": 8_000.0}


# --- sites ------------------------------------------------------------------------------------


class Talker:
    """A node function that asks where it runs and sends two events."""

    __nestflow_site__ = True

    def __init__(self) -> None:
        self.__signature__ = inspect.signature(lambda text: None)

    def __call__(self, text: str) -> str:
        site = current_site()
        assert site is not None
        site.emit({"status": "half", "text": text})
        site.emit({"status": "done"})
        return f"{site.pipeline}/{site.node}/{site.path}"


class Heard(PipelineCallback):
    def __init__(self) -> None:
        self.heard: list[tuple[str, dict[str, Any], bool, tuple[int, ...]]] = []
        self.log: list[str] = []

    def on_remote_event(self, node_id: str, event: Mapping[str, Any], ctx: CallbackContext) -> None:
        live = current_site() is not None
        self.heard.append((node_id, dict(event), live, ctx.item_path))
        self.log.append(f"event:{event['status']}")

    def on_node_end(
        self, node_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        self.log.append(f"end:{node_id}")


def talker_pipeline(**backend: Any) -> Pipeline:
    talk = node(output_name="said", name="talk")(Talker())
    return Pipeline([talk], name="root", backend=LocalBackend(**backend))


def test_a_marked_function_knows_its_pipeline_node_and_path() -> None:
    assert talker_pipeline().run({"text": "x"})["said"] == "root/talk/root > talk"


def test_an_unmarked_function_has_no_site() -> None:
    @node(output_name="seen")
    def look(text: str) -> bool:
        return current_site() is None

    assert Pipeline([look]).run({"text": "x"})["seen"] is True


def test_events_from_the_coordinating_thread_arrive_while_the_call_runs() -> None:
    heard = Heard()
    talker_pipeline().with_callbacks([heard]).run({"text": "x"})
    assert [(n, e["status"], live) for n, e, live, _ in heard.heard] == [
        ("talk", "half", True),
        ("talk", "done", True),
    ]
    assert heard.log == ["event:half", "event:done", "end:talk"]


@pytest.mark.parametrize("mode", ["threaded", "parallel"])
def test_events_from_elsewhere_arrive_in_order_when_the_call_returns(mode: str) -> None:
    heard = Heard()
    talker_pipeline(node_execution=mode, max_workers=2).with_callbacks([heard]).run({"text": "x"})
    assert [(n, e["status"], live) for n, e, live, _ in heard.heard] == [
        ("talk", "half", False),
        ("talk", "done", False),
    ]
    assert heard.log == ["event:half", "event:done", "end:talk"]


def test_events_of_map_items_in_worker_processes_are_relayed_to_their_item() -> None:
    heard = Heard()
    pipeline = talker_pipeline(map_execution="parallel", max_workers=2).with_callbacks([heard])
    outputs = pipeline.map({"text": ["a", "b"]}, map_over="text")
    assert outputs["said"] == ["root/talk/root > talk"] * 2
    texts = sorted((e.get("text"), item) for _, e, _, item in heard.heard if "text" in e)
    assert texts == [("a", (0,)), ("b", (1,))]
