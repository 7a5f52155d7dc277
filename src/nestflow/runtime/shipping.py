"""What travels to worker processes and back, with errors that name the node and the value."""

from __future__ import annotations

from typing import Any

import cloudpickle

from nestflow.engines import processes
from nestflow.errors import RemoteExecutionError, SerializationError
from nestflow.runtime.calls import CallSpec
from nestflow.runtime.context import Level
from nestflow.runtime.plan import Step

_FIX = (
    "Use node_execution='threaded' (or map_execution='threaded') to keep the work in this "
    "process, or create the object inside the node."
)


def dumps_node_call(
    level: Level, step: Step, spec: CallSpec, args: list[Any], kwargs: dict[str, Any]
) -> bytes:
    """The cloudpickled call, or ``SerializationError`` naming what cannot travel."""
    try:
        return processes.dumps_call(spec.fn, args, kwargs)
    except Exception as exc:
        raise _explain(level, step, spec, args, kwargs, exc) from exc


def _explain(
    level: Level,
    step: Step,
    spec: CallSpec,
    args: list[Any],
    kwargs: dict[str, Any],
    exc: Exception,
) -> SerializationError:
    path = " > ".join((*level.hierarchy, step.id))
    named = [(name, value) for (name, _), value in zip(spec.positional, args, strict=True)]
    named += [(name, kwargs[param]) for param, name, _ in spec.keyword]
    for name, value in named:
        try:
            cloudpickle.dumps(value)
        except Exception as reason:
            return SerializationError(
                f"Node `{path}` cannot run in a worker process: input `{name}` "
                f"({type(value).__name__}) cannot be pickled: {reason}. {_FIX}"
            )
    return SerializationError(
        f"Node `{path}` cannot run in a worker process: its function cannot be pickled: "
        f"{exc}. {_FIX}"
    )


def loads_result(level: Level, step: Step, message: bytes) -> Any:
    """The worker's result, or its exception rebuilt (``RemoteExecutionError`` if it cannot be)."""
    path = " > ".join((*level.hierarchy, step.id))
    try:
        return processes.decode(message)
    except processes.Unsendable as failed:
        raise SerializationError(
            f"Node `{path}` ran in a worker process but its {failed.failure.message} cannot be "
            f"pickled back. {_FIX}"
        ) from None
    except processes.Unrebuildable as failed:
        info = failed.failure
        raise RemoteExecutionError(
            f"Node `{path}` raised {info.type_name}: {info.message} in a worker process, and "
            f"the exception cannot be rebuilt here.\nRemote traceback:\n{info.traceback}",
            remote_type=info.type_name,
            remote_traceback=info.traceback,
        ) from None
