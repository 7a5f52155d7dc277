"""Normal forms of an observation: what is compared, without what legitimately differs.

Ids, timestamps, durations and backend or cache labels differ between any two runs; a
timeout's message says how the call was stopped (thread abandoned, process replaced). Order
differs where things run at once: records are compared sorted unless the cell is fully
sequential. ``Verdict`` collects every difference instead of stopping at the first.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from contract_cells import Cell, Observation

from nestflow import ErrorContext, NodeRecord, Outputs, RunReport
from nestflow.callbacks.events import CallbackContext

HEX = re.compile(r"[0-9a-f]{12,}")
STOPPED = re.compile(r"\); [^.]*\. Raise the limit")
HEX32 = re.compile(r"[0-9a-f]{32}")


def mask(text: str | None, labels: Iterable[str]) -> str | None:
    """``text`` without what legitimately differs: labels, ids, how a timeout was stopped."""
    if text is None:
        return None
    for label in labels:
        text = text.replace(label, "<label>")
    text = HEX.sub("<id>", text)
    return STOPPED.sub("); <stopped>. Raise the limit", text)


def record_form(record: NodeRecord, labels: Sequence[str], plain: bool) -> tuple[Any, ...]:
    """A record without timings and labels; ``plain`` folds a cache hit back into executed."""
    status = "executed" if plain and record.status == "cached" else record.status
    form: tuple[Any, ...] = (
        record.path,
        record.node,
        record.pipeline,
        record.depth,
        record.item_path,
        status,
        record.attempts,
        record.levels,
        mask(record.error, labels),
    )
    if not plain:
        form += (
            record.duration_s is not None,
            record.signature is not None,
            record.cache is not None,
        )
    return form


def ordered(forms: list[Any], keep: bool) -> list[Any]:
    """``forms`` as they came when the order is fixed, else sorted (concurrent modes)."""
    return forms if keep else sorted(forms, key=repr)


def error_record_form(report: RunReport, labels: Sequence[str]) -> list[tuple[Any, ...]]:
    """The report's error records, with the last line of their tracebacks."""
    forms = [
        (
            e.node_path,
            e.exception_type,
            mask(e.message, labels),
            e.item_path,
            e.attempts,
            mask(e.traceback.strip().splitlines()[-1], labels),
        )
        for e in report.errors
    ]
    return sorted(forms, key=repr)


def context_form(exc: BaseException, full: bool, sequential: bool) -> Any:
    """``exc.__nestflow__``; ``full`` adds the node settings, ``sequential`` the node count."""
    context = getattr(exc, "__nestflow__", None)
    if not isinstance(context, ErrorContext):
        return None
    form: tuple[Any, ...] = (
        context.levels,
        context.node,
        context.depth,
        context.item_path,
        context.item_total,
        context.attempts,
    )
    if full:
        form += ({k: v for k, v in context.node_config.items() if k != "cache"},)
        form += (context.node_config.get("cache") != "None",)
    if full and sequential:
        form += (context.nodes_executed,)
    return form


def exception_form(obs: Observation, full: bool, sequential: bool) -> Any:
    """Type, message and notes of the raised exception, masked, with its context."""
    exc = obs.error
    if exc is None:
        return None
    notes = [mask(n, obs.labels) for n in getattr(exc, "__notes__", [])]
    return {
        "type": type(exc).__name__,
        "message": mask(str(exc), obs.labels),
        "notes": notes,
        "context": context_form(exc, full, sequential),
    }


def plain_form(obs: Observation, keep_order: bool) -> dict[str, Any]:
    """What must not depend on driver, backend, cache or callbacks."""
    report = obs.report
    labels = obs.labels
    return {
        "value": obs.value,
        "value type": type(obs.value).__name__,
        "exception": exception_form(obs, full=False, sequential=False),
        "report.pipeline": report.pipeline,
        "report.status": report.status,
        "report.errors": error_record_form(report, labels),
        "report.callback_failures": report.callback_failures,
        "report.records": ordered(
            [record_form(r, labels, True) for r in report.records], keep_order
        ),
    }


def event_key(event: tuple[Any, ...], ctx: CallbackContext) -> tuple[Any, ...]:
    """An event with where it happened: hook and ids, hierarchy, entered nodes, items, depth."""
    hook = event[0]
    extra: tuple[Any, ...] = ()
    if hook == "node_start":
        extra = (ctx.attempt,)
    elif hook in ("pipeline_end", "item_end", "error"):
        extra = (type(ctx.error).__name__ if ctx.error is not None else None,)
    return (
        *event,
        ctx.hierarchy_path,
        ctx.entered,
        ctx.item_path,
        ctx.depth,
        ctx.node_path,
        *extra,
    )


def events_per_level(obs: Observation) -> dict[tuple[str, ...], Counter[tuple[Any, ...]]]:
    """The multiset of events of every level (levels named by the nested nodes entered)."""
    levels: dict[tuple[str, ...], Counter[tuple[Any, ...]]] = {}
    for event, ctx in obs.events:
        levels.setdefault(ctx.entered, Counter())[event_key(event, ctx)] += 1
    return levels


def full_form(obs: Observation, cell: Cell, unsure: frozenset[str]) -> dict[str, Any]:
    """What must match the reference with the same cache and callbacks."""
    report = obs.report
    labels = obs.labels
    keep = cell.sequential
    calls = Counter({n: c for n, c in obs.called().items() if n not in unsure})
    return {
        "exception": exception_form(obs, full=True, sequential=keep),
        "report.records": ordered([record_form(r, labels, False) for r in report.records], keep),
        "report.cache_hits": report.cache_hits,
        "report.cache_misses": report.cache_misses,
        "events per level": events_per_level(obs),
        "calls": calls,
        "warnings": Counter((c, mask(m, labels)) for c, m in obs.warnings),
    }


# --- the verdict -------------------------------------------------------------------------------


def shown(value: Any, limit: int = 1200) -> str:
    """``value`` on one line, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def difference(got: Any, want: Any) -> str:
    """What differs between two forms, briefly."""
    if isinstance(got, Counter) and isinstance(want, Counter):
        return f"extra {shown(dict(got - want))}, missing {shown(dict(want - got))}"
    if isinstance(got, dict) and isinstance(want, dict) and not isinstance(got, Outputs):
        keys = [k for k in {**want, **got} if got.get(k) != want.get(k)]
        if keys and set(keys) != set(got) | set(want):
            return "; ".join(f"[{k!r}] {difference(got.get(k), want.get(k))}" for k in keys)
    return f"got {shown(got)}, want {shown(want)}"


class Verdict:
    """Every problem found in one cell."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def same(self, what: str, got: Any, want: Any) -> None:
        if got != want:
            self.problems.append(f"{what}: {difference(got, want)}")

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        if not ok:
            self.problems.append(f"{what}{': ' if detail else ''}{detail}")

    def compare_forms(
        self, step: int, what: str, got: dict[str, Any], want: dict[str, Any]
    ) -> None:
        for key in want:
            self.same(f"step {step} {key} ({what})", got[key], want[key])

    def settle(self) -> None:
        """Fail with every problem, without a traceback (the problems say where)."""
        if self.problems:
            pytest.fail(
                "\n".join([f"{len(self.problems)} problem(s):", *self.problems]), pytrace=False
            )
