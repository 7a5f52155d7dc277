"""Running admitted calls: in a bounded pool of threads, within the contract's time budget.

The run continues the caller's trace (its spans hang under the calling node's span) and
makes its own calls one hop deeper, with this pipeline appended to the chain. The audit
record is committed as ``started`` before the run starts and finished after it, so
a node of the run that reads the audit store sees its own call. Runs execute off the event
loop, so the API keeps answering while they work. A run past its budget is answered with 504
(with its run id, once it started) and abandoned: it runs limited to the budget
(``Limits(max_run_seconds=...)``), so no node of it starts after that; the node running then
cannot be interrupted, and its result is discarded (as for a thread node past its timeout,
SPEC 7.6).

A streamed call (``Accept: text/event-stream``) answers 200 at once and sends the run's
events as they happen (``relay.py``), a ``: ping`` comment after every ``ping_s`` of
silence, then one ``result`` or ``error`` event with the body a synchronous call would
have had. The contract's budget does not apply; the server's ``stream_max_seconds`` does.
A caller that goes away does not stop the run: its audit record is finished when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi.responses import JSONResponse, Response, StreamingResponse

from nestflow.core.limits import Limits
from nestflow.runtime.report import capture
from nestflow.runtime.tracing import attached
from nestflow.service.client import calling_from
from nestflow.service.refusals import error_body
from nestflow.service.relay import Relay
from nestflow.service.sources import PipelineCache

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline
    from nestflow.runtime.report import Capture, RunReport
    from nestflow.service.gate import Admission, Gate, Incoming
    from nestflow.service.store import RegisteredPipeline, Store

STREAM_MAX_SECONDS = 3600.0
"""How long a streamed run may last on this server (``stream_max_seconds``)."""
PING_S = 15.0
"""A streamed call hears a ``: ping`` after this many seconds of silence."""
SWEEP_S = 0.05
"""How often the calls waiting for their runs are checked against their deadlines."""
CHECKERS = 8
"""Threads for the store work before a run: admissions, refusals and their records."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a run left: its outputs or its error, its run id and its usage."""

    values: dict[str, Any] | None
    error: BaseException | None
    run_id: str | None
    usage: dict[str, float] = field(default_factory=dict)


class Runner:
    """Runs admitted calls in ``workers`` threads, loading each pipeline once per content hash."""

    def __init__(
        self,
        store: Store,
        workers: int,
        *,
        stream_max_seconds: float = STREAM_MAX_SECONDS,
        ping_s: float = PING_S,
        debug: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError(f"The service needs at least one worker, not {workers}.")
        self._store = store
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="nestflow-service-run")
        self._checks = ThreadPoolExecutor(CHECKERS, thread_name_prefix="nestflow-service-check")
        self._pipelines = PipelineCache()
        self._timed: dict[tuple[str, str, float], Pipeline] = {}
        self._stream_max_s = stream_max_seconds
        self._ping_s = ping_s
        self._deadlines = Deadlines()
        self._debug = debug

    def close(self) -> None:
        """Stop taking runs; runs under way finish in their threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._checks.shutdown(wait=False, cancel_futures=True)
        self._deadlines.close()

    async def checking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a thread for the checks and records that come before a run (they
        block on the store), never held up by the runs."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._checks, functools.partial(fn, *args))

    def admit(self, gate: Gate, incoming: Incoming) -> Call:
        """Admit ``incoming`` and commit its ``started`` audit record (one trip off the loop);
        raises the gate's ``Refusal``."""
        admitted = gate.admit(incoming)
        return Call(self._store, admitted.admission, admitted.record)

    async def answer(self, call: Call) -> Response:
        """Run the admitted call and answer it: 200, 500 (the run failed) or 504 (budget);
        a streamed call is answered 200 with its events."""
        if call.admission.call.mode == "stream":
            # The run starts here, not when the response first asks for an event: a caller
            # gone before that still gets its run done and its record finished.
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

            def sink(event: dict[str, Any]) -> None:  # called in the run's thread
                # A loop closed under a run (the server stopping) has no caller left to tell.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(queue.put_nowait, event)

            work = self._start(call, Relay(sink), self._stream_max_s)
            work.add_done_callback(lambda _: queue.put_nowait(None))
            return StreamingResponse(
                self._events(call, work, queue),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        budget = call.admission.contract.time_budget_s
        work = self._start(call, None, budget)
        try:
            outcome = await self._deadlines.first(work, call.started + budget)
        except asyncio.CancelledError:
            outcome = None  # the pool shut down before the run started
        outcome = await self._settled(call, outcome)
        return JSONResponse(_body(call, outcome, debug=self._debug), _status(outcome))

    async def _settled(self, call: Call, outcome: Outcome | None) -> Outcome | None:
        """``outcome``; or, when the wait ended without one, the run's own outcome if it
        finished meanwhile (reply and record must agree), else ``None`` (a timeout)."""
        if outcome is not None:
            return outcome
        if await self.checking(call.finish, None):
            return None
        return call.outcome

    def _start(
        self, call: Call, relay: Relay | None, limit_s: float
    ) -> asyncio.Future[Outcome | None]:
        # Copy the context: OpenTelemetry keeps the current span in a contextvar, and pool
        # threads start empty.
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._pool, context.run, self._run, call, relay, limit_s)

    async def _events(
        self,
        call: Call,
        work: asyncio.Future[Outcome | None],
        queue: asyncio.Queue[dict[str, Any] | None],
    ) -> AsyncIterator[str]:
        deadline = call.started + self._stream_max_s
        outcome: Outcome | None = None
        while (left := deadline - time.perf_counter()) > 0:
            try:
                event = await asyncio.wait_for(queue.get(), min(self._ping_s, left))
            except TimeoutError:
                yield ": ping\n\n"
                continue
            if event is None:
                if not work.cancelled() and work.exception() is None:
                    outcome = work.result()
                break
            yield _event("progress", event)
        outcome = await self._settled(call, outcome)
        body = _body(call, outcome, self._stream_max_s, debug=self._debug)
        yield _event("error" if body["status"] == "error" else "result", body)

    def _run(self, call: Call, relay: Relay | None, limit_s: float) -> Outcome | None:
        """Run the call here (a pool thread) and finish its record: the outcome is audited
        even when nobody waits for it any more (a stream whose caller went away)."""
        if call.finished or time.perf_counter() - call.started >= limit_s:
            # Answered with 504 while it waited for a worker: it does not run at all.
            call.finish(None)
            return None
        outcome = self._execute(call, relay, limit_s)
        call.finish(outcome)
        return outcome

    def _execute(self, call: Call, relay: Relay | None, limit_s: float) -> Outcome:
        admission = call.admission
        wall, cpu = time.perf_counter(), time.thread_time()
        with attached(admission.trace), calling_from(admission.hop), capture() as captured:
            call.runs = captured
            try:
                pipeline = self._pipeline(admission.registered, limit_s)
                if relay is not None:
                    pipeline = pipeline.with_callbacks([relay], add=True)
                outputs = pipeline.run(admission.inputs)
            except Exception as exc:
                report = captured.reports[-1] if captured.reports else None
                run_id = None if report is None else report.run_id
                return Outcome(None, exc, run_id, _usage(wall, cpu, report))
        values = {name: outputs.get(name) for name in admission.contract.outputs}
        problem = _unsendable(values)
        kept = values if problem is None else None
        return Outcome(kept, problem, outputs.report.run_id, _usage(wall, cpu, outputs.report))

    def _pipeline(self, registered: RegisteredPipeline, limit_s: float) -> Pipeline:
        """The registered pipeline, limited to ``limit_s`` seconds: once the budget has
        passed, no node of an abandoned run starts (``TimeLimitError`` ends it)."""
        key = (registered.source, registered.content_hash, limit_s)
        found = self._timed.get(key)
        if found is None:
            loaded = self._pipelines.get(registered.source, registered.content_hash)
            given = loaded.config["limits"]
            own = given if isinstance(given, Limits) else Limits()
            found = loaded.with_limits(Limits(max_run_seconds=limit_s).over(own))
            self._timed[key] = found
        return found


class Deadlines:
    """Waits for runs until their deadlines, all with one timer task on the event loop.

    A timer per call (``asyncio.wait_for``) costs more than the run of a small pipeline: each
    is pushed onto the loop's heap and, cancelled when the run ends in time, stays there
    until it expires. Here a call is one dict entry; ``SWEEP_S`` apart, the task answers
    the calls past their deadlines (a 504 comes at most that much later).
    """

    def __init__(self) -> None:
        self._waiting: dict[asyncio.Future[Outcome | None], float] = {}
        self._task: asyncio.Task[None] | None = None

    async def first(self, work: asyncio.Future[Outcome | None], deadline: float) -> Outcome | None:
        """What ``work`` gives, or ``None`` once ``deadline`` (``perf_counter``) has passed."""
        answer: asyncio.Future[Outcome | None] = asyncio.get_running_loop().create_future()

        def settle(done: asyncio.Future[Outcome | None]) -> None:
            if answer.done():
                return
            if done.cancelled():  # the pool shut down before the run started
                answer.cancel()
            elif (error := done.exception()) is not None:
                answer.set_exception(error)
            else:
                answer.set_result(done.result())

        work.add_done_callback(settle)
        self._waiting[answer] = deadline
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._sweep())
        try:
            return await answer
        finally:
            self._waiting.pop(answer, None)

    async def _sweep(self) -> None:
        while self._waiting:
            await asyncio.sleep(SWEEP_S)
            now = time.perf_counter()
            for answer, deadline in list(self._waiting.items()):
                if deadline <= now and not answer.done():
                    answer.set_result(None)

    def close(self) -> None:
        """Stop the timer task."""
        if self._task is not None:
            self._task.cancel()


class Call:
    """One admitted call: its audit record, finished exactly once, and its run."""

    def __init__(self, store: Store, admission: Admission, record: int) -> None:
        self._store, self.admission, self.record = store, admission, record
        self.started = time.perf_counter()
        self.latency_ms = 0.0
        self.finished = False
        self.outcome: Outcome | None = None
        """What the record was finished with (``None``: a timeout, or not finished yet)."""
        self.runs: Capture | None = None
        """The runs of the call as they start (set in the worker, when it takes the call)."""
        self._lock = threading.Lock()

    @property
    def run_id(self) -> str | None:
        """The id of the call's run, once it has started."""
        started = None if self.runs is None else self.runs.started
        return started[0].run_id if started else None

    def finish(self, outcome: Outcome | None) -> bool:
        """Complete the record with ``outcome`` (``None``: the run ran out of time); whether
        this was the finish (``False``: the record was finished already, with
        ``self.outcome``)."""
        with self._lock:
            if self.finished:
                return False
            self.finished = True
            self.outcome = outcome
            self.latency_ms = (time.perf_counter() - self.started) * 1000
        if outcome is None:
            self._store.audit_finished(
                self.record,
                "timeout",
                latency_ms=self.latency_ms,
                error_type="timeout",
                run_id=self.run_id,
                usage={"wall_s": self.latency_ms / 1000},
            )
            return True
        error = outcome.error
        self._store.audit_finished(
            self.record,
            "ok" if error is None else "error",
            latency_ms=self.latency_ms,
            error_type=None if error is None else type(error).__name__,
            error_message=None if error is None else str(error),
            run_id=outcome.run_id,
            usage=outcome.usage,
        )
        return True


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, default=repr)}\n\n"


def _unsendable(values: dict[str, Any]) -> TypeError | None:
    """Why the outputs cannot be answered as JSON (checked in the worker, before the reply)."""
    try:
        json.dumps(values, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return TypeError(
            f"The outputs cannot be sent as JSON ({exc}); make the contract's outputs JSON "
            "values: strings, finite numbers, booleans, None, lists and dicts of them."
        )
    return None


def _usage(wall: float, cpu: float, report: RunReport | None) -> dict[str, float]:
    """What the run used (the callee organisation pays): the counters its nodes reported
    with ``record_usage``, and the wall and CPU seconds of its coordinating thread."""
    counted = {} if report is None else dict(report.usage)
    return {**counted, "wall_s": time.perf_counter() - wall, "cpu_s": time.thread_time() - cpu}


def _status(outcome: Outcome | None) -> int:
    if outcome is None:
        return 504
    return 200 if outcome.error is None else 500


def _body(
    call: Call, outcome: Outcome | None, limit_s: float | None = None, *, debug: bool = False
) -> dict[str, Any]:
    """The body of the answer: a synchronous reply, or the last event of a stream; with
    ``debug``, a failed run's error carries its traceback."""
    admission = call.admission
    contract = admission.contract
    if outcome is None:
        name = admission.registered.name
        if limit_s is None:
            message = (
                f"The run of `{name}` exceeded its time budget of {contract.time_budget_s} s "
                "and was abandoned; stream long runs instead."
            )
        else:
            message = (
                f"The streamed run of `{name}` exceeded this server's limit of {limit_s:g} s "
                "(stream_max_seconds) and was abandoned."
            )
        return error_body("timeout", message, call.run_id)
    if outcome.error is not None:
        error = outcome.error
        shown = {"traceback": "".join(traceback.format_exception(error))} if debug else None
        return error_body(type(error).__name__, str(error), outcome.run_id, shown)
    values = outcome.values or {}
    return {
        "status": "ok",
        "result": values.get(contract.response_key),
        "outputs": {name: values.get(name) for name in contract.outputs},
        "run_id": outcome.run_id,
        "duration_ms": call.latency_ms,
    }
