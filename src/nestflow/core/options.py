"""The keyword options of ``@node``, ``Pipeline`` and ``as_node``: their checks and their places.

Every check says what was given, what is expected and what to write instead. An option
given where it does not belong (``Pipeline(on_error=...)``) is pointed to where it does.
Problems raise ``InvalidOptionError``, which is both the ``ValueError`` of a definition
problem and the ``TypeError`` Python gives for a bad or unexpected keyword.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Mapping
from typing import Any, Final

from nestflow.core.config import ASPECTS, UNSET, Added
from nestflow.core.limits import limits_problem
from nestflow.errors import InvalidOptionError

LOCAL_MODES: Final = ("sequential", "threaded", "async", "parallel")
"""LocalBackend's modes; they live in ``engines/backends.py``, which core cannot import."""

ON_ERROR_PLACES: Final = (
    "Failure handling is set where the failure happens: on a node with "
    "@node(on_error='continue'), on a nested pipeline with "
    "inner.as_node(..., on_error='continue'), or per map item with "
    "pipeline.map(..., on_error='continue')."
)


def _typed(value: Any) -> str:
    return f"{type(value).__name__} {reprlib.repr(value)}"


def _quoted(names: Any) -> str:
    return ", ".join(f"'{n}'" for n in names)


def timeout_problem(value: Any) -> str | None:
    """Why ``value`` is not a timeout (``None`` is: no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        shown = repr(value) if isinstance(value, (int, float)) else _typed(value)
        return (
            f"expected a positive number of seconds, None (no limit) or UNSET (inherit); "
            f"got {shown}. Write timeout=30 for 30 s, or timeout=None to lift the limit."
        )
    return None


def retries_problem(value: Any) -> str | None:
    """Why ``value`` is not a retry policy."""
    expected = "expected an int >= 0 or Retry(...)"
    fix = "Write retries=2, or retries=Retry(attempts=2, backoff=0.5)."
    if isinstance(value, bool):
        return f"{expected}; got {value!r}. {fix}"
    if isinstance(value, int):
        return None if value >= 0 else f"{expected}; got {value}. {fix}"
    if hasattr(value, "attempts"):
        return None
    return f"{expected}; got {_typed(value)}. {fix}"


def on_error_problem(value: Any) -> str | None:
    """Why ``value`` is not an ``on_error`` choice."""
    if value in ("raise", "continue"):
        return None
    return f"expected 'raise' or 'continue', got {value!r}."


def node_cache_problem(value: Any) -> str | None:
    """Why ``value`` is not a node's ``cache=`` (which opts the node in or out)."""
    if isinstance(value, bool):
        return None
    return (
        f"expected True or False (whether this node uses the pipeline's cache), got "
        f"{type(value).__name__}: {value!r}. The cache store itself is set on the pipeline: "
        "Pipeline([...], cache=DiskCache('path'))."
    )


def backend_problem(value: Any) -> str | None:
    """Why ``value`` is not a backend."""
    if all(hasattr(value, a) for a in ("label", "node_execution", "map_execution")):
        return None
    expected = "expected a backend object such as LocalBackend(...) or DaskBackend(...)"
    modes = f"LocalBackend's modes are {_quoted(LOCAL_MODES)}"
    if value in LOCAL_MODES:
        return (
            f"{expected}, got the str {value!r}. Write backend=LocalBackend({value!r}) to run "
            f"nodes that way, or LocalBackend(map_execution={value!r}) for map items; {modes}."
        )
    if isinstance(value, str) and value.casefold() == "dask":
        return f"{expected}, got the str {value!r}. Write backend=DaskBackend() (extra 'dask')."
    return f"{expected}, got {type(value).__name__}: {value!r}. {modes}."


def cache_problem(value: Any) -> str | None:
    """Why ``value`` is not a pipeline's cache (``None`` is: caching off)."""
    if value is None or hasattr(value, "label"):
        return None
    expected = "expected a cache such as DiskCache(path), or None to turn caching off"
    if isinstance(value, str) or hasattr(value, "__fspath__"):
        return (
            f"{expected}; got the path {str(value)!r}. "
            f"Write cache=DiskCache({str(value)!r}) (from nestflow import DiskCache)."
        )
    if isinstance(value, bool):
        return (
            f"{expected}; got {value!r}. A pipeline's cache is a store: write "
            "cache=DiskCache('.cache'). True/False opts a single node in or out: "
            "@node(cache=False)."
        )
    return f"{expected}; got {type(value).__name__}."


def callbacks_problem(value: Any) -> str | None:
    """Why ``value`` is not a list of callbacks (``None`` is: none)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return f"expected a list of callbacks (or [] to disable), got {type(value).__name__}."
    bad = [type(c).__name__ for c in value if not hasattr(c, "on_pipeline_start")]
    if bad:
        return f"expected PipelineCallback instances, got {', '.join(bad)}."
    return None


_PIPELINE_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "backend": backend_problem,
    "cache": cache_problem,
    "callbacks": callbacks_problem,
    "timeout": timeout_problem,
    "retries": retries_problem,
    "limits": limits_problem,
}


def checked_config(owner: str, **given: Any) -> dict[str, Any]:
    """The pipeline configuration keywords given, checked; ``UNSET`` always passes (inherit)."""
    problems = [
        f"{aspect}=: {problem}"
        for aspect, value in given.items()
        if value is not UNSET and (problem := _PIPELINE_CHECKS[aspect](value)) is not None
    ]
    if problems:
        raise InvalidOptionError(f"Invalid option(s) of {owner}:\n  " + "\n  ".join(problems))
    callbacks = given.get("callbacks", UNSET)
    if callbacks is not UNSET and not isinstance(callbacks, Added):
        given["callbacks"] = tuple(callbacks or ())
    return given


def check_node_options(
    name: str, cache: object, timeout: object, retries: object, on_error: object
) -> None:
    """Check the options of ``@node`` (``UNSET`` timeout and retries inherit)."""
    found = {
        "cache": node_cache_problem(cache),
        "timeout": None if timeout is UNSET else timeout_problem(timeout),
        "retries": None if retries is UNSET else retries_problem(retries),
        "on_error": on_error_problem(on_error),
    }
    problems = [f"{option}=: {problem}" for option, problem in found.items() if problem]
    if problems:
        raise InvalidOptionError(f"Invalid option(s) of node `{name}`:\n  " + "\n  ".join(problems))


def misplaced_options(owner: str, given: Mapping[str, Any], accepted: tuple[str, ...]) -> None:
    """Raise for keywords ``owner`` does not take, saying where each one is set instead."""
    if not given:
        return
    lines = []
    for option in given:
        if option == "on_error":
            lines.append(f"{owner} has no on_error=. {ON_ERROR_PLACES}")
        elif option in ASPECTS:
            lines.append(
                f"{owner} has no {option}=; it is set on a pipeline: "
                f"Pipeline([...], {option}=...), or pipeline.with_{option}(...) for a copy."
            )
        else:
            lines.append(
                f"{owner} got an unexpected keyword `{option}`; "
                f"its keywords are: {', '.join(accepted)}."
            )
    raise InvalidOptionError("\n".join(lines))
