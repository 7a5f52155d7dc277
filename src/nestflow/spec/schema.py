"""The shape of a workflow file: which keys each part takes, checked before compiling.

Every problem is collected with its place (``Problems``); an unknown key names the closest
valid one. Nothing here imports user code or reads templates: that is the compiler's part.
"""

from __future__ import annotations

import difflib
import keyword
from collections.abc import Mapping
from typing import Any

from nestflow.spec.source import Key, Marks, Where

INPUT_TYPES = ("string", "integer", "number", "boolean", "array", "object", "any")
STEP_TYPES = ("function", "pipeline", "parallel", "for_each", "call")

TOP_KEYS = ("version", "workflow")
WORKFLOW_KEYS = (
    "name", "description", "settings", "inputs", "global_vars", "config", "steps",
)  # fmt: skip
INPUT_KEYS = ("type", "default", "description")
CONFIG_KEYS = (
    "timeout_seconds", "max_retries", "continue_on_error", "backend", "cache",
    "enable_tracing", "trace_metadata", "inherit_context", "max_depth", "max_total_steps",
    "memory_limit_mb", "memory_warning_mb", "workspace_dir", "cleanup_on_success",
    "cleanup_on_error",
)  # fmt: skip
FUNCTION_CONFIG_KEYS = ("timeout_seconds", "max_retries", "continue_on_error")
COMMON_STEP_KEYS = ("name", "type", "description", "condition", "config")
SUB_PIPELINE_KEYS = ("pipeline_file", "pipeline", "pipeline_ref", "inputs", "outputs", "recursive")
STEP_KEYS: dict[str, tuple[str, ...]] = {
    "function": (*COMMON_STEP_KEYS, "function", "inputs", "output_name"),
    "pipeline": (*COMMON_STEP_KEYS, *SUB_PIPELINE_KEYS),
    "parallel": (*COMMON_STEP_KEYS, "steps", "max_parallel"),
    "for_each": (
        *COMMON_STEP_KEYS,
        "over",
        "as",
        "mode",
        "max_parallel",
        "step",
        *SUB_PIPELINE_KEYS,
    ),
    # The fields of pipeline_call (SPEC 12.7); no `config`: a call keeps its own time and
    # its failures are data, so node timeouts, retries and continue_on_error do not apply.
    "call": (
        "name",
        "type",
        "description",
        "condition",
        "url",
        "token",
        "secret",
        "inputs",
        "mode",
        "timeout",
        "output_key",
        "cache",
    ),
}
BACKEND_KEYS = {
    "local": ("type", "node_execution", "map_execution", "max_workers"),
    "dask": (
        "type",
        "address",
        "n_workers",
        "threads_per_worker",
        "resources",
        "node_execution",
        "map_execution",
    ),
}
CACHE_KEYS = {"disk": ("type", "path"), "redis": ("type", "url", "prefix")}


class Problems:
    """Every problem found while loading, with where it was written."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str, int, int, str]] = []
        """(kind, file, line, column, message); kind names the error class to raise."""

    def add(self, where: Where, message: str, kind: str = "spec") -> None:
        found = (kind, where.file, where.line, where.column, message)
        if found not in self.found:  # a file compiled at several depths reports it once
            self.found.append(found)

    def __bool__(self) -> bool:
        return bool(self.found)


def closest(name: str, valid: tuple[str, ...] | list[str]) -> str:
    """`` (did you mean `x`?)`` for the valid name closest to ``name``, or nothing."""
    match = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.6)
    return f" (did you mean `{match[0]}`?)" if match else ""


def is_identifier(name: Any) -> bool:
    """A name a step, input or output may have: a Python identifier, not a keyword, not
    starting with ``_``."""
    return (
        isinstance(name, str)
        and name.isidentifier()
        and not keyword.iskeyword(name)
        and not name.startswith("_")
    )


class Checker:
    """Checks one file's data against the schema, adding to ``problems``."""

    def __init__(self, marks: Marks, problems: Problems) -> None:
        self.marks = marks
        self.problems = problems

    def at(self, path: tuple[Key, ...]) -> Where:
        return self.marks.at(path)

    def problem(self, path: tuple[Key, ...], message: str, kind: str = "spec") -> None:
        self.problems.add(self.at(path), message, kind)

    def keys(self, value: Any, path: tuple[Key, ...], allowed: tuple[str, ...], what: str) -> bool:
        """Whether ``value`` is a mapping; each unknown key is a problem."""
        if not isinstance(value, Mapping):
            self.problem(path, f"{what} must be a mapping of keys to values, got {_kind(value)}")
            return False
        for key in value:
            if key not in allowed:
                self.problem(
                    (*path, key),
                    f"unknown key `{key}` in {what}{closest(str(key), allowed)}; "
                    f"the keys it takes are: {', '.join(allowed)}",
                )
        return True

    def document(self, data: Any) -> bool:
        """The top level: ``version: 1`` and a ``workflow``."""
        if not self.keys(data, (), TOP_KEYS, "the file"):
            return False
        if data.get("version", 1) != 1:
            self.problem(("version",), f"version must be 1, got {data.get('version')!r}")
        if "workflow" not in data:
            self.problem((), "the file has no `workflow:` section")
            return False
        return self.workflow(data["workflow"], ("workflow",))

    def workflow(self, body: Any, path: tuple[Key, ...]) -> bool:
        """A workflow body (a file's ``workflow:`` or an inline ``pipeline:``)."""
        if not self.keys(body, path, WORKFLOW_KEYS, "a workflow"):
            return False
        if not is_identifier(body.get("name")):
            self.problem(
                (*path, "name"),
                f"a workflow needs `name:`, an identifier; got {body.get('name')!r}",
            )
        for section in ("settings", "global_vars"):
            if section in body and not isinstance(body[section], Mapping):
                self.problem((*path, section), f"`{section}` must be a mapping")
        self.inputs(body.get("inputs", {}), (*path, "inputs"))
        if "config" in body:
            self.config(body["config"], (*path, "config"), CONFIG_KEYS)
        steps = body.get("steps")
        if not isinstance(steps, list) or not steps:
            self.problem((*path, "steps"), "a workflow needs `steps:`, a non-empty list")
            return False
        names: dict[str, int] = {}
        for index, step in enumerate(steps):
            self.step(step, (*path, "steps", index), names)
        return True

    def inputs(self, inputs: Any, path: tuple[Key, ...]) -> None:
        if not isinstance(inputs, Mapping):
            self.problem(path, "`inputs` must map input names to {type: ..., default: ...}")
            return
        for name, spec in inputs.items():
            where = (*path, name)
            if not is_identifier(name):
                self.problem(where, f"input name {name!r} is not an identifier")
            if spec is None:
                continue
            if not self.keys(spec, where, INPUT_KEYS, f"input `{name}`"):
                continue
            kind = spec.get("type", "any")
            if kind not in INPUT_TYPES:
                self.problem(
                    (*where, "type"),
                    f"unknown input type {kind!r}{closest(str(kind), INPUT_TYPES)}; the types "
                    f"are: {', '.join(INPUT_TYPES)}",
                )

    def config(self, config: Any, path: tuple[Key, ...], allowed: tuple[str, ...]) -> None:
        if not self.keys(config, path, allowed, "a config block"):
            return
        for key in ("timeout_seconds", "memory_limit_mb", "memory_warning_mb"):
            value = config.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
            ):
                self.problem((*path, key), f"`{key}` must be a positive number, got {value!r}")
        for key in ("max_retries", "max_depth", "max_total_steps"):
            value = config.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                self.problem((*path, key), f"`{key}` must be an integer, got {value!r}")
        for key in ("continue_on_error", "enable_tracing", "inherit_context"):
            value = config.get(key)
            if value is not None and not isinstance(value, bool):
                self.problem((*path, key), f"`{key}` must be true or false, got {value!r}")
        if config.get("backend") is not None:
            self.typed(config["backend"], (*path, "backend"), BACKEND_KEYS, "backend")
        if config.get("cache") is not None:
            self.typed(config["cache"], (*path, "cache"), CACHE_KEYS, "cache")

    def typed(
        self,
        value: Any,
        path: tuple[Key, ...],
        kinds: dict[str, tuple[str, ...]],
        what: str,
    ) -> None:
        if not isinstance(value, Mapping) or value.get("type") not in kinds:
            found = value.get("type") if isinstance(value, Mapping) else value
            self.problem(
                path,
                f"a {what} is a mapping with `type:` one of {', '.join(kinds)}, got {found!r}",
            )
            return
        self.keys(value, path, kinds[value["type"]], f"a {value['type']} {what}")

    def step(self, step: Any, path: tuple[Key, ...], names: dict[str, int]) -> None:
        if not isinstance(step, Mapping):
            self.problem(path, f"a step must be a mapping, got {_kind(step)}")
            return
        kind = step.get("type")
        if kind not in STEP_KEYS:
            self.problem(
                (*path, "type"),
                f"unknown step type {kind!r}{closest(str(kind), STEP_TYPES)}; the types are: "
                f"{', '.join(STEP_TYPES)}",
            )
            return
        self.keys(step, path, STEP_KEYS[kind], f"a {kind} step")
        name = step.get("name")
        if not is_identifier(name):
            self.problem((*path, "name"), f"a step needs `name:`, an identifier; got {name!r}")
        elif name in names:
            self.problem((*path, "name"), f"a second step named `{name}`: step names are unique")
        else:
            names[str(name)] = len(names)
        if "config" in step:
            allowed = FUNCTION_CONFIG_KEYS if kind == "function" else CONFIG_KEYS
            self.config(step["config"], (*path, "config"), allowed)
        if kind == "function" and not isinstance(step.get("function"), str):
            self.problem(
                (*path, "function"),
                'a function step needs `function: "package.module:name"`',
            )
        if kind in ("pipeline", "for_each"):
            self.sub_pipeline(step, path, kind)
        if kind == "parallel":
            self.parallel(step, path)

    def loop(self, step: Mapping[str, Any], path: tuple[Key, ...]) -> None:
        """What a for_each step maps: ``over`` (with ``as`` for one list) and ``mode``."""
        if "over" not in step:
            self.problem(path, "a for_each step needs `over:`, the list (or lists) to map")
        elif isinstance(step["over"], str) and not is_identifier(step.get("as")):
            self.problem(path, "a for_each over one list needs `as:`, the item's name")
        if step.get("mode", "zip") not in ("zip", "product"):
            self.problem((*path, "mode"), "`mode` must be zip or product")

    def sub_pipeline(self, step: Mapping[str, Any], path: tuple[Key, ...], kind: str) -> None:
        given = [k for k in ("pipeline_file", "pipeline", "pipeline_ref") if k in step]
        if kind == "for_each":
            given += ["step"] if "step" in step else []
            self.loop(step, path)
        if len(given) != 1:
            options = "`pipeline_file`, `pipeline`, `pipeline_ref`" + (
                " or `step`" if kind == "for_each" else ""
            )
            found = ", ".join(f"`{g}`" for g in given) or "none"
            self.problem(path, f"a {kind} step needs exactly one of {options}; found {found}")
        if "pipeline" in step:
            self.workflow(step["pipeline"], (*path, "pipeline"))
        if "step" in step:
            inner = step["step"]
            if isinstance(inner, Mapping) and inner.get("type") not in ("function", "pipeline"):
                self.problem(
                    (*path, "step", "type"), "a for_each `step:` is a function or pipeline step"
                )
            elif isinstance(inner, Mapping):
                self.step({"name": step.get("name"), **inner}, (*path, "step"), {})

    def parallel(self, step: Mapping[str, Any], path: tuple[Key, ...]) -> None:
        steps = step.get("steps")
        if not isinstance(steps, list) or not steps:
            self.problem((*path, "steps"), "a parallel step needs `steps:`, a non-empty list")
            return
        names: dict[str, int] = {}
        for index, inner in enumerate(steps):
            if isinstance(inner, Mapping) and inner.get("type") not in ("function", "pipeline"):
                self.problem(
                    (*path, "steps", index, "type"),
                    "the steps of a parallel step are function or pipeline steps",
                )
                continue
            self.step(inner, (*path, "steps", index), names)


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__} ({value!r:.40})"
