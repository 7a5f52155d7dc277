"""Running admitted calls: in a bounded pool of threads, within the contract's time budget.

The run continues the caller's trace (its spans hang under the calling node's span) and
makes its own calls one hop deeper, with this pipeline appended to the chain. The audit
record is committed as ``started`` before the run starts and finished after it, so
a node of the run that reads the audit store sees its own call. Runs execute off the event
loop, so the API keeps answering while they work. A run past its budget is answered with 504
and abandoned: a queued run is cancelled; a thread already running cannot be interrupted, so
its eventual result is discarded (as for a thread node past its timeout, SPEC 7.6) and it
holds its worker until it ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from nestflow.runtime.report import capture
from nestflow.runtime.tracing import attached
from nestflow.service.client import calling_from
from nestflow.service.refusals import error_response
from nestflow.service.sources import PipelineCache

if TYPE_CHECKING:
    from nestflow.service.gate import Admission
    from nestflow.service.store import Store


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a run left: its outputs or its error, its run id and its usage."""

    values: dict[str, Any] | None
    error: BaseException | None
    run_id: str | None
    usage: dict[str, float] = field(default_factory=dict)


class Runner:
    """Runs admitted calls in ``workers`` threads, loading each pipeline once per content hash."""

    def __init__(self, store: Store, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"The service needs at least one worker, not {workers}.")
        self._store = store
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="nestflow-service-run")
        self._pipelines = PipelineCache()

    def close(self) -> None:
        """Stop taking runs; runs under way finish in their threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def answer(self, admission: Admission) -> JSONResponse:
        """Run the admitted call and answer it: 200, 500 (the run failed) or 504 (budget)."""
        record = await run_in_threadpool(self._store.audit_started, admission.call)
        started = time.perf_counter()
        # Copy the context: OpenTelemetry keeps the current span in a contextvar, and pool
        # threads start empty.
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._pool, context.run, self._execute, admission)
        try:
            outcome: Outcome | None = await asyncio.wait_for(work, admission.contract.time_budget_s)
        except TimeoutError:
            outcome = None
        latency_ms = (time.perf_counter() - started) * 1000
        await run_in_threadpool(self._finish, record, outcome, latency_ms)
        return _reply(admission, outcome, latency_ms)

    def _execute(self, admission: Admission) -> Outcome:
        wall, cpu = time.perf_counter(), time.thread_time()
        registered = admission.registered
        with attached(admission.trace), calling_from(admission.hop), capture() as captured:
            try:
                pipeline = self._pipelines.get(registered.source, registered.content_hash)
                outputs = pipeline.run(admission.inputs)
            except Exception as exc:
                run_id = captured.reports[-1].run_id if captured.reports else None
                return Outcome(None, exc, run_id, _usage(wall, cpu))
        values = {name: outputs.get(name) for name in admission.contract.outputs}
        problem = _unsendable(values)
        kept = values if problem is None else None
        return Outcome(kept, problem, outputs.report.run_id, _usage(wall, cpu))

    def _finish(self, record: int, outcome: Outcome | None, latency_ms: float) -> None:
        if outcome is None:
            usage = {"wall_s": latency_ms / 1000}
            self._store.audit_finished(
                record, "timeout", latency_ms=latency_ms, error_type="timeout", usage=usage
            )
            return
        error = outcome.error
        self._store.audit_finished(
            record,
            "ok" if error is None else "error",
            latency_ms=latency_ms,
            error_type=None if error is None else type(error).__name__,
            error_message=None if error is None else str(error),
            run_id=outcome.run_id,
            usage=outcome.usage,
        )


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


def _usage(wall: float, cpu: float) -> dict[str, float]:
    """Wall and CPU seconds of the run's coordinating thread (the callee organisation pays)."""
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.thread_time() - cpu}


def _reply(admission: Admission, outcome: Outcome | None, latency_ms: float) -> JSONResponse:
    contract = admission.contract
    if outcome is None:
        message = (
            f"The run of `{admission.registered.name}` exceeded its time budget of "
            f"{contract.time_budget_s} s and was abandoned; stream long runs instead."
        )
        return error_response(504, "timeout", message, None)
    if outcome.error is not None:
        kind, message = type(outcome.error).__name__, str(outcome.error)
        return error_response(500, kind, message, outcome.run_id)
    values = outcome.values or {}
    return JSONResponse(
        {
            "status": "ok",
            "result": values.get(contract.response_key),
            "outputs": {name: values.get(name) for name in contract.outputs},
            "run_id": outcome.run_id,
            "duration_ms": latency_ms,
        }
    )
