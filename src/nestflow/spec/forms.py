"""The workflow form of configuration and bound values, for ``Pipeline.to_yaml``.

What a ``config`` block writes for a pipeline's timeout, retries, backend and cache; what a
function step's ``config`` adds to the settings of the node it names; which bound values an
input default can hold (JSON's). A value without a form is a ``NoForm`` whose message says
why, and what to write instead.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from nestflow.cache.disk import DiskCache
from nestflow.cache.redis import RedisCache
from nestflow.core.config import UNSET
from nestflow.core.node import Node
from nestflow.engines.backends import LocalBackend
from nestflow.engines.dask import DaskBackend

SETTINGS = ("cache", "cache_version", "timeout", "retries", "on_error")
"""The settings of a node that a function step may keep or change."""

PLAIN_SETTINGS: dict[str, Any] = {
    "cache": True, "cache_version": None, "timeout": UNSET, "retries": UNSET, "on_error": "raise",
}  # fmt: skip
"""The settings of a plain function named by a step: those of ``node(func)``."""


class NoForm(Exception):
    """A value the workflow format has no way to write; the message says why."""


def step_config(node: Node, base: Mapping[str, Any]) -> dict[str, Any] | NoForm:
    """The function-step ``config`` turning ``base``'s settings into ``node``'s, or why no
    config can (a ``NoForm`` to raise or report)."""
    config: dict[str, Any] = {}
    for key in SETTINGS:
        value = getattr(node, key)
        if value == base[key]:
            continue
        if key == "timeout" and _is_seconds(value):
            config["timeout_seconds"] = value
        elif key == "retries" and type(value) is int:
            config["max_retries"] = value
        elif key == "on_error" and value == "continue":
            config["continue_on_error"] = True
        else:
            return NoForm(_NO_STEP_KEY[key].format(value=value, base=base[key]))
    return config


_NO_STEP_KEY = {
    "cache": "cache={value!r} has no key in a function step; define the node at module level "
    "(`name = node(func, cache={value!r})`): a step naming it keeps its settings",
    "cache_version": "cache_version={value!r} has no key in a function step; define the node "
    "at module level (`name = node(func, cache_version=...)`): a step naming it keeps its "
    "settings",
    "timeout": "timeout={value!r} cannot be written over {base!r}: `timeout_seconds` takes a "
    "positive number of seconds",
    "retries": "retries={value!r} cannot be written over {base!r}: `max_retries` takes a "
    "number of retries, not a Retry policy",
    "on_error": "on_error={value!r} cannot be written over on_error={base!r}: "
    "`continue_on_error: true` is the only choice a step adds",
}


def _is_seconds(value: Any) -> bool:
    return type(value) in (int, float) and value > 0 and math.isfinite(value)


def _timeout(value: Any) -> Any:
    if not _is_seconds(value):
        raise NoForm(
            f"timeout={value!r} cannot be written: `timeout_seconds` takes a positive number "
            "of seconds (a workflow cannot lift an inherited limit)"
        )
    return value


def _retries(value: Any) -> Any:
    if type(value) is not int:
        raise NoForm(
            f"retries={value!r} cannot be written: `max_retries` takes a number of retries, "
            "not a Retry policy"
        )
    return value


def _backend(backend: Any) -> dict[str, Any]:
    """A backend's config entry: ``{type: local, ...}`` or ``{type: dask, ...}``."""
    if type(backend) is LocalBackend:
        options: dict[str, Any] = {
            "node_execution": backend.node_execution,
            "map_execution": backend.map_execution,
            "max_workers": backend.max_workers,
        }
        return {"type": "local", **_without_defaults(LocalBackend, options)}
    if type(backend) is DaskBackend:
        if backend.connect_timeout != 10.0:
            raise NoForm(
                f"DaskBackend(connect_timeout={backend.connect_timeout!r}) cannot be written: "
                "a dask backend in a workflow file connects with the default timeout"
            )
        options = {
            "address": backend.address,
            "n_workers": backend.n_workers,
            "threads_per_worker": backend.threads_per_worker,
            "resources": backend.resources or None,
            "node_execution": backend.node_execution,
            "map_execution": backend.map_execution,
        }
        return {"type": "dask", **_without_defaults(DaskBackend, options)}
    raise NoForm(
        f"backend {backend!r} cannot be written: a workflow file's config takes LocalBackend "
        "and DaskBackend only"
    )


def _cache(cache: Any) -> dict[str, Any] | None:
    """A cache's config entry: ``{type: disk, path}``, ``{type: redis, url, prefix}``, null."""
    if cache is None:
        return None
    if type(cache) is DiskCache:
        found = {"type": "disk", "path": os.fspath(cache.path)}
    elif type(cache) is RedisCache:
        found = _redis(cache)
    else:
        raise NoForm(
            f"cache {cache!r} cannot be written: a workflow file's config takes DiskCache, "
            "RedisCache and null only"
        )
    if cache.cache_version is not None or cache.strict:
        raise NoForm(
            f"cache {cache!r} cannot be written: its cache_version and strict options have no "
            "key in a workflow file"
        )
    return found


def _redis(cache: RedisCache) -> dict[str, Any]:
    keys = cache._meta.keys  # type: ignore[attr-defined]
    connection = keys.connection
    if keys.ttl_ms is not None:
        raise NoForm(f"cache {cache!r} cannot be written: its ttl has no key in a workflow file")
    if connection.url != connection.safe_url:
        raise NoForm(
            f"cache {cache!r} cannot be written: its url holds a password, which a workflow "
            "file would show to everyone who reads it"
        )
    return {"type": "redis", "url": connection.url, "prefix": keys.prefix}


def _without_defaults(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    parameters = inspect.signature(cls).parameters
    return {key: value for key, value in options.items() if value != parameters[key].default}


_PIPELINE_CONFIG: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("timeout", "timeout_seconds", _timeout),
    ("retries", "max_retries", _retries),
    ("backend", "backend", _backend),
    ("cache", "cache", _cache),
)


def pipeline_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The ``config`` block of a pipeline's aspects (``Pipeline.config``), and why any set
    aspect has no entry; unset aspects and callbacks are not written."""
    block: dict[str, Any] = {}
    problems: list[str] = []
    for aspect, key, form in _PIPELINE_CONFIG:
        value = config[aspect]
        if value is UNSET:
            continue
        try:
            block[key] = form(value)
        except NoForm as exc:
            problems.append(str(exc))
    limits = config.get("limits", UNSET)
    if limits is not UNSET:
        for field in ("max_total_steps", "max_depth", "memory_limit_mb", "memory_warning_mb"):
            value = getattr(limits, field)
            if value is not UNSET:  # null lifts an inherited limit
                block[field] = value
    return block, problems


def gate_problems(member: Any) -> list[str]:
    """Why a node's ``when``, ``outcome`` or ``tolerates`` (set in Python) has no form."""
    problems = []
    if getattr(member, "when", None) is not None:
        problems.append(
            "when= is a Python condition, which a workflow file cannot hold: write the step's "
            "`condition:` in the file instead"
        )
    if getattr(member, "outcome", None) is not None or bool(getattr(member, "tolerates", None)):
        problems.append(
            "outcome= and tolerates= wire a node's outcome in Python; a workflow file reads "
            "`steps.<s>.status` / `.error` and `| default(...)` instead"
        )
    return problems


def json_problem(value: Any) -> str | None:
    """What in ``value`` is not JSON (a tuple, a set, an object, NaN), or ``None``."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return None
    if kind is float:
        return None if math.isfinite(value) else repr(value)
    if kind is list:
        return next((p for item in value if (p := json_problem(item)) is not None), None)
    if kind is dict:
        if any(type(key) is not str for key in value):
            return "a dict with keys that are not strings"
        return next((p for item in value.values() if (p := json_problem(item)) is not None), None)
    return f"a {kind.__name__} ({value!r:.40})"
