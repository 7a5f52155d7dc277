"""ProgressCallback rendered into a recording console (SPEC 9.3, A9.10)."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest
from rich.console import Console

from nestflow import DiskCache, LocalBackend, Pipeline, ProgressCallback, node


@node(output_name="loaded")
def load(x: int) -> int:
    return x + 1


@node(output_name="embedded")
def embed(item: int) -> int:
    if item == 99:
        raise ValueError("bad item")
    return item * 2


@node(output_name="token")
def tokenize(embedded: int) -> int:
    return embedded


def ingest(cache: DiskCache, callback: ProgressCallback) -> Pipeline:
    embedder = Pipeline([embed, tokenize], name="embedder").as_node(
        name="embed_all", map_over="items", input_mapping={"items": "item"}
    )
    backend = LocalBackend(map_execution="threaded", max_workers=4)
    return Pipeline([load, embedder], name="ingest", cache=cache, backend=backend,
                    callbacks=[callback])  # fmt: skip


class Clock:
    """An injected clock: every reading is one second later."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def rendered(pipeline_of: object, **inputs: object) -> str:
    console = Console(record=True, width=260, file=io.StringIO())
    callback = ProgressCallback(console=console, get_time=Clock())
    pipeline = pipeline_of(callback)  # type: ignore[operator]
    with contextlib.suppress(ValueError):
        pipeline.run(**inputs)
    return console.export_text()


def test_a9_10_nested_names_indent_under_their_parent(tmp_path: Path) -> None:
    text = rendered(lambda cb: ingest(DiskCache(tmp_path), cb), x=1, items=[1, 2, 3])
    lines = text.splitlines()
    assert lines[0].startswith("ingest [Local(nodes=seq, map=threaded×4)*, DiskCache(")
    assert lines[1].startswith("├─ load ")
    assert lines[2].startswith("└─ embed_all [↓ Local(nodes=seq, map=threaded×4), ↓ DiskCache(")
    assert "map 3/3" in lines[2]
    assert "cache hits 0 (0.0%)" in lines[3]
    assert "failed 0" in lines[3]
    assert "workers 4" in lines[3]
    assert lines[4].startswith("   ├─ embed ")
    assert lines[5].startswith("   └─ tokenize ")
    assert all("100%" in line for line in lines if "━" in line)


def test_a9_10_a_warm_rerun_shows_cached_nodes_and_hit_counts(tmp_path: Path) -> None:
    rendered(lambda cb: ingest(DiskCache(tmp_path), cb), x=1, items=[1, 2, 3])
    text = rendered(lambda cb: ingest(DiskCache(tmp_path), cb), x=1, items=[1, 2, 3])
    assert "├─ load ⚡ CACHED" in text
    assert "   ├─ embed ⚡ CACHED" in text
    assert "cache hits 3 (100.0%)" in text
    assert "map 3/3" in text


def test_a_failed_item_is_counted_and_its_node_marked(tmp_path: Path) -> None:
    rendered(lambda cb: ingest(DiskCache(tmp_path), cb), x=1, items=[1, 3])
    text = rendered(lambda cb: ingest(DiskCache(tmp_path), cb), x=1, items=[1, 99, 3])
    assert "embed ✗ ValueError" in text
    assert "failed 1" in text
    assert "cache hits 2 (66.7%)" in text


def test_without_config_or_nodes_only_levels_are_drawn(tmp_path: Path) -> None:
    console = Console(record=True, width=260, file=io.StringIO())
    callback = ProgressCallback(show_nodes=False, show_config=False, console=console)
    ingest(DiskCache(tmp_path), callback).run(x=1, items=[1])
    text = console.export_text()
    assert "[" not in text.splitlines()[0]
    assert "load" not in text
    assert "embed_all" in text


@node(output_name="rested")
def rest(loaded: int) -> int:
    time.sleep(0.4)
    return loaded


def test_a_run_longer_than_the_delay_is_drawn_live(tmp_path: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=260, color_system=None)
    callback = ProgressCallback(console=console, refresh_per_second=50, delay=0.05)
    started: list[bool] = []
    original = callback._go_live

    def spy() -> None:
        original()
        started.append(callback._live is not None)

    callback._go_live = spy  # type: ignore[method-assign]
    Pipeline([load, rest], name="slow", callbacks=[callback]).run(x=1)
    assert started == [True], "the live display started while the run was going"
    assert callback._live is None, "and it is stopped when the root ends"
    assert "rest" in buffer.getvalue()


def test_a_quick_run_on_a_terminal_prints_its_final_tree_once(tmp_path: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=260, color_system=None)
    callback = ProgressCallback(console=console, delay=5.0)
    ingest(DiskCache(tmp_path), callback).run(x=1, items=[1, 2])
    assert callback._live is None
    assert buffer.getvalue().count("map 2/2") == 1


@pytest.mark.parametrize("colors", ["truecolor", "256", "standard", None])
def test_the_final_tree_is_written_exactly_as_rich_prints_it(
    tmp_path: Path, colors: str | None
) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, color_system=colors)
    callback = ProgressCallback(console=console, delay=5.0, get_time=Clock())
    with contextlib.suppress(ValueError):  # a failed item: the tree shows ✗ in red
        ingest(DiskCache(tmp_path), callback).run(x=1, items=[1, 99, 3])
    written = buffer.getvalue()
    assert "✗ ValueError" in written
    again = io.StringIO()
    rich_console = Console(file=again, force_terminal=True, width=120, color_system=colors)
    rich_console.print(callback.render(), soft_wrap=True)
    assert written == again.getvalue()
    assert ("\x1b[" in written) is (colors is not None)


def test_a_second_quick_run_is_drawn_without_a_live_display(tmp_path: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=260, color_system=None)
    callback = ProgressCallback(console=console, delay=0.3)
    pipeline = Pipeline([load], name="quick", callbacks=[callback])
    pipeline.run(x=1)
    waiter = callback._waker
    assert isinstance(waiter, threading.Thread)
    for _ in range(2):
        pipeline.run(x=1)
    assert callback._waker is waiter, "one waiting thread per callback, not one per run"
    time.sleep(0.5)  # past the delay: the waiting thread must not start a display now
    assert callback._live is None
    assert buffer.getvalue().count("quick") == 3


def test_steps_are_drawn_before_they_run_and_the_ones_never_run_are_skipped() -> None:
    @node(output_name="checked")
    def check(loaded: int) -> int:
        raise RuntimeError("stop here")

    @node(output_name="saved")
    def save(checked: int) -> int:
        return checked

    console = Console(record=True, width=200, file=io.StringIO())
    callback = ProgressCallback(console=console, show_config=False)
    with contextlib.suppress(RuntimeError):
        Pipeline([load, check, save], name="steps", callbacks=[callback]).run(x=1)
    lines = console.export_text().splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["steps", "✗"],
        ["├─", "load"],
        ["├─", "check"],
        ["└─", "save"],
    ]
    assert "100%" in lines[1]
    assert "✗ RuntimeError" in lines[2]
    assert "└─ save skipped" in lines[3]
    assert lines[3].rstrip().endswith("0% 0:00:00"), "never started: nothing done, no time"


def test_missing_rich_fails_on_use_with_the_install_command(
    without: Callable[[str, str], str],
) -> None:
    assert "pip install 'nestflow[progress]'" in without("rich", "nestflow.ProgressCallback()")


@pytest.mark.parametrize("show", [True, False])
def test_progress_never_changes_results(tmp_path: Path, show: bool) -> None:
    console = Console(file=io.StringIO())
    callback = ProgressCallback(show_nodes=show, console=console)
    result = ingest(DiskCache(tmp_path / str(show)), callback).run(x=1, items=[4, 5])
    assert result == {"loaded": 2, "embedded": [8, 10], "token": [8, 10]}


def test_runs_sharing_one_callback_each_get_their_own_tree() -> None:
    import threading

    @node(output_name="waited")
    def wait(x: int) -> int:
        time.sleep(0.2)
        return x

    console = Console(record=True, width=200, file=io.StringIO())
    callback = ProgressCallback(console=console)
    first = Pipeline([wait], name="first", callbacks=[callback])
    second = Pipeline([load], name="second", callbacks=[callback])
    worker = threading.Thread(target=lambda: first.run(x=1))
    worker.start()
    time.sleep(0.05)
    second.run(x=2)  # ends while `first` still runs: nothing is printed yet
    assert console.export_text(clear=False) == ""
    worker.join()
    lines = console.export_text().splitlines()
    assert [line.split()[0] for line in lines if not line.startswith(("├", "└"))] == [
        "first",
        "second",
    ]
    assert any(line.startswith("└─ wait") for line in lines)
    assert any(line.startswith("└─ load") for line in lines)


def test_a_running_node_of_a_sequential_level_shows_its_own_time() -> None:
    seen: list[str] = []
    console = Console(record=True, width=200, file=io.StringIO())
    callback = ProgressCallback(console=console, show_config=False, get_time=Clock())

    @node(output_name="watched")
    def watch(loaded: int) -> int:
        seen.append(callback.render().plain)  # the tree as the live display draws it now
        return loaded

    @node(output_name="after")
    def later(watched: int) -> int:
        return watched

    Pipeline([load, watch, later], name="timed", callbacks=[callback]).run(x=1)
    lines = seen[0].splitlines()
    running = next(line for line in lines if "watch" in line)
    waiting = next(line for line in lines if "later" in line)
    assert "0%" in running
    assert not running.rstrip().endswith("0:00:00"), "started when `load` ended: time runs"
    assert waiting.rstrip().endswith("0:00:00"), "not started yet"


def test_the_final_tree_respects_quiet_consoles_and_captures() -> None:
    buffer = io.StringIO()
    quiet = Console(file=buffer, quiet=True, width=100)
    Pipeline([load], name="hushed", callbacks=[ProgressCallback(console=quiet)]).run(x=1)
    assert buffer.getvalue() == ""
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, force_terminal=True, color_system=None)
    with console.capture() as captured:
        console.print("before")
        Pipeline([load], name="captured", callbacks=[ProgressCallback(console=console)]).run(x=1)
    text = captured.get()
    assert text.startswith("before\n")
    assert "captured" in text
    assert "load" in text
    assert buffer.getvalue() == "", "captured output stays in the capture"


# --- a failed or partly failed run shows how far it got ---------------------------------------


@node(output_name="checked")
def check(loaded: int) -> int:
    raise RuntimeError("stop here")


@node(output_name="saved")
def save(checked: int) -> int:
    return checked


@node(output_name="reported")
def report_on(saved: int) -> int:
    return saved


def drawn(pipeline: Pipeline, error: type[Exception] | None = None, **inputs: object) -> str:
    """The final tree of one run of ``pipeline`` (whose callbacks are set here)."""
    console = Console(record=True, width=200, file=io.StringIO())
    callback = ProgressCallback(console=console, show_config=False, get_time=Clock())
    if error is None:
        pipeline.with_callbacks([callback]).run(**inputs)
    else:
        with pytest.raises(error):
            pipeline.with_callbacks([callback]).run(**inputs)
    return console.export_text()


def row(text: str, name: str) -> str:
    """The line of ``name`` in the tree ``text``."""
    for line in text.splitlines():
        words = [w for w in line.split() if w not in ("│", "├─", "└─")]
        if words and words[0] == name:
            return line
    raise AssertionError(f"no line for {name!r} in:\n{text}")


def test_a_failed_run_is_not_drawn_complete_and_its_unreached_steps_are_skipped() -> None:
    inner = Pipeline([load, check, save], name="inner")
    text = drawn(Pipeline([inner.as_node(name="sub"), report_on], name="outer"),
                 RuntimeError, x=1)  # fmt: skip
    assert row(text, "outer").startswith("outer ✗ RuntimeError")
    assert "100%" not in row(text, "outer"), "the root of a failed run is not complete"
    assert row(text, "sub").startswith("├─ sub ✗ RuntimeError")
    assert "100%" not in row(text, "sub")
    assert "check ✗ RuntimeError" in row(text, "check")
    assert "save skipped" in row(text, "save")
    assert "└─ report_on skipped" in row(text, "report_on")
    for name in ("save", "report_on"):
        assert row(text, name).rstrip().endswith("0% 0:00:00"), "never started: no time"


def test_a_failed_map_counts_only_its_finished_items_and_is_not_complete() -> None:
    embed_all = Pipeline([embed], name="embedder").as_node(
        name="embed_all", map_over="items", input_mapping={"items": "item"}
    )
    text = drawn(Pipeline([load, embed_all], name="ingest"), ValueError, x=1,
                 items=[1, 99, 3, 4])  # fmt: skip
    assert "embed_all ✗ ValueError map 2/4" in row(text, "embed_all"), "items 2 and 3 never ran"
    assert "failed 1" in text
    assert "100%" not in row(text, "ingest")
    assert "100%" not in row(text, "embed_all")


def test_a_failed_map_whose_items_all_finished_is_not_drawn_complete() -> None:
    embed_all = Pipeline([embed], name="embedder").as_node(
        name="embed_all", map_over="items", input_mapping={"items": "item"}
    )
    backend = LocalBackend(map_execution="threaded", max_workers=4)
    pipeline = Pipeline([load, embed_all], name="ingest", backend=backend)
    text = drawn(pipeline, ValueError, x=1, items=[1, 99, 3, 4])
    assert "failed 1" in text, "the failing node and its item's end report one failed item"
    for name in ("ingest", "embed_all", "embed"):
        assert "100%" not in row(text, name), name


def test_the_bars_of_failed_lines_are_red() -> None:
    console = Console(record=True, width=200, file=io.StringIO())
    callback = ProgressCallback(console=console, show_config=False, get_time=Clock())
    embed_all = Pipeline([embed], name="embedder").as_node(
        name="embed_all", map_over="items", input_mapping={"items": "item"}
    )
    with pytest.raises(ValueError):
        Pipeline([load, embed_all], name="ingest", callbacks=[callback]).run(
            x=1, items=[1, 2, 3, 99]
        )
    text = callback.render()
    red = {text.plain[span.start : span.end] for span in text.spans if span.style == "red"}
    bars = {piece for piece in red if piece and set(piece) == {"━"}}
    assert bars, "the failed node's and the map's filled bars are drawn red"
    green = [text.plain[s.start : s.end] for s in text.spans if s.style == "green"]
    assert green == ["━" * 30], "only `load`, which succeeded, is complete"


MapMode = Literal["sequential", "threaded"]


@node(output_name="embedded", on_error="continue")
def embed_or_continue(item: int) -> int:
    if item == 99:
        raise ValueError("bad item")
    return item * 2


@pytest.mark.parametrize("mode", ["sequential", "threaded"])
def test_items_whose_node_continued_past_a_failure_count_as_failed(mode: MapMode) -> None:
    embed_all = Pipeline([embed_or_continue], name="embedder").as_node(
        name="embed_all", map_over="items", input_mapping={"items": "item"}
    )
    backend = LocalBackend(map_execution=mode, max_workers=2)
    pipeline = Pipeline([embed_all], name="ingest", backend=backend)
    text = drawn(pipeline, items=[1, 99, 3, 99])
    assert "embed_or_continue ✗ ValueError" in text
    assert "failed 2" in text, "the map line counts the items its child failed in"
    assert "map 4/4" in text


def test_a_failure_deeper_inside_an_item_counts_that_item_on_the_map() -> None:
    deeper = Pipeline([Pipeline([embed_or_continue], name="leaf")], name="middle")
    each = deeper.as_node(name="each", map_over="items", input_mapping={"items": "item"})
    groups = Pipeline([each], name="group").as_node(
        name="groups", map_over="batches", input_mapping={"batches": "items"}
    )
    text = drawn(Pipeline([groups], name="top"), batches=[[1, 99], [3], [99, 99]])
    assert "failed 2" in row_after(text, "groups"), "batches 0 and 2 had a failed item"
    assert "failed 3" in row_after(text, "each"), "three items failed, counted once each"


def row_after(text: str, name: str) -> str:
    """The statistics line under the map line ``name``."""
    lines = text.splitlines()
    return lines[lines.index(row(text, name)) + 1]


@pytest.mark.parametrize("mode", ["sequential", "threaded"])
def test_per_item_continue_counts_each_failed_item_once(mode: MapMode) -> None:
    embed_all = Pipeline([embed], name="embedder").as_node(
        name="embed_all", map_over="items", input_mapping={"items": "item"}, on_error="continue"
    )
    backend = LocalBackend(map_execution=mode, max_workers=2)
    text = drawn(Pipeline([embed_all], name="ingest", backend=backend), items=[1, 99, 3, 99])
    assert "failed 2" in text
    assert "100%" not in row(text, "embed_all"), "two of four items failed"
