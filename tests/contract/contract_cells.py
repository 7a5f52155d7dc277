"""One cell of the contract matrix: its setting, and what running a scenario in it leaves.

A cell is a driver, a backend, a cache or none, a recording callback or none, all set on
the root pipeline. Running a scenario in a cell leaves one ``Observation`` per step: the
value or exception, the captured report, the callback events with their contexts, the
calls the functions logged, the warnings and the wall-clock bounds of the call.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from contract_kit import Step, Workspace
from contract_scenarios import Scenario

from nestflow import DiskCache, LocalBackend, Pipeline, RunReport, capture
from nestflow.callbacks.events import CallbackContext
from nestflow.testing import RecordingCallback, forced_driver

SHORT = {"sequential": "seq", "threaded": "thr", "async": "async", "parallel": "par"}
PAIRS = [
    ("sequential", "sequential"),
    ("threaded", "sequential"),
    ("async", "sequential"),
    ("parallel", "sequential"),
    ("sequential", "threaded"),
    ("sequential", "async"),
    ("sequential", "parallel"),
    ("threaded", "threaded"),
]
"""(node_execution, map_execution) of the LocalBackend cells."""


@dataclass(frozen=True)
class Cell:
    """One point of the matrix."""

    driver: str
    backend: Any
    cache: bool
    callbacks: bool

    @property
    def nodes(self) -> str:
        return str(self.backend.node_execution)

    @property
    def items(self) -> str:
        return str(self.backend.map_execution)

    @property
    def local(self) -> bool:
        return isinstance(self.backend, LocalBackend)

    @property
    def sequential(self) -> bool:
        """Both dimensions sequential on a LocalBackend: one order only."""
        return self.local and self.nodes == self.items == "sequential"

    @property
    def is_reference(self) -> bool:
        """Whether this cell is the reference of its cache and callback setting."""
        return self.driver == "sync" and self.sequential

    def same_setting(self) -> Cell:
        """The reference with this cell's cache and callbacks."""
        return Cell("sync", LocalBackend(), self.cache, self.callbacks)


PLAIN = Cell("sync", LocalBackend(), cache=False, callbacks=False)
"""The plain reference: sync driver, sequential, no cache, no callback."""


def cell_id(driver: str, nodes: str, items: str, cache: bool, callbacks: bool) -> str:
    """A readable test id: ``sync-nodes=thr,map=seq-cache-callback``."""
    return "-".join(
        [
            driver,
            f"nodes={SHORT[nodes]},map={SHORT[items]}",
            "cache" if cache else "nocache",
            "callback" if callbacks else "nocallback",
        ]
    )


# --- observing a cell --------------------------------------------------------------------------


@dataclass
class Observation:
    """What one step of a cell did."""

    step: Step
    value: Any
    error: BaseException | None
    reports: list[RunReport]
    events: list[tuple[tuple[Any, ...], CallbackContext]]
    calls: list[tuple[str, int]]
    warnings: list[tuple[str, str]]
    wall: tuple[float, float]
    elapsed: float
    labels: tuple[str, ...]

    @property
    def report(self) -> RunReport:
        assert len(self.reports) == 1, f"capture() saw {len(self.reports)} reports"
        return self.reports[0]

    def called(self) -> Counter[str]:
        return Counter(name for name, _ in self.calls)


def configure(built: Pipeline, cell: Cell, cache: Any, recorder: Any) -> Pipeline:
    """The scenario's pipeline with the cell's backend, cache and callbacks on its root."""
    pipeline = built.with_backend(cell.backend)
    if cache is not None:
        pipeline = pipeline.with_cache(cache)
    if recorder is not None:
        pipeline = pipeline.with_callbacks([recorder])
    return pipeline


def open_cache(ws: Workspace) -> DiskCache:
    """A cache object for the cell of ``ws``: its own version in the shared folder."""
    return DiskCache(ws.cache_dir, cache_version=ws.cache_version)


def observe(scenario: Scenario, cell: Cell, ws: Workspace) -> list[Observation]:
    """Build the scenario in ``ws`` and run its steps in ``cell``."""
    ws.root.mkdir(parents=True, exist_ok=True)
    recorder = RecordingCallback() if cell.callbacks else None
    built = scenario.build(ws)
    cache = open_cache(ws) if cell.cache else None
    pipeline = configure(built, cell, cache, recorder)
    found = []
    for step in scenario.steps:
        if step.prepare is not None:
            step.prepare(ws)
        if step.reopen and cell.cache:
            cache = open_cache(ws)
            pipeline = configure(built, cell, cache, recorder)
        labels = (cell.backend.label, *([cache.label] if cache is not None else []))
        found.append(observe_step(pipeline, step, ws, recorder, cell.driver, labels))
    return found


def observe_step(
    pipeline: Pipeline,
    step: Step,
    ws: Workspace,
    recorder: RecordingCallback | None,
    driver: str,
    labels: tuple[str, ...],
) -> Observation:
    """Call ``step`` on ``driver`` and keep everything it left behind."""
    first_event = len(recorder.events) if recorder is not None else 0
    first_call = len(ws.calls())
    error: BaseException | None = None
    value: Any = None
    with warnings.catch_warnings(record=True) as caught, capture() as cap, forced_driver(driver):
        warnings.simplefilter("always")
        wall_before, clock = time.time(), perf_counter()
        try:
            value = step.call(pipeline)
        except Exception as exc:
            error = exc
        elapsed, wall_after = perf_counter() - clock, time.time()
    events = []
    if recorder is not None:
        events = list(zip(recorder.events, recorder.contexts, strict=True))[first_event:]
    return Observation(
        step=step,
        value=value,
        error=error,
        reports=list(cap.reports),
        events=events,
        calls=ws.calls()[first_call:],
        warnings=[(w.category.__name__, str(w.message)) for w in caught],
        wall=(wall_before, wall_after),
        elapsed=elapsed,
        labels=labels,
    )


# --- references --------------------------------------------------------------------------------


class References:
    """Reference runs, made once per scenario and setting and kept for the session."""

    def __init__(self, workspaces: Iterator[Workspace]) -> None:
        self.workspaces = workspaces
        self.found: dict[tuple[str, bool, bool], list[Observation]] = {}

    def of(self, scenario: Scenario, cell: Cell) -> list[Observation]:
        assert cell.is_reference
        key = (scenario.id, cell.cache, cell.callbacks)
        if key not in self.found:
            self.found[key] = observe(scenario, cell, next(self.workspaces))
        return self.found[key]
