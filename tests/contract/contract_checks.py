"""Judging a cell: its comparisons with the references, and what it must show on its own.

* against the plain reference (sync driver, sequential, no cache, no callback): outputs,
  the report and the error, with cache effects folded back (a hit counts as executed);
* against the reference of the same cache and callback setting (sync driver, sequential):
  the cache fields, the events per level, the calls, the warnings;
* on its own: the facts its scenario states, cache counts, plausible ids and times, which
  driver ran, where each function ran, and the order rules of the events.
"""

from __future__ import annotations

import os
import re
from typing import Any

from contract_cells import PLAIN, Cell, Observation, References, observe
from contract_forms import (
    HEX32,
    Verdict,
    event_key,
    full_form,
    mask,
    plain_form,
)
from contract_kit import Workspace
from contract_scenarios import Scenario

from nestflow import CacheWarning, ErrorContext, LocalBackend, Outputs


def judge(
    scenario: Scenario,
    cell: Cell,
    seen: list[Observation],
    plain: list[Observation],
    same: list[Observation],
) -> Verdict:
    """Compare a cell with its references and check what it must show on its own."""
    verdict = Verdict()
    for index, (obs, ref, twin) in enumerate(zip(seen, plain, same, strict=True)):
        if len(obs.reports) != 1:
            verdict.check(f"step {index} capture()", False, f"{len(obs.reports)} reports")
            continue
        keep = cell.sequential and not cell.cache
        verdict.compare_forms(
            index, "vs plain reference", plain_form(obs, keep), plain_form(ref, keep)
        )
        if twin is not obs:
            unsure = scenario.maybe_called
            got, want = full_form(obs, cell, unsure), full_form(twin, cell, unsure)
            verdict.compare_forms(index, "vs same-setting reference", got, want)
        check_step(verdict, index, scenario, cell, obs, ref)
    check_outcomes(verdict, scenario, seen)
    check_facts(verdict, scenario, cell, seen)
    check_ids(verdict, seen)
    check_signatures(verdict, seen)
    for index, (obs, twin) in enumerate(zip(seen, same, strict=True)):
        if cell.callbacks and len(obs.reports) == 1:
            check_events(verdict, index, cell, obs, twin)
    return verdict


def check_step(
    verdict: Verdict, index: int, scenario: Scenario, cell: Cell, obs: Observation, ref: Observation
) -> None:
    """Checks of one step that need no reference but the plain one."""
    check_delivery(verdict, index, obs)
    check_times(verdict, index, obs)
    check_drivers(verdict, index, scenario, cell, obs)
    check_cache_counts(verdict, index, cell, obs)
    check_labels(verdict, index, scenario, cell, obs)
    check_abandoned(verdict, index, cell, obs)
    check_placement(verdict, index, scenario, cell, obs, ref)


def check_delivery(verdict: Verdict, index: int, obs: Observation) -> None:
    """A result's report is the one capture() saw."""
    if isinstance(obs.value, Outputs):
        verdict.check(
            f"step {index} result.report",
            obs.value.report is obs.report,
            "is not the captured report",
        )


def check_times(verdict: Verdict, index: int, obs: Observation) -> None:
    """The report starts during the call and lasts no longer than it."""
    report = obs.report
    before, after = obs.wall
    verdict.check(
        f"step {index} report.started_at",
        before - 0.01 <= report.started_at <= after + 0.01,
        f"{report.started_at!r} is not a time during the call ({before:.3f} .. {after:.3f})",
    )
    verdict.check(
        f"step {index} report.duration_s",
        0.0 <= report.duration_s <= obs.elapsed + 0.01,
        f"{report.duration_s!r} for a call of {obs.elapsed:.4f} s",
    )


def check_drivers(
    verdict: Verdict, index: int, scenario: Scenario, cell: Cell, obs: Observation
) -> None:
    """A forced driver is the one that ran; a plain sequential run uses the synchronous one."""
    drivers = obs.report.drivers
    if cell.driver == "async":
        verdict.same(f"step {index} report.drivers (forced async)", drivers, ("async",))
    elif cell.sequential and not scenario.async_nodes:
        verdict.check(
            f"step {index} report.drivers (default, sequential, no async node)",
            "sync" in drivers,
            f"{drivers!r} has no 'sync'",
        )
    verdict.check(
        f"step {index} report.drivers",
        set(drivers) <= {"sync", "async"} and bool(drivers),
        repr(drivers),
    )


def executions(obs: Observation) -> int:
    """Function executions of a run that succeeded: each is one miss, storing one value."""
    return sum(1 for r in obs.report.records if r.status == "executed")


def check_cache_counts(verdict: Verdict, index: int, cell: Cell, obs: Observation) -> None:
    """Hits, misses, cached records and CacheWarnings are what the step expects."""
    report = obs.report
    step = obs.step
    cached = sum(1 for r in report.records if r.status == "cached")
    cache_warnings = sum(1 for c, _ in obs.warnings if c == CacheWarning.__name__)
    if not cell.cache:
        verdict.same(
            f"step {index} hits/misses/cached records without a cache",
            (report.cache_hits, report.cache_misses, cached),
            (0, 0, 0),
        )
        verdict.same(f"step {index} CacheWarnings without a cache", cache_warnings, 0)
        return
    misses = step.misses if step.misses is not None else executions(obs)
    verdict.same(
        f"step {index} (cache_hits, cache_misses) expected",
        (report.cache_hits, report.cache_misses),
        (step.hits, misses),
    )
    verdict.same(f"step {index} records with status cached", cached, step.hits)
    verdict.same(f"step {index} CacheWarnings", cache_warnings, step.cache_warnings)


def check_labels(
    verdict: Verdict, index: int, scenario: Scenario, cell: Cell, obs: Observation
) -> None:
    """Every record names the effective backend and cache of its level."""
    want_cache = obs.labels[1] if cell.cache else None
    for record in obs.report.records:
        backend = (
            LocalBackend().label if record.node in scenario.local_nodes else cell.backend.label
        )
        verdict.same(f"step {index} record {record.path} backend label", record.backend, backend)
        verdict.same(f"step {index} record {record.path} cache label", record.cache, want_cache)


def check_abandoned(verdict: Verdict, index: int, cell: Cell, obs: Observation) -> None:
    """Abandoned threads are exactly the timed-out calls left running in a thread."""
    report = obs.report
    abandoned = sorted(
        r.path for r in report.records if r.error and "its thread was abandoned" in r.error
    )
    verdict.same(
        f"step {index} report.abandoned_threads", sorted(report.abandoned_threads), abandoned
    )
    if cell.local and cell.nodes == "parallel":
        verdict.same(
            f"step {index} abandoned threads under process nodes", report.abandoned_threads, []
        )


def remote_names(scenario: Scenario, cell: Cell, ref: Observation) -> tuple[set[str], set[str]]:
    """Nodes that must run in another process, and nodes that must run in this one.

    Async nodes of a process-parallel level are left out: they may run on this process's
    loop or in a worker.
    """
    names = {r.node for r in ref.report.records}
    in_items = {r.node for r in ref.report.records if r.item_path}
    pinned = set(scenario.local_nodes)
    if not cell.local:
        return names - pinned, pinned
    if cell.nodes == "parallel":
        return names - pinned - scenario.async_nodes, pinned
    if cell.items == "parallel":
        return in_items, names - in_items
    return set(), names


def check_placement(
    verdict: Verdict, index: int, scenario: Scenario, cell: Cell, obs: Observation, ref: Observation
) -> None:
    """Every logged call ran in the process its backend puts it in."""
    remote, here = remote_names(scenario, cell, ref)
    me = os.getpid()
    wrong_here = sorted({n for n, pid in obs.calls if n in remote and pid == me})
    wrong_away = sorted({n for n, pid in obs.calls if n in here and pid != me})
    verdict.same(f"step {index} functions that ran in this process but should not", wrong_here, [])
    verdict.same(
        f"step {index} functions that ran in another process but should not", wrong_away, []
    )


def check_outcomes(verdict: Verdict, scenario: Scenario, seen: list[Observation]) -> None:
    """Each step gives the value, or raises the exception, its scenario pins."""
    for index, (obs, outcome) in enumerate(zip(seen, scenario.outcomes, strict=True)):
        if outcome is None:
            continue
        if outcome.error is None:
            verdict.same(f"step {index} value", obs.value, outcome.value)
            verdict.same(f"step {index} exception", repr(obs.error), "None")
            continue
        exc = obs.error
        verdict.same(f"step {index} exception type", type(exc).__name__, outcome.error.__name__)
        verdict.same(f"step {index} exception message", mask(str(exc), obs.labels), outcome.message)
        if outcome.notes is not None:
            notes = [
                n for n in getattr(exc, "__notes__", []) if not n.startswith("nestflow: attempts")
            ]
            verdict.same(f"step {index} nestflow notes", notes, list(outcome.notes))


def check_facts(verdict: Verdict, scenario: Scenario, cell: Cell, seen: list[Observation]) -> None:
    """The facts the scenario states: nodes that never run, attempts, statuses, reruns."""
    for index, obs in enumerate(seen):
        if len(obs.reports) != 1:
            continue
        ran = {r.node for r in obs.report.records if r.status != "skipped"} | set(obs.called())
        verdict.same(f"step {index} nodes that must not run", sorted(ran & scenario.absent), [])
        for name, attempts in scenario.attempts.items():
            got = [
                r.attempts for r in obs.report.records if r.node == name and r.status != "cached"
            ]
            verdict.same(f"step {index} attempts of {name}", got, [attempts])
    last = seen[-1]
    if len(last.reports) == 1:
        verdict.same("last step report.status", last.report.status, scenario.run_status)
        got = {r.node: r.status for r in last.report.records if r.node in scenario.statuses}
        verdict.same("last step record statuses", got, scenario.statuses)
    if cell.cache and scenario.recomputed:
        got_calls = {n: last.called()[n] for n in scenario.recomputed}
        verdict.same("last step calls of recomputed nodes", got_calls, scenario.recomputed)


def check_ids(verdict: Verdict, seen: list[Observation]) -> None:
    """Run and trace ids are 32 hex digits, new for every step, and the ones errors carry."""
    ids = []
    for index, obs in enumerate(seen):
        if len(obs.reports) != 1:
            continue
        report = obs.report
        for what in ("run_id", "trace_id"):
            value = getattr(report, what)
            verdict.check(f"step {index} report.{what}", bool(HEX32.fullmatch(value)), repr(value))
            ids.append(value)
        if obs.error is not None:
            check_error_ids(verdict, index, obs)
    verdict.same("run and trace ids unique across steps", len(set(ids)), len(ids))


def check_error_ids(verdict: Verdict, index: int, obs: Observation) -> None:
    """A block of nestflow notes, when there is one, has one ids line: the report's ids."""
    report = obs.report
    notes = getattr(obs.error, "__notes__", [])
    id_lines = [n for n in notes if n.startswith("nestflow: attempts")]
    if any(n.startswith("nestflow: ") for n in notes):
        verdict.check(
            f"step {index} notes",
            len(id_lines) == 1,
            f"{len(id_lines)} attempts/ids lines in {notes!r}",
        )
    for line in id_lines:
        verdict.check(
            f"step {index} ids in the notes",
            f"trace {report.trace_id}, run {report.run_id}" in line,
            f"{line!r} vs report trace {report.trace_id} run {report.run_id}",
        )
    context = getattr(obs.error, "__nestflow__", None)
    if isinstance(context, ErrorContext):
        verdict.same(
            f"step {index} ErrorContext ids",
            (context.run_id, context.trace_id),
            (report.run_id, report.trace_id),
        )


def check_signatures(verdict: Verdict, seen: list[Observation]) -> None:
    """A hit's signature was stored by a step of the same cell (this one or before)."""
    stored: set[str | None] = set()
    for index, obs in enumerate(seen):
        if len(obs.reports) != 1:
            continue
        records = obs.report.records
        stored |= {r.signature for r in records if r.status == "executed"}
        hits = {r.signature for r in records if r.status == "cached"}
        verdict.same(
            f"step {index} hit signatures never stored", sorted(map(str, hits - stored)), []
        )


# --- events ------------------------------------------------------------------------------------

Located = tuple[tuple[Any, ...], tuple[str, ...], tuple[int, ...]]


def located(obs: Observation) -> list[Located]:
    """Each event with the level (nested nodes entered) and items it happened in."""
    return [(event, ctx.entered, ctx.item_path) for event, ctx in obs.events]


def within(entered: tuple[str, ...], items: tuple[int, ...], outer: Located) -> bool:
    """Whether an event at (entered, items) belongs to the level or item ``outer`` opened."""
    return entered[: len(outer[1])] == outer[1] and items[: len(outer[2])] == outer[2]


def closing_index(events: list[Located], start: int, hook: str) -> int | None:
    """Where the ``hook`` event closing the event at ``start`` is, if anywhere."""
    event, entered, items = events[start]
    for index in range(start + 1, len(events)):
        other, other_entered, other_items = events[index]
        if (
            other[0] == hook
            and other[1] == event[1]
            and (other_entered, other_items) == (entered, items)
        ):
            return index
    return None


def check_brackets(
    verdict: Verdict, step: int, events: list[Located], opening: str, closing: str
) -> None:
    """Every ``opening`` has its ``closing``, and everything of its level or item lies between."""
    for start, found in enumerate(events):
        if found[0][0] != opening:
            continue
        end = closing_index(events, start, closing)
        where = f"step {step} {opening} {found[0][1:]} at {found[1]} {found[2]}"
        if end is None:
            verdict.check(where, False, f"has no {closing}")
            continue
        outside = [
            e[0]
            for i, e in enumerate(events)
            if within(e[1], e[2], found) and not start <= i <= end
        ]
        verdict.same(f"{where}: events of it outside {opening}..{closing}", outside, [])


NODE_LETTERS = {"node_start": "S", "node_end": "E", "error": "X", "node_cached": "C"}
NODE_PATTERN = re.compile(r"C?(S+[EX]|X)?")


def check_node_brackets(verdict: Verdict, step: int, obs: Observation) -> None:
    """Per node and place: starts (one per attempt) before its end or error, or a hit."""
    letters: dict[tuple[Any, ...], str] = {}
    for event, ctx in obs.events:
        letter = NODE_LETTERS.get(event[0])
        if letter is not None:
            key = (ctx.entered, ctx.item_path, event[1])
            letters[key] = letters.get(key, "") + letter
    for key, sequence in letters.items():
        verdict.check(
            f"step {step} node events of {key}",
            bool(sequence) and NODE_PATTERN.fullmatch(sequence) is not None,
            f"{sequence} (S start, E end, X error, C cached)",
        )


def steps_in_order(obs: Observation) -> dict[tuple[Any, ...], list[str]]:
    """Per level instance, the node ids in the order they first showed up."""
    seen: dict[tuple[Any, ...], list[str]] = {}
    for event, ctx in obs.events:
        if event[0] in ("node_start", "node_cached", "error"):
            place, step_id = (ctx.entered, ctx.item_path), str(event[1])
        elif event[0] == "pipeline_start" and ctx.entered:
            place, step_id = (ctx.entered[:-1], ctx.item_path), ctx.entered[-1]
        else:
            continue
        ids = seen.setdefault(place, [])
        if step_id not in ids:
            ids.append(step_id)
    return seen


def plan_orders(obs: Observation) -> dict[tuple[str, ...], tuple[str, ...]]:
    """The selected node ids of every level, in plan order, from the callback metadata."""
    plans: dict[tuple[str, ...], tuple[str, ...]] = {}
    for _, ctx in obs.events:
        if ctx.entered not in plans:
            meta = ctx.get_pipeline_metadata(ctx.current_pipeline_id)
            plans[ctx.entered] = tuple(meta["selected_node_ids"])
    return plans


def check_plan_order(verdict: Verdict, step: int, obs: Observation) -> None:
    """On a sequential level, nodes start in plan order."""
    plans = plan_orders(obs)
    for (entered, items), ids in steps_in_order(obs).items():
        plan = plans.get(entered, ())
        positions = [plan.index(i) if i in plan else -1 for i in ids]
        verdict.check(
            f"step {step} node order at {entered} {items}",
            -1 not in positions and positions == sorted(positions),
            f"{ids} against plan {plan}",
        )


def item_orders(obs: Observation) -> dict[tuple[Any, ...], list[int]]:
    """Per map, the item indices in the order they started (or were resolved from cache)."""
    orders: dict[tuple[Any, ...], list[int]] = {}
    for event, ctx in obs.events:
        if event[0] in ("item_start", "item_cached"):
            orders.setdefault((ctx.entered, ctx.item_path[:-1]), []).append(event[1])
    return orders


def per_place(obs: Observation) -> dict[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The events of every level and item, in arrival order."""
    places: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for event, ctx in obs.events:
        places.setdefault((ctx.entered, ctx.item_path), []).append(event_key(event, ctx))
    return places


def check_events(
    verdict: Verdict, step: int, cell: Cell, obs: Observation, twin: Observation
) -> None:
    """The order rules, and the order of the same-setting reference where the cell has one."""
    events = located(obs)
    check_brackets(verdict, step, events, "pipeline_start", "pipeline_end")
    check_brackets(verdict, step, events, "item_start", "item_end")
    check_node_brackets(verdict, step, obs)
    if cell.local and cell.nodes == "sequential":
        check_plan_order(verdict, step, obs)
        verdict.same(
            f"step {step} event order per level and item (sequential nodes)",
            per_place(obs),
            per_place(twin),
        )
    if cell.local and cell.items == "sequential":
        orders = item_orders(obs)
        verdict.same(
            f"step {step} item order (sequential map)",
            orders,
            {k: sorted(v) for k, v in orders.items()},
        )
    if cell.sequential:
        keys = [event_key(e, c) for e, c in obs.events]
        verdict.same(
            f"step {step} event sequence (fully sequential)",
            keys,
            [event_key(e, c) for e, c in twin.events],
        )


def run_cell(scenario: Scenario, cell: Cell, ws: Workspace, references: References) -> None:
    """Run ``scenario`` in ``cell`` and fail with every difference found."""
    plain = references.of(scenario, PLAIN)
    same = references.of(scenario, cell.same_setting())
    seen = same if cell.is_reference else observe(scenario, cell, ws)
    judge(scenario, cell, seen, plain, same).settle()
