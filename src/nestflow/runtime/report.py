"""What a run leaves behind: Outputs, the RunReport with per-node records, and capture()."""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from nestflow.runtime.summary import PerformanceSummary

Status = Literal["ok", "partial", "failed"]
NodeStatus = Literal["executed", "cached", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One function-node execution (one per item in maps)."""

    path: str
    node: str
    pipeline: str
    depth: int
    item_path: tuple[int, ...]
    status: NodeStatus
    duration_s: float | None
    attempts: int = 1
    signature: str | None = None
    backend: str | None = None
    cache: str | None = None
    error: str | None = None
    levels: tuple[str, ...] = ()
    """Ids of the nested nodes from the root to this record's level (``path`` names pipelines)."""

    @property
    def id_path(self) -> tuple[str, ...]:
        """The root pipeline, the ids of the nested nodes down to this record's level, the node.

        Unlike ``path``, which names pipelines, it tells apart two nodes that nest the same
        pipeline (``retrieval > encode_corpus > embed``, ``retrieval > encode_query > embed``).
        A record without those ids (saved before they were kept) falls back to ``path``.
        """
        if len(self.levels) != self.depth:
            return tuple(self.path.split(" > "))
        return (self.path.partition(" > ")[0], *self.levels, self.node)


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """A node failure kept by the report (raised, or continued past with on_error)."""

    node_path: str
    exception_type: str
    message: str
    traceback: str
    item_path: tuple[int, ...]
    attempts: int


_ROWS_LOCK = threading.Lock()


@dataclass(eq=False)
class RunReport:
    """The structured account of one run: status, timings and per-node records."""

    run_id: str
    trace_id: str
    pipeline: str
    status: Status = "ok"
    started_at: float = 0.0
    duration_s: float = 0.0
    errors: list[ErrorRecord] = field(default_factory=list)
    cache_hits: int = 0
    cache_misses: int = 0
    callback_failures: int = 0
    abandoned_threads: list[str] = field(default_factory=list)
    """Node paths (with ``[item i]``) whose timed-out thread was left running, result discarded."""
    drivers: tuple[str, ...] = ()
    """The drivers that ran levels of this run (``"sync"``, ``"async"``), in order of first use."""
    usage: dict[str, float] = field(default_factory=dict)
    """The counters the run's nodes reported with ``nestflow.record_usage``, by name."""
    maps: list[tuple[str, ...]] | None = field(default_factory=list)
    """The levels that ran once per item, each named by the ids of the nested nodes that
    entered it (``()``: the root, run by ``Pipeline.map``). ``None`` in a report saved
    without them: the tree then reads the maps from the records' item paths, which cannot
    tell a map over a pipeline that only wraps a nested one from a map of that nested one."""
    _records: list[NodeRecord] = field(default_factory=list, repr=False)
    pending: list[Any] = field(default_factory=list, repr=False)
    """Rows of node executions not yet made into records (see ``runtime/records.py``)."""

    @property
    def mapped(self) -> bool | None:
        """Whether the root ran once per item (``Pipeline.map``); None when not known."""
        return None if self.maps is None else () in self.maps

    @property
    def failed_items(self) -> list[tuple[int, ...]]:
        """The item paths of the map items that failed, at any level, in order: ``(3,)`` is
        item 3 of a map; ``(1, 0)`` item 0 of a map inside item 1 of another.

        An item failed when a node in it failed for good, whether the map kept going past it
        (``on_error="continue"``), a node continued past it, or it ended the run.
        """
        return sorted({error.item_path for error in self.errors if error.item_path})

    @property
    def records(self) -> list[NodeRecord]:
        """One record per function-node execution, in execution order.

        A run keeps compact rows while it goes; they are made into records when read
        (also during a run, from any thread).
        """
        rows = self.pending
        if rows:  # emptied in place: the run appending to it keeps the same list
            from nestflow.runtime.records import records_of

            with _ROWS_LOCK:
                count = len(rows)
                self._records.extend(records_of(rows[:count]))
                del rows[:count]
        return self._records

    def add(self, record: NodeRecord) -> None:
        """Append a finished record (one relayed from a worker)."""
        self.records.append(record)

    def stats(self, by: Literal["node", "pipeline"] = "node") -> dict[str, dict[str, float]]:
        """``executed``, ``cached``, ``failed``, ``skipped`` counts and total duration per key.

        Keys are paths of node ids (``NodeRecord.id_path``): a node's, or its level's.
        """
        if by not in ("node", "pipeline"):
            raise ValueError(f"stats(by=...) takes 'node' or 'pipeline', got {by!r}.")
        table: dict[str, dict[str, float]] = {}
        for record in self.records:
            where = record.id_path  # one pipeline nested by two nodes is two levels here
            key = " > ".join(where if by == "node" else where[:-1])
            row = table.setdefault(
                key, {"executed": 0, "cached": 0, "failed": 0, "skipped": 0, "duration_s": 0.0}
            )
            row[record.status] += 1
            row["duration_s"] += record.duration_s or 0.0
        return table

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole report."""
        return {
            "run_id": self.run_id,
            "trace_id": self.trace_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "errors": [asdict(e) for e in self.errors],
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "callback_failures": self.callback_failures,
            "abandoned_threads": list(self.abandoned_threads),
            "drivers": list(self.drivers),
            "usage": dict(self.usage),
            "maps": None if self.maps is None else [list(m) for m in self.maps],
            "records": [asdict(r) for r in self.records],
        }

    def to_json(self, indent: int | None = None) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, default=repr)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``<directory>/<run_id>.json`` (atomically); returns the file's path."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.run_id}.json"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(self.to_json(indent=1), encoding="utf-8")
        os.replace(temporary, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunReport:
        """A report written by :meth:`save` (or ``to_json``)."""
        from nestflow.runtime.summary import records_from

        data = json.loads(Path(path).read_text(encoding="utf-8"))
        records = records_from(data.pop("records"))
        errors = [
            ErrorRecord(**{**e, "item_path": tuple(e["item_path"])}) for e in data.pop("errors")
        ]
        data["drivers"] = tuple(data.get("drivers", ()))
        maps = data.pop("maps", None)
        data["maps"] = None if maps is None else [tuple(m) for m in maps]
        report = cls(**data, errors=errors)
        report.records.extend(records)
        return report

    def tree(self, items: bool = False) -> str:
        """The execution tree: levels and nodes with durations, ``⚡ cached``, ``✗`` failures."""
        from nestflow.runtime.summary import tree

        return tree(self, items)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.tree()}

    def summary(self) -> PerformanceSummary:
        """Totals, per-depth metrics and the five slowest node executions."""
        from nestflow.runtime.summary import summary

        return summary(self)


class Outputs(dict[str, Any]):
    """The result of a run or map: a plain ``dict`` of outputs plus its ``report``."""

    report: RunReport

    def __init__(self, values: dict[str, Any], report: RunReport) -> None:
        super().__init__(values)
        self.report = report

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        # Pickles as the plain dict it is; the report stays with the run that made it.
        return (dict, (dict(self),))


class Capture:
    """Reports of every run started inside ``with capture() as cap:``."""

    def __init__(self) -> None:
        self.reports: list[RunReport] = []
        """The reports of the runs that ended, in the order they ended."""
        self.started: list[RunReport] = []
        """The reports of the runs that started, as they start (still being written)."""

    @property
    def last(self) -> RunReport:
        """The most recent report."""
        if not self.reports:
            raise LookupError("No run finished inside this capture() block yet.")
        return self.reports[-1]


_captures: contextvars.ContextVar[tuple[Capture, ...]] = contextvars.ContextVar(
    "nestflow_captures", default=()
)


@contextlib.contextmanager
def capture() -> Iterator[Capture]:
    """Collect the report of every run started in this block, whatever its call style.

    A context variable holds the active captures, so concurrent threads and tasks stay separate.
    """
    cap = Capture()
    token = _captures.set((*_captures.get(), cap))
    try:
        yield cap
    finally:
        _captures.reset(token)


def announce(report: RunReport) -> None:
    """Hand a root report whose run is starting to every active capture."""
    for cap in _captures.get():
        cap.started.append(report)


def deliver(report: RunReport) -> None:
    """Hand a finished root report to every active capture."""
    for cap in _captures.get():
        cap.reports.append(report)
