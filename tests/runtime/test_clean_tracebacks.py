"""A node's failure reaches the caller as the user's exception with a short traceback.

No unrelated exception is chained before it (a run used to start every failure outside
the plain sequential path with ``RuntimeError: no running event loop``), its traceback
goes from the caller's frame through at most two nestflow frames into the node, and the
error record stores the node's frames only. The user's own chained exceptions stay.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

from nestflow import DaskBackend, LocalBackend, Pipeline, capture, node
from nestflow.core.pipeline import Pipeline as PipelineClass

cloudpickle.register_pickle_by_value(sys.modules[__name__])

NESTFLOW = str(Path(PipelineClass.__module__.replace(".", "/")).parts[0])


@node(output_name="y")
def boom(x: int) -> int:
    raise ValueError(f"bad {x}")


@node(output_name="y")
async def boom_async(x: int) -> int:
    raise ValueError(f"bad {x}")


@node(output_name="y")
def boom_while_handling(x: int) -> int:
    try:
        {}["missing"]
    except KeyError:
        raise ValueError(f"bad {x}")  # noqa: B904 (the user's own implicit chaining)
    return x


@node(output_name="z")
def after(y: int) -> int:
    return y


LOCAL_MODES = {
    "sequential": LocalBackend(),
    "threaded": LocalBackend(node_execution="threaded"),
    "async": LocalBackend(node_execution="async"),
    "map-threaded": LocalBackend(map_execution="threaded"),
    "map-async": LocalBackend(map_execution="async"),
}


def _failure(pipeline: Pipeline, *, mapped: bool) -> ValueError:
    call = (lambda: pipeline.map(x=[1, 2], map_over="x")) if mapped else (lambda: pipeline.run(x=1))
    with pytest.raises(ValueError) as caught:
        call()
    return caught.value


def _frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return list(traceback.extract_tb(exc.__traceback__))


def _nestflow_frames(frames: list[traceback.FrameSummary]) -> list[traceback.FrameSummary]:
    return [f for f in frames if f"/{NESTFLOW}/" in f.filename]


@pytest.mark.parametrize("mode", sorted(LOCAL_MODES))
@pytest.mark.parametrize("function", [boom, boom_async], ids=["sync", "async"])
def test_a_failure_has_no_chained_context_and_a_short_traceback(
    mode: str, function: object
) -> None:
    pipeline = Pipeline([function, after], name="p", backend=LOCAL_MODES[mode])
    exc = _failure(pipeline, mapped=mode.startswith("map"))
    text = "".join(traceback.format_exception(exc))
    assert "no running event loop" not in text
    assert "During handling" not in text
    assert exc.__context__ is None
    assert exc.__cause__ is None
    frames = _frames(exc)
    assert frames[0].filename == __file__, "it starts at the caller's frame"
    assert frames[1].name == "<lambda>"
    assert frames[-1].name == function.func.__name__, "it ends in the node"  # type: ignore[attr-defined]
    assert len(_nestflow_frames(frames)) <= 2, [f"{f.filename}:{f.name}" for f in frames]


@pytest.mark.parametrize("mode", sorted(LOCAL_MODES))
def test_the_error_record_keeps_the_nodes_frames_only(mode: str) -> None:
    pipeline = Pipeline([boom, after], name="p", backend=LOCAL_MODES[mode])
    with capture() as runs:
        _failure(pipeline, mapped=mode.startswith("map"))
    (record, *_) = runs.last.errors
    assert record.traceback.startswith("Traceback (most recent call last):")
    assert 'in boom\n    raise ValueError(f"bad {x}")' in record.traceback
    assert f"/{NESTFLOW}/" not in record.traceback
    assert "\nValueError: bad 1\nnestflow: node p > boom" in record.traceback


@pytest.mark.parametrize("mode", sorted(LOCAL_MODES))
def test_the_users_own_chained_exception_is_kept(mode: str) -> None:
    pipeline = Pipeline([boom_while_handling, after], name="p", backend=LOCAL_MODES[mode])
    exc = _failure(pipeline, mapped=mode.startswith("map"))
    assert isinstance(exc.__context__, KeyError)
    text = "".join(traceback.format_exception(exc))
    assert "During handling" in text
    assert "KeyError: 'missing'" in text
    assert "no running event loop" not in text


def test_a_nested_failure_is_as_short_as_a_flat_one() -> None:
    inner = Pipeline([boom], name="inner", backend=LocalBackend(node_execution="threaded"))
    middle = Pipeline([inner.as_node(name="step")], name="middle")
    outer = Pipeline([middle, after], name="outer", backend=LocalBackend(node_execution="async"))
    exc = _failure(outer, mapped=False)
    frames = _frames(exc)
    assert exc.__context__ is None
    assert frames[-1].name == "boom"
    assert len(_nestflow_frames(frames)) <= 2


def test_a_failure_in_a_worker_process_shows_the_workers_frames_as_its_cause() -> None:
    pipeline = Pipeline([boom, after], name="p", backend=LocalBackend(node_execution="parallel"))
    exc = _failure(pipeline, mapped=False)
    text = "".join(traceback.format_exception(exc))
    assert "no running event loop" not in text
    cause = exc.__cause__
    assert cause is not None
    assert type(cause).__name__ == "RemoteTraceback"
    assert ", in boom\n" in str(cause), "the worker's frames, from the node on"
    assert "_execute" not in str(cause)
    assert "The above exception was the direct cause" in text
    assert len(_nestflow_frames(_frames(exc))) <= 2


@pytest.fixture(scope="module")
def dask_backend() -> Iterator[DaskBackend]:
    backend = DaskBackend(n_workers=1, threads_per_worker=2)
    yield backend
    backend.close()


def test_a_failure_on_dask_is_short_and_unchained(dask_backend: DaskBackend) -> None:
    pipeline = Pipeline([boom, after], name="p", backend=dask_backend)
    exc = _failure(pipeline, mapped=False)
    text = "".join(traceback.format_exception(exc))
    assert "no running event loop" not in text
    assert "During handling" not in text
    frames = _frames(exc)
    assert frames[-1].name == "boom"
    assert len(_nestflow_frames(frames)) <= 2
