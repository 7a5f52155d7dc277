"""Progress trees and pipeline pictures in a real Jupyter kernel (SPEC 9.3, 9.6)."""

from __future__ import annotations

import json
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NODES = """
import time
from nestflow import Pipeline, ProgressCallback, node

@node(output_name="loaded")
def load(x: int) -> int:
    return x + 1

@node(output_name="rested")
def rest(loaded: int) -> int:
    time.sleep(REST)
    return loaded
"""


pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def executed() -> Any:
    """One notebook run on an IPython kernel: a quick run, a slow run, a pipeline shown."""
    cells = [
        NODES,
        "REST = 0.0\nPipeline([load, rest], name='quick', callbacks=[ProgressCallback()]).run(x=1)",
        (
            "REST = 1.0\nslow = ProgressCallback(delay=0.1, refresh_per_second=20)\n"
            "Pipeline([load, rest], name='slow', callbacks=[slow]).run(x=1)"
        ),
        "Pipeline([load, rest], name='shown')",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    # A cell takes a second or two. Under load, the client sometimes misses the wake-up for
    # a reply that has arrived (the kernel is idle) and sees it only when its wait ends: the
    # per-cell wait is kept short, and the module's limit covers a few such waits.
    client = NotebookClient(notebook, timeout=20, kernel_name="python3", store_widget_state=True)
    client.execute()
    return notebook


def _displays(cell: Any) -> list[dict[str, Any]]:
    return [out["data"] for out in cell.outputs if out["output_type"] == "display_data"]


def test_a_quick_run_shows_its_final_tree_as_a_notebook_display(executed: Any) -> None:
    (tree,) = [d for d in _displays(executed.cells[1]) if "quick" in d.get("text/plain", "")]
    html = tree["text/html"]
    assert html.startswith("<pre")
    assert "quick" in html
    assert "load" in html
    assert "100%" in html


def test_a_slow_run_is_drawn_live_in_a_widget_that_ends_on_the_final_tree(
    executed: Any,
) -> None:
    views = [
        d["application/vnd.jupyter.widget-view+json"]["model_id"]
        for d in _displays(executed.cells[2])
        if "application/vnd.jupyter.widget-view+json" in d
    ]
    assert len(views) == 1, "the live display is one output widget"
    state = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    outputs = state[views[0]]["state"]["outputs"]
    last = outputs[-1]["data"]["text/plain"]
    root, *nodes = last.splitlines()
    assert root.startswith("\x1b[1mslow")
    assert "100%" in root, "the widget shows the final tree, not its last periodic frame"
    assert any("rest" in line and "100%" in line for line in nodes)


def test_a_pipeline_draws_itself_as_svg(executed: Any) -> None:
    (result,) = [out for out in executed.cells[3].outputs if out["output_type"] == "execute_result"]
    svg = result["data"]["image/svg+xml"]
    assert "<svg" in svg
    assert "load" in svg
    assert "rest" in svg
    assert json.dumps(result["data"]["text/plain"]).count("rest") >= 1
