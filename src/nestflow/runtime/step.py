"""The node step: what one execution of a node means, written once for both drivers.

A plan is compiled once per configuration (``Compiled``): each function node becomes a
``NodeStep`` and each nested pipeline a ``NestedStep``, with everything a run would
otherwise decide per node (call wiring, timeout, retry policy, whether a cache or a
listening callback is in effect) settled here. The steps are synchronous and do no I/O
of their own beyond the cache: they resolve inputs, sign, look up, publish hits, build
the call, store, record, emit, and decide what a failure means (retry, continue past,
raise). The drivers only carry out the call (``drive_sync``: in this thread, waiting;
``drive_async``: on an event loop, awaiting) and schedule the steps.

Events that frame a level (pipeline, map and map item start/end) are emitted here too,
by the functions at the end of this module, so both drivers emit them the same way.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any

from nestflow.callbacks.dispatch import implements
from nestflow.core import gates
from nestflow.core.config import UNSET, EffectiveConfig
from nestflow.core.gates import is_private
from nestflow.core.limits import Limits
from nestflow.core.nesting import PipelineNode
from nestflow.core.node import Node
from nestflow.core.retry import Retry
from nestflow.engines import executors
from nestflow.engines.backends import LocalBackend
from nestflow.errors import GuardError, NodeTimeoutError
from nestflow.runtime import caching, guard, sites, tracing, workspaces
from nestflow.runtime.caching import REP, Batch, Signer, Unread, UnreadPart
from nestflow.runtime.calls import CallSpec, call_spec
from nestflow.runtime.context import Level
from nestflow.runtime.failure import annotate, is_annotated, user_traceback
from nestflow.runtime.items import MapCall, collections
from nestflow.runtime.plan import LevelPlan, Step
from nestflow.runtime.report import ErrorRecord
from nestflow.runtime.settings import child_config

if TYPE_CHECKING:
    from concurrent.futures import Future

    from nestflow.core.pipeline import Pipeline
    from nestflow.engines.protocol import NodeCall

Blocked = dict[str, str]
"""Output names that are ``None`` because a node failed (continued past) or was skipped ->
what happened, naming that node (``"`a > b` failed"``)."""

HIT = "@hit"
"""What ``NodeStep.lookup`` returns for a hit (a signature never starts with ``@``)."""


# --- compiled levels ------------------------------------------------------------------------


class Compiled:
    """A level plan compiled for one effective configuration; shared by every run."""

    __slots__ = (
        "backend_label",
        "cache_label",
        "caches",
        "config",
        "depth_limit",
        "flat",
        "handlers",
        "hooks",
        "inline",
        "inputs",
        "maps_sync",
        "name",
        "plain",
        "plan",
        "producers",
        "relay",
        "segments",
        "signed",
        "steps",
        "sync",
        "tight",
    )  # fmt: skip

    def __init__(self, plan: LevelPlan, config: EffectiveConfig, relay: bool = False) -> None:
        self.plan, self.config, self.relay = plan, config, relay
        self.name = plan.name
        backend = config.backend
        self.inline = isinstance(backend, LocalBackend) and backend.node_execution == "sequential"
        """Function calls of a level at the root run in this thread."""
        self.hooks = frozenset(
            hook
            for hook in _HOOKS
            if relay or (config.callbacks and implements(config.callbacks, hook))
        )
        """The hooks this level's callbacks implement; all of them when events are relayed
        to a coordinator (a map item in a worker)."""
        self.handlers = {
            hook: [(c, getattr(c, hook)) for c in config.callbacks if implements((c,), hook)]
            for hook in self.hooks
        }
        """``(callback, bound hook)`` per implemented hook, in list order."""
        self.depth_limit: int | None = config.limits.value("max_depth")
        """The deepest level this one may be at (``Limits.max_depth``), checked on entering."""
        self.backend_label = config.backend.label
        self.cache_label = None if config.cache is None else config.cache.label
        steps: list[NodeStep | NestedStep] = []
        for index, step in enumerate(plan.steps):
            if step.child is None:
                steps.append(NodeStep(self, index, step))
            else:
                steps.append(NestedStep(self, index, step))
        self.steps: tuple[NodeStep | NestedStep, ...] = tuple(steps)
        self.caches: bool = config.cache is not None or any(
            isinstance(s, NestedStep) and s.child.caches for s in steps
        )
        """A cache is in effect at this level or below: values may be unread."""
        signed = [s for s in steps if isinstance(s, NodeStep) and s.cached]
        for position, node_step in enumerate(signed):
            node_step.position = position
        self.signed: tuple[NodeStep, ...] = tuple(signed)
        wanted = set(plan.outputs)
        self.producers: list[int] = [
            i for i, s in enumerate(signed) if wanted.intersection(s.spec.outs)
        ]
        self.flat = bool(steps) and len(signed) == len(steps) and not any(s.gated for s in signed)
        """Every step is a cached function node without a condition: items are signed whole
        and asked at once."""
        made = {out for s in signed for out in s.spec.outs}
        self.inputs = tuple(sorted({n for s in signed for n in s.spec.names if n not in made}))
        backend = config.backend
        self.sync = backend.node_execution == "sequential" and not any(
            isinstance(s, NodeStep) and s.node.is_async for s in steps
        )
        """The synchronous driver can run this level."""
        self.maps_sync = (
            self.sync
            and isinstance(backend, LocalBackend)
            and (backend.map_execution == "sequential")
        )
        """... and the items of a map of this level, one after another."""
        local = isinstance(backend, LocalBackend)
        limit = config.limits.value("max_total_steps")
        self.segments = _segments(self.steps, local, limit) if self.sync else ()
        self.tight = len(self.segments) == 1 and self.segments[0].step is None
        """One stretch of plain calls: map items need no level of their own."""
        self.plain: bool = (
            self.sync
            and local
            and not config.limits.checks_each_step
            and not self.hooks
            and config.cache is None
            and all(
                seg.step is None or (isinstance(seg.step, NestedStep) and seg.step.plain)
                for seg in self.segments
            )
        )
        """Plain calls and plain nested levels only, nothing listening: the synchronous
        driver runs it making no level object below this one (``drive_sync.run_plain_tree``)."""


_HOOKS = (
    "on_pipeline_start", "on_pipeline_end", "on_node_start", "on_node_end", "on_node_cached",
    "on_error", "on_nested_pipeline_start", "on_nested_pipeline_end", "on_map_start",
    "on_map_item_start", "on_map_item_end", "on_map_item_cached", "on_map_end", "on_remote_event",
    "carrier",
)  # fmt: skip

Call = tuple[Callable[..., Any], tuple[str, ...], str]
"""A plain call: function, argument names, output name."""


class Segment:
    """Consecutive steps of a synchronous level: plain calls run in a tight loop, or one step."""

    __slots__ = ("calls", "limit", "step", "steps")

    def __init__(
        self, steps: list[NodeStep], step: NodeStep | NestedStep | None, limit: int | None = None
    ) -> None:
        self.steps = tuple(steps)
        self.limit = limit
        """The run's ``max_total_steps`` in force at this level, counted per stretch."""
        self.calls: tuple[Call, ...] = tuple(
            (s.spec.fn, s.spec.arg_names, s.spec.outs[0]) for s in steps
        )
        self.step = step


def _segments(
    steps: tuple[NodeStep | NestedStep, ...], inline: bool, limit: int | None
) -> tuple[Segment, ...]:
    """Stretches of plain calls (only when calls run in this thread), and single steps."""
    found: list[Segment] = []
    run: list[NodeStep] = []
    for step in steps:
        if inline and isinstance(step, NodeStep) and step.plain and step.simple is not None:
            run.append(step)
            continue
        if run:
            found.append(Segment(run, None, limit))
            run = []
        found.append(Segment([], step))
    if run:
        found.append(Segment(run, None, limit))
    return tuple(found)


_KEPT = 64
"""Compiled forms (and child configurations) kept per pipeline; older ones are dropped."""


def compiled(
    owner: Pipeline, plan: LevelPlan, config: EffectiveConfig, relay: bool = False
) -> Compiled:
    """The compiled form of ``plan`` (a plan of ``owner``) at ``config``, memoised on ``owner``.

    Not on the plan: plans are shared by pipelines of one structure (``runtime/plan.py``),
    and a compiled form holds its configuration, which is the pipeline's own.
    """
    kept: dict[Any, Compiled] = owner.memo.setdefault("compiled", {})
    key = (id(plan), id(config), relay)
    found = kept.get(key)
    if found is None or found.config is not config or found.plan is not plan:
        found = Compiled(plan, config, relay)
        if len(kept) >= _KEPT:
            kept.clear()
        kept[key] = found
    return found


# --- function nodes -------------------------------------------------------------------------


class Attempt:
    """One node execution in flight: its arguments, attempt number and signature."""

    __slots__ = (
        "args", "called", "executor", "fn", "kwargs", "level", "number", "sig", "started",
        "values",
    )  # fmt: skip

    def __init__(
        self, level: Level, values: dict[str, Any], fn: Callable[..., Any], sig: str | None
    ) -> None:
        self.level, self.values, self.fn, self.sig = level, values, fn, sig
        self.args: list[Any] = []
        self.kwargs: dict[str, Any] = {}
        self.number = 1
        self.started = perf_counter()
        self.called = self.started
        """When this attempt's call was made (the deadline counts from here)."""
        self.executor: executors.Executor = level.executor


class NodeStep:
    """A function node of a compiled level."""

    __slots__ = (
        "blocking", "cached", "cached_hook", "continues", "direct", "ends", "errors", "gated",
        "id", "index", "is_async", "limits", "node", "out", "outcome", "plain", "policy",
        "position", "simple", "sited", "spec", "starts", "step", "timeout", "traced", "when",
        "wired",
    )  # fmt: skip

    def __init__(self, compiled: Compiled, index: int, step: Step) -> None:
        node = step.node
        assert isinstance(node, Node)
        config, hooks = compiled.config, compiled.hooks
        self.index, self.id, self.step, self.node = index, step.id, step, node
        self.spec: CallSpec = call_spec(step.id, node)
        self.simple = self.spec.arg_names if self.spec.simple else None
        self.out = self.spec.outs[0]
        """The first (for a simple node, the only) output name."""
        self.timeout: float | None = config.timeout if node.timeout is UNSET else node.timeout
        self.policy = Retry.of(config.retries if node.retries is UNSET else node.retries)
        self.continues = node.on_error == "continue"
        self.is_async = node.is_async
        self.when, self.outcome = node.when, node.outcome
        self.gated = node.when is not None
        """It has a condition: the drivers ask ``skip`` before every execution."""
        tolerates = node.tolerates
        self.blocking = (
            tuple(a for a in step.args if a not in tolerates) if tolerates else step.args
        )
        """Inputs that skip this node when their producer failed or was skipped."""
        self.cached = config.cache is not None and node.cache
        limits = config.limits
        self.limits: Limits | None = limits if limits.counts or limits.checks_each_step else None
        """The limits a run checks before and after each execution of this node."""
        self.position = -1
        """Index among the level's signed nodes (cached ones)."""
        self.wired: tuple[tuple[str, str, Any], ...] = self.spec.wired
        """(parameter, wired name, default) by parameter name: what a signature reads."""
        self.starts = "on_node_start" in hooks
        self.ends = "on_node_end" in hooks
        self.errors = "on_error" in hooks
        self.cached_hook = "on_node_cached" in hooks
        self.traced = "carrier" in hooks
        self.sited = sites.wants_site(self.spec.fn)
        """Its function asks where it runs (``runtime/sites.py``): it is wrapped per call."""
        self.direct = not (
            self.traced or self.sited or self.timeout is not None or self.policy.attempts
        )
        """One attempt, nothing to wrap: a call in this thread needs no ``Attempt``."""
        self.plain = not (
            self.cached
            or self.starts
            or self.ends
            or self.errors
            or self.traced
            or self.sited
            or self.timeout is not None
            or self.policy.attempts
            or self.continues
            or self.is_async
            or self.gated
            or limits.checks_each_step
            or self.outcome is not None
            or len(self.blocking) != len(step.args)
        )

    # --- before the call ---------------------------------------------------------------------

    def skip(self, level: Level, values: dict[str, Any], blocked: Blocked) -> bool:
        """Skip this node (outputs None, recorded) when it consumes an output of a node that
        failed or was skipped, or its condition does not hold."""
        cause = next((blocked[name] for name in self.blocking if name in blocked), None)
        if cause is None:
            if self.when is None:
                return False
            try:
                if _holds(level, self.when, values):
                    return False
            except Exception as exc:  # the condition's failure is the node's
                self.fail(level, exc, 0.0, 1)
                if not self.continues:
                    raise
                self.continued(level, values, blocked, exc)
                return True
            why = f"its condition `{self.when.shown}` is false"
            cause = f"`{level.path(self.id)}` was skipped"
        else:
            why = cause
        _skipped(level, self.id, self.spec.outs, self.outcome, why, cause, values, blocked)
        return True

    def lookup(self, level: Level, values: dict[str, Any], batch: Batch | None, item: int) -> str:
        """``HIT`` when the cache holds this node's result (published, recorded, announced),
        else the signature to store the result under."""
        cache = level.config.cache
        if batch is not None:
            sig = batch.sigs[item][self.position]
            value = batch.held.get(sig, caching.ABSENT)
            if value is not caching.ABSENT:  # read with its entry
                outs = self.spec.outs
                if len(outs) == 1:
                    values[outs[0]] = value
                    values[REP + outs[0]] = caching.output_rep(sig, outs[0])
                else:
                    self._publish_value(values, sig, value)
                return self._hit(level, values, sig)
            entry = batch.entries.get(sig)
            if entry is None and sig in batch.made:  # stored by an earlier item of this run
                entry = cache.lookup((sig,)).get(sig)
        else:
            sig = Signer.of(level).sign(self.position, values)
            entry = cache.lookup((sig,)).get(sig)
        if entry is None:
            return sig
        self._publish_entry(level, values, sig, entry)
        return self._hit(level, values, sig)

    def _hit(self, level: Level, values: dict[str, Any], sig: str) -> str:
        if self.outcome is not None:
            values[self.outcome] = gates.ok()
        report = level.run.report
        report.cache_hits += 1
        report.pending.append((level, self.id, "cached", 0.0, 1, sig, None))
        if self.cached_hook:
            level.notify("on_node_cached", (self.id, sig), self.id)
        return HIT

    def _publish_value(self, values: dict[str, Any], sig: str, value: Any) -> None:
        outs = self.spec.outs
        if len(outs) == 1:
            values[outs[0]] = value
        else:
            values.update(zip(outs, value, strict=True))
        for out in outs:
            values[REP + out] = caching.output_rep(sig, out)

    def _publish_entry(self, level: Level, values: dict[str, Any], sig: str, entry: Any) -> None:
        whole = Unread(level.config.cache, entry, self, level, values)
        outs = self.spec.outs
        if len(outs) == 1:
            values[outs[0]] = whole
        else:
            for index, out in enumerate(outs):
                values[out] = UnreadPart(whole, index)
        for out in outs:
            values[REP + out] = caching.output_rep(sig, out)

    def remake(self, level: Level, values: dict[str, Any], sig: str) -> Any:
        """Run this node again on the inputs it had (its stored value could not be read).

        A level's values are never rebound, so ``values`` still holds the node's inputs. It
        runs as a miss does (events, record, store), waiting on the level's executor.
        """
        from nestflow.runtime.drive_sync import run_node

        fresh = dict(values)
        run_node(level, self, fresh, {}, sig=sig)
        outs = self.spec.outs
        caching.read(fresh, outs)
        return fresh[outs[0]] if len(outs) == 1 else tuple(fresh[o] for o in outs)

    def arguments(self, level: Level, values: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The call's arguments, unread inputs read first."""
        if level.run.cached:
            caching.read(values, self.spec.names)
        if self.simple is not None:
            return [values[name] for name in self.simple], {}
        return self.spec.arguments(values)

    def begin(self, level: Level, values: dict[str, Any], sig: str | None) -> Attempt:
        """The first attempt: inputs read, arguments wired, ``on_node_start`` fired."""
        if self.limits is not None:
            guard.before(level, self.id, self.limits)
        attempt = Attempt(level, values, self.spec.fn, sig)
        attempt.args, attempt.kwargs = self.arguments(level, values)
        if self.timeout is not None:
            attempt.executor = executors.for_call(level.executor, self.timeout)
        if self.starts or self.traced or self.sited:
            self._announce(attempt)
        attempt.called = perf_counter()
        return attempt

    def prepare(
        self, level: Level, values: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any], float]:
        """A direct call (``direct``): its arguments, ``on_node_start`` fired, and when the
        node started."""
        if self.limits is not None:
            guard.before(level, self.id, self.limits)
        if level.run.cached:
            caching.read(values, self.spec.names)
        kwargs: dict[str, Any]
        if self.simple is not None:
            args, kwargs = [values[name] for name in self.simple], {}
        else:
            args, kwargs = self.spec.arguments(values)
        started = perf_counter()
        if self.starts:
            inputs = self.spec.inputs(values)
            level.notify("on_node_start", (self.id, inputs), self.id)
        return args, kwargs, started

    def failed_directly(
        self,
        level: Level,
        values: dict[str, Any],
        sig: str | None,
        started: float,
        exc: Exception,
        blocked: Blocked,
    ) -> None:
        """``failed`` for a direct call: recorded and raised, or continued past."""
        attempt = Attempt(level, values, self.spec.fn, sig)
        attempt.started = started
        self.failed(attempt, exc, blocked)

    def again(self, attempt: Attempt) -> None:
        """The next attempt of a retried node."""
        attempt.number += 1
        self._announce(attempt)
        attempt.called = perf_counter()

    def _announce(self, attempt: Attempt) -> None:
        level = attempt.level
        if self.starts:
            inputs = self.spec.inputs(attempt.values)
            level.emit("on_node_start", self.id, inputs, node_id=self.id, attempt=attempt.number)
        if self.traced:
            carrier = tracing.carrier_for(level, self.id, attempt.number)
            attempt.fn = tracing.traced_fn(self.spec.fn, carrier, self.is_async)
        if self.sited:
            attempt.fn = self._sited(level, attempt.fn)

    def _sited(self, level: Level, fn: Any) -> sites.Sited:
        """``fn`` run with its site current; its events reach ``on_remote_event`` here."""
        live: Callable[[Mapping[str, Any]], None] | None = None
        if level.run.relayed is not None or "on_remote_event" in level.hooks:
            node_id = self.id

            def live(event: Mapping[str, Any]) -> None:
                level.notify("on_remote_event", (node_id, event), node_id)

        wrapper = sites.SitedAsync if self.is_async else sites.Sited
        return wrapper(fn, level.hierarchy[0], self.id, level.path(self.id), live)

    def _delivered(self, level: Level, result: Any) -> Any:
        """A sited call's value; the events it kept reach ``on_remote_event`` now."""
        if not isinstance(result, sites.Delivered):
            return result
        if result.events and (level.run.relayed is not None or "on_remote_event" in level.hooks):
            for event in result.events:
                level.notify("on_remote_event", (self.id, event), self.id)
        return result.value

    def node_call(self, attempt: Attempt) -> NodeCall:
        """The call as a task for an executor that is not this thread."""
        from nestflow.engines.protocol import NodeCall

        return NodeCall(
            attempt.fn,
            tuple(attempt.args),
            attempt.kwargs,
            timeout=self.timeout,
            node_path=attempt.level.path(self.id),
        )

    def submit(self, attempt: Attempt) -> Future[Any]:
        """Hand the call to the attempt's executor; a value that cannot travel is named."""
        executor = attempt.executor
        if executor.kind == "session" and getattr(executor, "remote", False):
            self._check_shipping(attempt)
        try:
            return executor.submit(self.node_call(attempt))
        except Exception:
            if executor.kind == "processes":  # raises the error naming what cannot be pickled
                self._check_shipping(attempt)
            raise

    def _check_shipping(self, attempt: Attempt) -> None:
        """Raise the error naming what of the call cannot travel to a worker, if anything."""
        from nestflow.runtime import shipping  # cloudpickle: only for calls that leave

        args, kwargs = attempt.args, attempt.kwargs
        shipping.dumps_node_call(attempt.level, self.id, self.spec, args, kwargs)

    def limit(self, attempt: Attempt) -> float | None:
        """How long a driver waits for the call (worker processes enforce their own)."""
        return None if attempt.executor.kind == "processes" else self.timeout

    # --- after the call ------------------------------------------------------------------------

    def in_time(self, attempt: Attempt, result: Any) -> Any:
        """``result``, unless the call returned after its deadline.

        A thread cannot be interrupted, and a node that holds the GIL (one long C call) or
        blocks the event loop keeps even the wait for it from ending on time: such a call
        returns late, and its result is discarded as a timeout (never published or cached).
        Worker processes are stopped at the deadline and need no such check.
        """
        if self.sited:
            result = self._delivered(attempt.level, result)
        timeout = self.timeout
        if (
            timeout is not None
            and perf_counter() - attempt.called > timeout
            and attempt.executor.kind != "processes"
        ):
            raise executors.CallTimeout(
                "it returned after its deadline (it could not be interrupted), so its result "
                "was discarded"
            )
        return result

    def publish(self, values: dict[str, Any], result: Any) -> None:
        """A call that returned: its result under the node's output name(s) (a tuple of the
        wrong arity fails the attempt)."""
        if self.simple is not None:
            values[self.spec.outs[0]] = result
        else:
            self.spec.publish(result, values)

    def finish(
        self,
        level: Level,
        values: dict[str, Any],
        sig: str | None,
        started: float,
        attempts: int = 1,
        batch: Batch | None = None,
    ) -> None:
        """A published execution: stored, recorded, ``on_node_end`` fired (a store that fails
        is the cache's error, not the node's)."""
        duration = perf_counter() - started
        report = level.run.report
        if self.limits is not None:
            guard.after(level, self.limits)
        if sig is not None:
            cache = level.config.cache
            outs = self.spec.outs
            value = values[outs[0]] if len(outs) == 1 else tuple(values[o] for o in outs)
            cache.store(sig, level.path(self.id), outs, value)
            level.run.wrote(cache)
            for out in outs:
                values[REP + out] = caching.output_rep(sig, out)
            report.cache_misses += 1
            if batch is not None:
                batch.made.add(sig)
        report.pending.append((level, self.id, "executed", duration, attempts, sig, None))
        if self.outcome is not None:
            values[self.outcome] = gates.ok()
        if self.ends:
            outputs = {o: values[o] for o in self.spec.outs}
            level.notify("on_node_end", (self.id, outputs, duration), self.id, attempt=attempts)

    def failed(self, attempt: Attempt, exc: Exception, blocked: Blocked) -> float | None:
        """What a failed attempt means: the delay before a retry, ``None`` when the failure
        is continued past (outputs None); otherwise it is recorded and raised."""
        error = self._explained(attempt, exc)
        if self.policy.allows(attempt.number, error):
            return self.policy.delay(attempt.number)
        self.fail(attempt.level, error, perf_counter() - attempt.started, attempt.number)
        if not self.continues:
            if error is exc:
                raise exc
            raise error from None
        self.continued(attempt.level, attempt.values, blocked, error)
        return None

    def continued(
        self, level: Level, values: dict[str, Any], blocked: Blocked, exc: BaseException
    ) -> None:
        """A recorded failure continued past: outputs None, their consumers to be skipped."""
        outs = self.spec.outs
        values.update(dict.fromkeys(outs))
        path = level.path(self.id)
        blocked.update(dict.fromkeys(outs, f"`{path}` failed"))
        if self.outcome is not None:
            values[self.outcome] = gates.failed(path, exc)

    def fail(self, level: Level, exc: BaseException, duration: float, attempts: int) -> None:
        """Record a final failure: notes on the exception, records, ``on_error``."""
        report = level.run.report
        context = level.error_context(self.id, attempts)
        annotate(exc, context)
        exc.__traceback__ = user_traceback(exc.__traceback__)
        text = f"{type(exc).__name__}: {exc}"
        report.pending.append((level, self.id, "failed", duration, attempts, None, text))
        record_error(level, context.path, exc, attempts)
        if self.errors:
            level.emit("on_error", self.id, exc, node_id=self.id, error=exc, attempt=attempts)

    def _explained(self, attempt: Attempt, exc: Exception) -> Exception:
        if isinstance(exc, executors.CallTimeout):
            level = attempt.level
            if exc.abandoned:
                items = "".join(f" [item {i}]" for i in level.item_path)
                level.run.report.abandoned_threads.append(level.path(self.id) + items)
            return self._timeout_error(level, exc.stopped)
        if attempt.executor.kind == "processes":
            from nestflow.runtime import shipping

            return shipping.translated(attempt.level.path(self.id), exc)
        return exc

    def _timeout_error(self, level: Level, stopped: str) -> NodeTimeoutError:
        if self.node.timeout is not UNSET:
            where = f"on node `{self.id}`"
        else:
            where = f"on pipeline `{level.config.origin('timeout')}`"
        return NodeTimeoutError(
            f"Node `{level.path(self.id)}` ran longer than its timeout of {self.timeout} s "
            f"(set {where}); {stopped}. Raise the limit with timeout=..., or set timeout=None "
            "on the node to lift it."
        )


# --- nested pipelines -----------------------------------------------------------------------


class NestedStep:
    """A nested pipeline node of a compiled level."""

    __slots__ = (
        "blocking", "broadcast", "child", "continues", "gated", "id", "index", "inner_mapped",
        "mapped", "mode", "node", "outcome", "plain", "step", "when", "workspace",
    )  # fmt: skip

    def __init__(self, compiled: Compiled, index: int, step: Step) -> None:
        node = step.node
        assert isinstance(node, PipelineNode)
        assert step.child is not None
        self.index, self.id, self.step, self.node = index, step.id, step, node
        self.child = compiled_child(step, compiled.config, compiled.relay)
        self.continues = node.on_error == "continue"
        self.mapped: tuple[str, ...] = tuple(node.map_over)
        self.mode = node.map_mode
        to_inner = dict(step.child_inputs)
        self.inner_mapped = tuple(to_inner[m] for m in self.mapped)
        self.broadcast = tuple((o, i) for o, i in step.child_inputs if o not in self.mapped)
        self.when, self.outcome = node.when, node.outcome
        self.gated = node.when is not None
        """It has a condition: the drivers ask ``skip`` before every execution."""
        tolerates = node.tolerates
        self.blocking = (
            tuple(a for a in step.args if a not in tolerates) if tolerates else step.args
        )
        """Inputs that skip the child when their producer failed or was skipped."""
        self.workspace = node.workspace
        self.plain: bool = (
            not self.child.config.limits.checks_each_step
            and self.child.plain
            and not self.mapped
            and not self.continues
            and not self.gated
            and self.outcome is None
            and self.workspace is None
        )
        """Not mapped, failures raised, no condition or outcome, and its level plain
        (``Compiled.plain``)."""

    def enter(self, level: Level, values: dict[str, Any]) -> tuple[Level, dict[str, Any]]:
        """The child level and its inputs; ``on_nested_pipeline_start`` fired."""
        limit = self.child.depth_limit
        if limit is not None and not self._no_items(level, values):
            guard.entering(level.depth + 1, level.hierarchy, self.child.plan.name, limit)
        child = level.child(self.child, entered=self.id, mapped=bool(self.mapped))
        if "on_nested_pipeline_start" in level.hooks:
            level.emit("on_nested_pipeline_start", level.plan.name, child.plan.name)
        sub = self.inputs(values)
        if level.run.cached:
            caching.carry(values, sub, self.step.child_inputs)
        return child, sub

    def _no_items(self, level: Level, values: dict[str, Any]) -> bool:
        """A map with nothing to map: its level is entered, but no item runs in it."""
        if not self.mapped:
            return False
        if level.run.cached:
            caching.read(values, self.mapped)
        try:
            return any(len(values[name]) == 0 for name in self.mapped)
        except TypeError:  # not a collection: the map says so
            return False

    def inputs(self, values: dict[str, Any]) -> dict[str, Any]:
        """The child's inputs: its bound values, then the values it is given from here."""
        sub = dict(self.node.pipeline.bound_inputs)
        for outer, inner in self.step.child_inputs:
            if outer in values:
                sub[inner] = values[outer]
        return sub

    def map_call(self, values: dict[str, Any], sub: dict[str, Any]) -> MapCall:
        """The child's map: the outer collections (read) become items of the inner names."""
        caching.read(values, self.mapped)
        columns = collections(values, self.mapped)
        names = self.inner_mapped
        base = {k: v for k, v in sub.items() if k not in names and not caching.rep_of(k, names)}
        return MapCall(self.id, sub, base, names, columns, self.mode, self.continues)

    def opened(self, level: Level) -> workspaces.Opened | None:
        """The child's workspace, made and entered (``None`` when it has none)."""
        if self.workspace is None:
            return None
        return workspaces.Opened(self.workspace, level, self.id)

    def level(self, level: Level) -> Level:
        """The child level under ``level``, made after the fact (records, failures)."""
        return level.child(self.child, entered=self.id, mapped=False, replay=True)

    def leave(self, level: Level, started: float) -> None:
        """``on_nested_pipeline_end``."""
        if "on_nested_pipeline_end" in level.hooks:
            took = perf_counter() - started
            level.emit("on_nested_pipeline_end", level.plan.name, self.child.plan.name, took)

    def publish(
        self,
        values: dict[str, Any],
        results: dict[str, Any],
        inner: Blocked | None = None,
        blocked: Blocked | None = None,
    ) -> None:
        """The child's outputs under the outer names (with their representations, and the
        failures continued past inside it: ``inner`` into ``blocked``)."""
        pairs = self.step.child_outputs
        for name, outer in pairs:
            values[outer] = results[name]
        if self.outcome is not None:
            values[self.outcome] = gates.ok()
        if inner and blocked is not None:
            blocked.update((outer, inner[name]) for name, outer in pairs if name in inner)
        if blocked is not None:
            caching.carry(results, values, pairs)

    def failed(
        self, level: Level, values: dict[str, Any], exc: Exception, blocked: Blocked
    ) -> None:
        """A failure inside the child: raised, or continued past with the outputs None.

        The failing node already recorded the error and fired ``on_error`` at its level.
        """
        if not self.continues or isinstance(exc, GuardError):
            raise exc
        recorded(level, level.path(self.id), exc)
        outs = self.step.outs
        values.update(dict.fromkeys(outs))
        context = getattr(exc, "__nestflow__", None)
        path = str(getattr(context, "path", level.path(self.id)))
        blocked.update(dict.fromkeys(outs, f"`{path}` failed"))
        if self.outcome is not None:
            values[self.outcome] = gates.failed(path, exc)

    def skip(self, level: Level, values: dict[str, Any], blocked: Blocked) -> bool:
        """Skip the child when it consumes an output of a node that failed or was skipped,
        or its condition does not hold."""
        name = next((name for name in self.blocking if name in blocked), None)
        if name is not None and not (is_private(name) and self.when is not None):
            why = cause = blocked[name]
        else:  # its own condition (which also kept the helper computing its inputs from running)
            if self.when is None:
                return False
            if name is None:
                try:
                    if _holds(level, self.when, values):
                        return False
                except Exception as exc:  # the condition's failure is the nested node's
                    path = level.path(self.id)
                    annotate(exc, level.error_context(self.id, 1))
                    record_error(level, path, exc, 1)
                    self.failed(level, values, exc, blocked)
                    return True
            why = f"its condition `{self.when.shown}` is false"
            cause = f"`{level.path(self.id)}` was skipped"
        _skipped(level, self.id, self.step.outs, self.outcome, why, cause, values, blocked)
        return True


def _skipped(
    level: Level,
    node_id: str,
    outs: tuple[str, ...],
    outcome: str | None,
    why: str,
    cause: str,
    values: dict[str, Any],
    blocked: Blocked,
) -> None:
    """A skipped node or nested node (the one way): recorded with ``why``, its outputs None,
    their consumers to be skipped for ``cause``, its outcome ``skipped``."""
    level.run.report.pending.append((level, node_id, "skipped", 0.0, 1, None, f"skipped: {why}"))
    values.update(dict.fromkeys(outs))
    blocked.update(dict.fromkeys(outs, cause))
    if outcome is not None:
        values[outcome] = gates.skipped()


def _holds(level: Level, when: gates.Condition, values: dict[str, Any]) -> bool:
    """Whether a condition holds over a level's values (its inputs read first)."""
    if level.run.cached:
        caching.read(values, when.inputs)
    return when.holds(values)


def level_below(level: Level, chain: tuple[NestedStep, ...]) -> Level:
    """The level reached from ``level`` through the nested steps of ``chain``."""
    for nested in chain:
        level = nested.level(level)
    return level


def compiled_child(step: Step, parent: EffectiveConfig, relay: bool = False) -> Compiled:
    """The compiled child level of nested ``step`` under a level with configuration ``parent``."""
    assert step.child is not None
    pipeline = step.inner
    kept: dict[int, tuple[EffectiveConfig, EffectiveConfig]]
    kept = pipeline.memo.setdefault("child-configs", {})
    found = kept.get(id(parent))
    if found is None or found[0] is not parent:
        if len(kept) >= _KEPT:
            kept.clear()
        found = kept[id(parent)] = (parent, child_config(pipeline, parent))
    return compiled(pipeline, step.child, found[1], relay)


# --- the events that frame levels and items -------------------------------------------------


def shown(level: Level, values: dict[str, Any]) -> dict[str, Any]:
    """The values a callback sees: unread cache values and signature keys left out."""
    return caching.visible(values)


def level_started(level: Level, values: dict[str, Any]) -> float:
    """``on_pipeline_start``; returns the level's start time."""
    if "on_pipeline_start" in level.hooks:
        level.emit("on_pipeline_start", level.plan.name, shown(level, values))
    return perf_counter()


def level_ended(
    level: Level, values: dict[str, Any], started: float, error: BaseException | None
) -> None:
    """``on_pipeline_end`` with the outputs made (read ones only)."""
    if "on_pipeline_end" in level.hooks:
        outputs = {o: values[o] for o in level.plan.outputs if o in values}
        took = perf_counter() - started
        level.emit("on_pipeline_end", level.plan.name, shown(level, outputs), took, error=error)


def map_started(level: Level, map_id: str, total: int) -> float:
    """``on_map_start``; the level noted as mapped (``RunReport.maps``); returns the map's
    start time."""
    maps = level.run.report.maps
    if maps is not None and level.entered not in maps:
        maps.append(level.entered)
    if "on_map_start" in level.hooks:
        level.emit("on_map_start", map_id, total)
    return perf_counter()


def map_ended(level: Level, map_id: str, started: float) -> None:
    """``on_map_end``."""
    if "on_map_end" in level.hooks:
        level.emit("on_map_end", map_id, perf_counter() - started)


def item_started(
    level: Level, map_id: str, values: dict[str, Any], names: tuple[str, ...]
) -> float:
    """``on_map_item_start`` for the item ``level`` runs (its mapped ``names`` from ``values``);
    returns its start time."""
    if "on_map_item_start" in level.hooks:
        item = {name: values[name] for name in names}
        level.notify("on_map_item_start", (map_id, level.item_path[-1], item))
    return perf_counter()


def item_ended(level: Level, map_id: str, started: float, error: BaseException | None) -> None:
    """``on_map_item_end`` (also on failure, with the error)."""
    if "on_map_item_end" in level.hooks:
        took = perf_counter() - started
        level.notify("on_map_item_end", (map_id, level.item_path[-1], took), error=error)


def item_failed(level: Level, exc: Exception) -> dict[str, Any]:
    """A failed item of a map that keeps going: its outputs ``None``, and its error on
    record (a node's failure is recorded by the node; a failure to ship or to finish the
    item as a whole is recorded here)."""
    recorded(level, " > ".join((level.hierarchy[0], *level.entered)), exc)
    return dict.fromkeys(level.plan.outputs)


def recorded(level: Level, path: str, exc: Exception) -> None:
    """Put a failure continued past on record, unless the node that raised it did."""
    if not is_annotated(exc):
        record_error(level, path, exc, 1)


def record_error(level: Level, path: str, exc: BaseException, attempts: int) -> None:
    """The run's ``ErrorRecord`` of a failure at ``level`` (the one way errors are recorded)."""
    level.run.report.errors.append(
        ErrorRecord(
            node_path=path,
            exception_type=type(exc).__name__,
            message=str(exc),
            traceback="".join(traceback.format_exception(exc)),
            item_path=level.item_path,
            attempts=attempts,
        )
    )


def item_cached(level: Level, map_id: str, sig: str) -> None:
    """``on_map_item_cached``: the item was resolved by signatures alone (SPEC 8.6)."""
    if "on_map_item_cached" in level.hooks:
        level.emit("on_map_item_cached", map_id, level.item_path[-1], sig)


def sign_batch(level: Level, items: list[dict[str, Any]], plain_run: bool) -> Batch | None:
    """Every signature of a flat cached level's items, asked of the cache at once.

    ``None`` when the level is not flat, or an input cannot be signed: the nodes then sign
    one by one, and the one that cannot raises with its events.
    """
    compiled = level.compiled
    if not compiled.flat or level.config.cache is None:
        return None
    signer = Signer.of(level)
    try:
        if plain_run:
            sigs = [signer.sign_run(items[0], compiled.inputs)]
        else:
            sigs = [signer.sign_item(values) for values in items]
        return Batch(level, sigs)
    except Exception:  # signed node by node, so the failing node reports it
        return None
