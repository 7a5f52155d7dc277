"""Views of a RunReport: the execution tree and the performance summary (SPEC 9.5).

Both are built from the report's records alone (one per function-node execution, with the
path ``root > ... > node`` and the map item path), so they work the same for reports made
here, in workers, or loaded from JSON.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nestflow.core.gates import is_private

if TYPE_CHECKING:
    from nestflow.runtime.report import NodeRecord, RunReport


def duration_text(seconds: float) -> str:
    """``12 µs``, ``45.2 ms``, ``3.4 s``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.1f} s"


@dataclass
class _Branch:
    """One line of the tree: a pipeline level or a function node, with its records."""

    name: str
    records: list[NodeRecord] = field(default_factory=list)
    children: dict[str, _Branch] = field(default_factory=dict)
    is_node: bool = False
    key: tuple[str, ...] = ()
    """The ids of the nested nodes that entered this level (``RunReport.maps`` names them)."""
    least: int = 0
    """The shortest item path this level can have of its own (see ``_least``)."""

    def all_records(self) -> list[NodeRecord]:
        found = list(self.records)
        for child in self.children.values():
            found += child.all_records()
        return found


def _grow(records: list[NodeRecord]) -> _Branch | None:
    root: _Branch | None = None
    for record in records:
        *names, node = record.path.split(" > ")
        if is_private(node):  # a front end's own wiring (a YAML step's computed inputs)
            continue
        if root is None:
            root = _Branch(names[0] if names else node)
        branch = root
        # Nested levels are named by the node that entered them (two nodes may nest the
        # same pipeline); records without those ids fall back to the pipeline names.
        for name in record.levels or tuple(names[1:]):
            branch = branch.children.setdefault(name, _Branch(name, key=(*branch.key, name)))
        leaf = branch.children.setdefault(node, _Branch(node, is_node=True))
        leaf.records.append(record)
    return root


def tree(report: RunReport, items: bool = False) -> str:
    """The execution tree as text: one line per level and node, failures marked ``✗``.

    ``items=True`` lists each map item's execution under a node that ran per item.
    """
    head = f"run {report.run_id[:4]}… · trace {report.trace_id[:8]}…"
    root = _grow(report.records)
    if root is None:
        return f"{head}\n{report.pipeline} {duration_text(report.duration_s)} (no node ran)"
    _least(root)
    # The run names the levels that ran per item; a report saved without them is read from
    # its item paths, which cannot tell a map over a pipeline that only nests another one
    # from a map of that nested one.
    maps = None if report.maps is None else frozenset(report.maps)
    mapped, own = _mapped(root, 0, None if maps is None else int(() in maps))
    lines = [head, f"{root.name}{mapped} {duration_text(report.duration_s)}"]
    _lines(root, "", own, items, lines, maps)
    return "\n".join(lines)


def _lines(
    branch: _Branch,
    prefix: str,
    entry: int,
    items: bool,
    lines: list[str],
    maps: frozenset[tuple[str, ...]] | None,
) -> None:
    children = list(branch.children.values())
    for position, child in enumerate(children):
        last = position == len(children) - 1
        deeper = prefix + ("   " if last else "│  ")
        if child.is_node:
            lines.append(prefix + ("└─ " if last else "├─ ") + f"{child.name} {_outcome(child)}")
            if items and len(child.records) > 1:
                lines += [deeper + f"item {_item(r)} {_single(r)}" for r in child.records]
            continue
        known = None if maps is None else entry + (child.key in maps)
        mapped, own = _mapped(child, entry, known)
        took = duration_text(sum(r.duration_s or 0.0 for r in child.all_records()))
        label = f"{child.name} {mapped.strip() or '[pipeline]'} {took}"
        lines.append(prefix + ("└─ " if last else "├─ ") + label)
        _lines(child, deeper, own, items, lines, maps)


def _least(branch: _Branch) -> int:
    """Set, from the leaves up, the shortest item path each level can have of its own.

    The records of a level's own nodes carry its item path, so they say it exactly. A level
    without nodes of its own is at most one index shorter than its nested levels: each of
    them has its parent's item path, or one index more if it ran per item.
    """
    bounds = [_least(c) - 1 for c in branch.children.values() if not c.is_node]
    nodes = [len(r.item_path) for c in branch.children.values() if c.is_node for r in c.records]
    branch.least = min(nodes) if nodes else max(bounds, default=0)
    return branch.least


def _mapped(branch: _Branch, entry: int, own: int | None = None) -> tuple[str, int]:
    """`` [map ×N: a executed, b cached, c failed]`` when the level ran once per item.

    Every map level adds one index to the item path of the records below it: a level whose
    own item path (``_least``) is longer than that of the level it was entered from
    (``entry``) ran per item. Returns the label (empty if not mapped) and the level's own
    item-path length (``own`` when it is known already).

    A level without nodes of its own whose records fit both readings (it ran per item, or
    its only nested level did) is taken as not mapped: a pipeline whose only node is a
    mapped nested pipeline is the usual shape, a map over a pipeline that only wraps
    another one the rare one.
    """
    records = branch.all_records()
    if own is None:
        own = max(entry, branch.least)
    if own <= entry:
        return "", own
    per_item: dict[tuple[int, ...], list[NodeRecord]] = {}
    for record in records:
        per_item.setdefault(record.item_path[:own], []).append(record)
    counts = Counter(_item_status(rs) for rs in per_item.values())
    return f" [map ×{len(per_item)}: {_counts(counts)}]", own


def _counts(counts: Counter[str]) -> str:
    return ", ".join(
        f"{counts[s]} {s}" for s in ("executed", "cached", "failed", "skipped") if counts[s]
    )


def _item_status(records: list[NodeRecord]) -> str:
    statuses = {r.status for r in records}
    for status in ("failed", "skipped", "executed"):
        if status in statuses:
            return status
    return "cached"


def _outcome(branch: _Branch) -> str:
    records = branch.records
    if len(records) == 1:
        return _single(records[0])
    took = sum(r.duration_s or 0.0 for r in records)
    return f"[×{len(records)}: {_counts(Counter(r.status for r in records))}] {duration_text(took)}"


def _single(record: NodeRecord) -> str:
    if record.status == "cached":
        return "⚡ cached"
    if record.status == "failed":
        return f"✗ {record.error}"
    if record.status == "skipped":
        return record.error or "skipped"  # the reason reads "skipped: ..."
    return duration_text(record.duration_s or 0.0)


def _item(record: NodeRecord) -> str:
    return ".".join(str(i) for i in record.item_path)


# --- performance summary -------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceSummary:
    """Totals, per-depth metrics and the slowest node executions of one run."""

    total_duration_s: float
    deepest_nesting: int
    node_executions: int
    cache_hits: int
    failures: int
    success_rate: float
    mean_node_duration_s: float
    per_depth: dict[int, dict[str, float]]
    bottlenecks: list[tuple[str, tuple[int, ...], float]]
    """(path, item path, seconds) of the five slowest executions, slowest first; the path
    names nested levels by the ids of the nodes that entered them (``NodeRecord.id_path``)."""

    def __str__(self) -> str:
        mean = duration_text(self.mean_node_duration_s)
        totals = (
            f"total {duration_text(self.total_duration_s)} · deepest nesting "
            f"{self.deepest_nesting} · {self.node_executions} node executions · "
            f"{self.cache_hits} cache hits · {self.failures} failures · "
            f"success {self.success_rate:.0%} · mean node {mean}"
        )
        lines = [totals, "per depth:"]
        for depth, row in sorted(self.per_depth.items()):
            lines.append(
                f"  {depth}: {int(row['nodes'])} nodes, mean "
                f"{duration_text(row['mean_duration_s'])}, success {row['success_rate']:.0%}"
            )
        lines.append("slowest:")
        for path, item_path, seconds in self.bottlenecks:
            where = f" [item {'.'.join(map(str, item_path))}]" if item_path else ""
            lines.append(f"  {duration_text(seconds)}  {path}{where}")
        return "\n".join(lines)


def summary(report: RunReport) -> PerformanceSummary:
    """The performance summary of ``report`` (no grades, no advice)."""
    records = report.records
    executed = [r for r in records if r.status == "executed"]
    failed = [r for r in records if r.status == "failed"]
    settled = [r for r in records if r.status in ("executed", "cached", "failed")]
    succeeded = len(settled) - len(failed)
    per_depth: dict[int, dict[str, float]] = {}
    for depth in sorted({r.depth for r in records}):
        at = [r for r in records if r.depth == depth]
        ran = [r.duration_s or 0.0 for r in at if r.status == "executed"]
        ok = sum(1 for r in at if r.status in ("executed", "cached"))
        per_depth[depth] = {
            "nodes": float(len(at)),
            "mean_duration_s": sum(ran) / len(ran) if ran else 0.0,
            "success_rate": ok / len(at),
        }
    slowest = sorted(executed, key=lambda r: r.duration_s or 0.0, reverse=True)[:5]
    return PerformanceSummary(
        total_duration_s=report.duration_s,
        deepest_nesting=max((r.depth for r in records), default=0),
        node_executions=len(executed),
        cache_hits=sum(1 for r in records if r.status == "cached"),
        failures=len(failed),
        success_rate=succeeded / len(settled) if settled else 1.0,
        mean_node_duration_s=(
            sum(r.duration_s or 0.0 for r in executed) / len(executed) if executed else 0.0
        ),
        per_depth=per_depth,
        bottlenecks=[(" > ".join(r.id_path), r.item_path, r.duration_s or 0.0) for r in slowest],
    )


def records_from(data: list[dict[str, Any]]) -> list[Any]:
    """NodeRecords from their JSON form."""
    from nestflow.runtime.report import NodeRecord

    return [
        NodeRecord(**{**row, "item_path": tuple(row["item_path"]),
                      "levels": tuple(row.get("levels", ()))})
        for row in data
    ]  # fmt: skip
