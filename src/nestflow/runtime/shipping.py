"""What travels to worker processes and back, with errors that name the node and the value."""

from __future__ import annotations

from typing import Any

import cloudpickle

from nestflow.engines import processes
from nestflow.errors import RemoteExecutionError, SerializationError
from nestflow.runtime.calls import CallSpec
from nestflow.runtime.context import Level

_FIX = (
    "Use node_execution='threaded' (or map_execution='threaded') to keep the work in this "
    "process, or create the object inside the node."
)


def dumps_node_call(
    level: Level, node_id: str, spec: CallSpec, args: list[Any], kwargs: dict[str, Any]
) -> bytes:
    """The cloudpickled call, or ``SerializationError`` naming what cannot travel."""
    try:
        return processes.dumps_call(spec.fn, args, kwargs)
    except Exception as exc:
        raise _explain(level.path(node_id), spec, args, kwargs, exc) from exc


def _explain(
    path: str,
    spec: CallSpec,
    args: list[Any],
    kwargs: dict[str, Any],
    exc: Exception,
) -> SerializationError:
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


def translated(path: str, exc: Exception) -> Exception:
    """A worker process's failure to send its result or exception, named for the user."""
    if isinstance(exc, processes.Unsendable):
        return SerializationError(
            f"Node `{path}` ran in a worker process but its {exc.failure.message} cannot be "
            f"pickled back. {_FIX}"
        )
    if isinstance(exc, processes.Unrebuildable):
        info = exc.failure
        return RemoteExecutionError(
            f"Node `{path}` raised {info.type_name}: {info.message} in a worker process, and "
            f"the exception cannot be rebuilt here.\nRemote traceback:\n{info.traceback}",
            remote_type=info.type_name,
            remote_traceback=info.traceback,
        )
    return exc
