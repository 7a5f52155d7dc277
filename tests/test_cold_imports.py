"""A plain sequential run loads only what it uses: no worker processes, no event loop.

Each check runs in a fresh interpreter, since the test process has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "multiprocessing",
    "cloudpickle",
    "dask",
    "distributed",
    "rich",
    "asyncio",
    "concurrent.futures",
    "yaml",
    "jinja2",
    "httpx",
    "opentelemetry",
    "redis",
    "graphviz",
    "nestflow.runtime.remote",
    "nestflow.engines.processes",
    "nestflow.chain",
    "nestflow.spec",
    "nestflow.service",
)


def _loaded_after(code: str) -> list[str]:
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def _heavy(modules: list[str]) -> list[str]:
    return [name for name in HEAVY if name in modules]


def test_import_nestflow_loads_none_of_the_optional_parts() -> None:
    assert _heavy(_loaded_after("import nestflow")) == []


def test_a_sequential_run_loads_no_processes_event_loop_or_pools() -> None:
    code = """
from nestflow import Pipeline, node

@node(output_name="y")
def inc(x):
    return x + 1

@node(output_name="z")
def double(y):
    return 2 * y

assert Pipeline([inc, double]).run(x=1)["z"] == 4
"""
    assert _heavy(_loaded_after(code)) == []


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("DiskCache", "nestflow.cache.disk"),
        ("ProgressCallback", "nestflow.callbacks.progress"),
        ("DaskBackend", "nestflow.engines.dask"),
        ("Chain", "nestflow.chain"),
        ("load_yaml", "nestflow.spec.loader"),
    ],
)
def test_a_lazy_name_loads_its_module_on_first_use(name: str, module: str) -> None:
    modules = _loaded_after(f"import nestflow\nfound = nestflow.{name}\nassert found is not None")
    assert module in modules


def test_an_async_node_still_runs_on_an_event_loop() -> None:
    code = """
from nestflow import Pipeline, node

@node(output_name="y")
async def inc(x):
    return x + 1

assert Pipeline([inc]).run(x=1)["y"] == 2
"""
    assert "asyncio" in _loaded_after(code)
