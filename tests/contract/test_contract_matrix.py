"""Every scenario under every driver, LocalBackend mode, cache setting and callback setting.

Each cell is compared with the plain reference (sync driver, sequential, no cache, no
callback) and with the reference of its own cache and callback setting; see
``contract_checks`` for what is compared and ``contract_scenarios`` for the scenarios.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from contract_cells import PAIRS, Cell, References, cell_id
from contract_checks import run_cell
from contract_kit import Workspace
from contract_scenarios import SCENARIOS, Scenario

from nestflow import LocalBackend

SETTINGS = [
    pytest.param(driver, *pair, cache, callbacks, id=cell_id(driver, *pair, cache, callbacks))
    for driver, pair, cache, callbacks in itertools.product(
        ("sync", "async"), PAIRS, (False, True), (False, True)
    )
]


def test_the_table_holds_at_least_forty_distinct_scenarios() -> None:
    assert len(SCENARIOS) >= 40
    assert len({s.id for s in SCENARIOS}) == len(SCENARIOS)


@pytest.mark.parametrize(("driver", "nodes", "items", "cache", "callbacks"), SETTINGS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_cell_matches_the_references(
    scenario: Scenario,
    driver: str,
    nodes: str,
    items: str,
    cache: bool,
    callbacks: bool,
    workspaces: Iterator[Workspace],
    references: References,
) -> None:
    cell = Cell(driver, LocalBackend(nodes, items), cache, callbacks)
    run_cell(scenario, cell, next(workspaces), references)
