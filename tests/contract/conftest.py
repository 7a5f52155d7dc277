"""Fixtures shared by the contract matrix and its dask subset."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from contract_cells import References
from contract_kit import Workspace


@pytest.fixture(scope="session")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A fresh workspace per cell, all sharing one cache folder (each under its own version).

    Cheaper than ``tmp_path`` and a new cache database for each of thousands of cells.
    """
    base = tmp_path_factory.mktemp("cells")
    cache_dir = base / "cache"
    return (Workspace(base / str(n), cache_dir) for n in itertools.count())


@pytest.fixture(scope="session")
def references(workspaces: Iterator[Workspace]) -> References:
    """Reference runs, made once per scenario and setting for the whole session."""
    return References(workspaces)
