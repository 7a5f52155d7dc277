"""A subset of the scenarios on a real dask LocalCluster, through ``nestflow.DaskBackend``.

One cluster serves the module: the default backend (nodes and map items as dask tasks)
and a sequential one sharing its client. Every cell is compared with the same references
as the LocalBackend matrix, and every function must run on a dask worker, except in a level
that sets its own ``LocalBackend()``. Dask may start map items in any order and cancels the
queued ones after a failure, so the failing map here has a single item.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from contract_cells import Cell, References
from contract_checks import run_cell
from contract_kit import Workspace
from contract_scenarios import Scenario, by_id

from nestflow import DaskBackend

SUBSET = [
    "flat_chain",
    "nested_three_levels",
    "explicit_child_backend",
    "map_over_double",
    "root_map_zip",
    "cache_partly_warm_map",
    "retry_then_succeed",
    "failure_in_one_item_map",
    "continue_mapped_node",
    "continue_root_map",
    "outcome_fallback",
    "condition_nested",
    "step_limit_chain",
]


def dask_cell_id(kind: str, driver: str, cache: bool, callbacks: bool) -> str:
    """A readable test id: ``sync-dask=parallel-cache-callback``."""
    parts = [driver, f"dask={kind}", "cache" if cache else "nocache"]
    return "-".join([*parts, "callback" if callbacks else "nocallback"])


SETTINGS = [
    pytest.param(*setting, id=dask_cell_id(*setting))
    for setting in itertools.product(
        ("parallel", "sequential"), ("sync", "async"), (False, True), (False, True)
    )
]


@pytest.fixture(scope="module")
def dask_backends() -> Iterator[dict[str, DaskBackend]]:
    """One LocalCluster of two workers; a parallel and a sequential backend on it."""
    parallel = DaskBackend(n_workers=2)
    sequential = DaskBackend(
        client=parallel.client, node_execution="sequential", map_execution="sequential"
    )
    yield {"parallel": parallel, "sequential": sequential}
    sequential.close()
    parallel.close()


@pytest.mark.parametrize(("kind", "driver", "cache", "callbacks"), SETTINGS)
@pytest.mark.parametrize("scenario", [by_id(name) for name in SUBSET], ids=lambda s: s.id)
def test_dask_cell_matches_the_references(
    scenario: Scenario,
    kind: str,
    driver: str,
    cache: bool,
    callbacks: bool,
    dask_backends: dict[str, DaskBackend],
    workspaces: Iterator[Workspace],
    references: References,
) -> None:
    cell = Cell(driver, dask_backends[kind], cache, callbacks)
    run_cell(scenario, cell, next(workspaces), references)
