"""``Pipeline.to_yaml``: a pipeline written as a workflow file that loads back as itself.

A function node is named by import reference (``"module:name"``): a ``Node`` defined at
module level by its attribute, so its settings come with it, otherwise its function; the
settings a step can add (timeout, retries, ``on_error``) go in its ``config``. A nested
pipeline becomes an inline ``pipeline`` step (``for_each`` when it maps), its mappings the
step's ``inputs``, ``outputs`` and ``over``; explicit configuration becomes ``config``
blocks and bound values input defaults. Callbacks are not written (SPEC 11.9).

Whatever a file cannot say (a lambda, a closure, a value that is not JSON, a setting the
format has no key for) is gathered node by node into one ``NotSerializableError``. The text
is then loaded back and compared with the pipeline, so a file that would load as another
pipeline is never written: the loader may read less than the format can say.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from nestflow.core.config import UNSET
from nestflow.core.limits import Limits
from nestflow.core.nesting import PipelineNode
from nestflow.core.node import Node
from nestflow.errors import NotSerializableError, SpecValidationError
from nestflow.registry import Registry
from nestflow.spec.compile import LIMIT_KEYS
from nestflow.spec.forms import (
    PLAIN_SETTINGS,
    SETTINGS,
    gate_problems,
    json_problem,
    pipeline_config,
    step_config,
)
from nestflow.spec.imports import ReferenceProblem, import_reference
from nestflow.spec.loader import load_yaml
from nestflow.spec.schema import is_identifier

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline

Place = tuple[str, ...]
"""The root pipeline's name, then the node ids down to a nested node."""


def to_yaml(pipeline: Pipeline, path: str | os.PathLike[str] | None = None) -> str:
    """The workflow file of ``pipeline``; with ``path``, also written there (atomically).

    Raises ``NotSerializableError`` listing every node the file could not give back.
    """
    writer = _Writer()
    document = {"version": 1, "workflow": writer.body(pipeline, (pipeline.name,))}
    if writer.problems:
        raise _error(pipeline, "cannot be written as a workflow file", writer.problems)
    text = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=None,
        allow_unicode=True,
        width=100,
    )
    _check_loads_back(pipeline, text)
    if path is not None:
        _write(Path(path), text)
    return text


# --- writing ----------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """The safe dumper, with list items indented under their key as the docs write them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


class _Writer:
    """Builds the workflow data of one pipeline, gathering what it cannot write."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, what: str, place: Place, message: str) -> None:
        self.problems.append(f"{what} `{'.'.join(place)}`: {message}")

    def body(self, pipeline: Pipeline, place: Place) -> dict[str, Any]:
        """A workflow body: name, inputs (bound values as defaults), config and steps."""
        what = "pipeline" if len(place) == 1 else "node"
        self.check_names(pipeline, what, place)
        body: dict[str, Any] = {"name": pipeline.name}
        if pipeline.inputs:
            body["inputs"] = {
                name: self.input(pipeline, name, what, place) for name in pipeline.inputs
            }
        config = self.config(pipeline, what, place)
        if config:
            body["config"] = config
        producers = {
            output: node_id
            for node_id, member in zip(pipeline.node_ids, pipeline.nodes, strict=True)
            for output in member.outputs
        }
        body["steps"] = [
            self.step(pipeline.node(node_id), (*place, node_id), producers)
            for node_id in pipeline.execution_order()
        ]
        return body

    def check_names(self, pipeline: Pipeline, what: str, place: Place) -> None:
        names = (pipeline.name, *pipeline.node_ids, *pipeline.inputs, *pipeline.outputs)
        bad = sorted({name for name in names if not is_identifier(name)})
        if bad:
            self.problem(
                what,
                place,
                f"{', '.join(f'`{n}`' for n in bad)}: a workflow file names pipelines, steps, "
                "inputs and outputs with identifiers that do not start with `_`; rename them",
            )

    def input(self, pipeline: Pipeline, name: str, what: str, place: Place) -> dict[str, Any]:
        """An input's declaration: its declared type, its bound value as the default."""
        spec: dict[str, Any] = {"type": pipeline.input_types.get(name, "any")}
        if name in pipeline.bound_inputs:
            value = pipeline.bound_inputs[name]
            problem = json_problem(value)
            if problem is not None:
                self.problem(
                    what,
                    place,
                    f"the bound value of `{name}` is {problem}, not a JSON value (null, true, "
                    "false, a number, a string, a list, a mapping with string keys), so a "
                    "workflow file could not give it back; pass it when running instead",
                )
            spec["default"] = value
        return spec

    def config(self, pipeline: Pipeline, what: str, place: Place) -> dict[str, Any]:
        """The ``config`` block of the aspects ``pipeline`` sets (callbacks are not written)."""
        config, problems = pipeline_config(pipeline.config)
        for problem in problems:
            self.problem(what, place, problem)
        return config

    def step(self, member: Node | PipelineNode, place: Place, producers: Producers) -> Any:
        if isinstance(member, Node):
            return self.function_step(member, place, producers)
        return self.pipeline_step(member, place, producers)

    def function_step(self, node: Node, place: Place, producers: Producers) -> dict[str, Any]:
        for problem in gate_problems(node):
            self.problem("node", place, problem)
        node_id = place[-1]
        step: dict[str, Any] = {"name": node_id, "type": "function"}
        named = self.function(node, place)
        if named is None:
            return step
        step["function"], config = named
        # A parameter fed by the workflow input of its own name is wired by the loader.
        inputs = {
            param: _reference(source, producers)
            for param, source in node.input_sources.items()
            if source != param or source in producers
        }
        if inputs:
            step["inputs"] = inputs
        if node.output_name != node_id:
            output = node.output_name
            step["output_name"] = output if isinstance(output, str) else list(output)
        if config:
            step["config"] = config
        return step

    def function(self, node: Node, place: Place) -> tuple[str, dict[str, Any]] | None:
        """The reference naming ``node``, with the step config its settings need.

        Of the ways to import the function (module-level nodes wrapping it, then the
        function itself), the one needing the least config wins.
        """
        func = node.func
        why = _unimportable(func)
        if why is None:
            bases = _bases(func)
            fits = [(reference, step_config(node, base)) for reference, base in bases]
            fitting = [(ref, config) for ref, config in fits if isinstance(config, dict)]
            if fitting:
                return min(fitting, key=lambda fit: len(fit[1]))
            why = str(fits[-1][1]) if fits else _not_imported(func)
        self.problem("node", place, why)
        return None

    def pipeline_step(
        self, member: PipelineNode, place: Place, producers: Producers
    ) -> dict[str, Any]:
        for problem in gate_problems(member):
            self.problem("node", place, problem)
        step: dict[str, Any] = {"name": place[-1]}
        if member.map_over:
            step.update(type="for_each", **_loops(member, producers))
        else:
            step["type"] = "pipeline"
        renamed = {
            inner: _reference(outer, producers)
            for outer, inner in member.to_inner.items()
            if outer != inner and outer not in member.map_over
        }
        if renamed and member.map_over:
            self.problem(
                "node",
                place,
                f"input_mapping renames {', '.join(f'`{i}`' for i in renamed)} besides the "
                "mapped lists; this version's loader reads no `inputs` on a for_each step: "
                "rename them inside the mapped pipeline, or nest it once more",
            )
        elif renamed:
            step["inputs"] = renamed
        outputs = self.outputs(member, place)
        if outputs is not None:
            step["outputs"] = outputs
        config: dict[str, Any] = {}
        if member.on_error == "continue":
            config["continue_on_error"] = True
        if member.workspace is not None:
            # Python takes a relative path from the working directory, a workflow file from
            # the project's workspace root: written out whole, it means the same place.
            config["workspace_dir"] = str(Path.cwd() / member.workspace.path)
            config["cleanup_on_success"] = member.workspace.cleanup_on_success
            config["cleanup_on_error"] = member.workspace.cleanup_on_error
        if config:
            step["config"] = config
        step["pipeline"] = self.body(member.pipeline, place)
        return step

    def outputs(self, member: PipelineNode, place: Place) -> list[str] | None:
        """The ``outputs`` of a nested node: the inner outputs it publishes."""
        published = member.to_outer
        renamed = {inner: outer for inner, outer in published.items() if inner != outer}
        everything = len(published) == len(member.pipeline.outputs)
        if member.output_mapping is None or (member.map_over and everything and not renamed):
            return None
        if renamed:
            shown = ", ".join(f"`{inner}` as `{outer}`" for inner, outer in renamed.items())
            self.problem(
                "node",
                place,
                f"output_mapping publishes {shown}; a workflow file writes that as "
                "`outputs: [{path: <inner>, as: <outer>}]`, which this version's loader does "
                "not read yet; publish the inner names, or rename them in the pipeline itself",
            )
        elif member.map_over:
            self.problem(
                "node",
                place,
                "output_mapping publishes some of the outputs of a mapped pipeline; a "
                "for_each step publishes all of them in this version of nestflow",
            )
        return list(published)


Producers = Mapping[str, str]
"""Each value name produced at one level, with the id of the node producing it."""


def _reference(name: str, producers: Producers) -> str:
    """The whole reference the loader wires to ``name`` at one level."""
    producer = producers.get(name)
    if producer is None:
        return f"{{{{inputs.{name}}}}}"
    return f"{{{{steps.{producer}.{name}}}}}"


def _loops(member: PipelineNode, producers: Producers) -> dict[str, Any]:
    """``over`` (with ``as`` for one list in zip mode) and ``mode`` of a mapped node."""
    lists = {member.to_inner[outer]: _reference(outer, producers) for outer in member.map_over}
    if len(lists) == 1 and member.map_mode == "zip":
        ((variable, over),) = lists.items()
        return {"over": over, "as": variable}
    if member.map_mode == "zip":
        return {"over": lists}
    return {"over": lists, "mode": member.map_mode}


# --- functions --------------------------------------------------------------------------------


def _unimportable(func: Callable[..., Any]) -> str | None:
    """Why a workflow file cannot name ``func``, for the kinds of function that never can."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return (
            f"its function {func!r} has no module and qualified name to be imported by; "
            "wrap it in a function defined with def at the top level of a module"
        )
    if getattr(func, "__name__", None) == "<lambda>":
        return (
            "its function is a lambda; a workflow file names functions by import path "
            '("module:name"): define it with def at the top level of a module'
        )
    if module == "__main__":
        return (
            f"its function `{qualname}` is defined in __main__ (a script or notebook), which "
            "a process loading the file cannot import; move it into an importable module"
        )
    cells = getattr(func, "__closure__", None)
    if cells:
        captured = ", ".join(f"`{name}`" for name in func.__code__.co_freevars)
        return (
            f"its function `{qualname}` is a closure over {captured}: the captured values "
            "live in the function object, not in a file; make them parameters (inputs or "
            "bound values) of a top-level function"
        )
    if "<locals>" in qualname:
        return (
            f"its function `{qualname}` is defined inside another function; define it at "
            "the top level of a module"
        )
    return None


def _bases(func: Callable[..., Any]) -> list[tuple[str, dict[str, Any]]]:
    """The references importing ``func``, each with the settings the step then starts from:
    public module-level nodes wrapping it, then the function itself."""
    module_name, qualname = func.__module__, func.__qualname__
    try:  # imports the module when it is not yet, as loading the file would
        plain = import_reference(f"{module_name}:{qualname}") is func
    except ReferenceProblem:
        plain = False
    module = sys.modules.get(module_name)
    found = [
        (f"{module_name}:{attribute}", {key: getattr(value, key) for key in SETTINGS})
        for attribute, value in (vars(module).items() if module is not None else ())
        if isinstance(value, Node) and value.func is func and not attribute.startswith("_")
    ]
    if plain:
        found.append((f"{module_name}:{qualname}", dict(PLAIN_SETTINGS)))
    return found


def _not_imported(func: Callable[..., Any]) -> str:
    reference = f"{func.__module__}:{func.__qualname__}"
    try:
        import_reference(reference)
    except ReferenceProblem as exc:
        return f"its function cannot be named in a workflow file: {exc}"
    return (
        f"`{reference}` imports as another object than its function (decorated or "
        "reassigned); name the function under a public module-level attribute"
    )


# --- loading back -----------------------------------------------------------------------------


def _check_loads_back(pipeline: Pipeline, text: str) -> None:
    """Raise unless ``text`` loads as ``pipeline``: the loader may not read all the format says."""
    try:
        loaded = load_yaml(text, registry=Registry())
    except SpecValidationError as exc:
        problems = [message for *_, message in exc.problems]
        raise _error(
            pipeline, "would be written as a workflow file this version cannot load", problems
        ) from exc
    # The loader starts a workflow from the project's limits: compared here is what the
    # file itself writes.
    written = yaml.safe_load(text)["workflow"].get("config") or {}
    own = {key: written[key] for key in LIMIT_KEYS if key in written}
    loaded = loaded.with_limits(Limits(**own) if own else UNSET)
    differences = _differences(pipeline, loaded, (pipeline.name,))
    if differences:
        raise _error(
            pipeline, "would be written as a workflow file that loads differently", differences
        )


def _differences(original: Pipeline, loaded: Pipeline, place: Place) -> list[str]:
    what = "pipeline" if len(place) == 1 else "node"
    found = _compare(
        f"{what} `{'.'.join(place)}`", _pipeline_facts(original), _pipeline_facts(loaded)
    )
    for node_id, member in zip(original.node_ids, original.nodes, strict=True):
        if node_id not in loaded.node_ids:
            continue  # reported with the node ids
        other = loaded.node(node_id)
        inner = (*place, node_id)
        found += _compare(f"node `{'.'.join(inner)}`", _facts(member), _facts(other))
        if isinstance(member, PipelineNode) and isinstance(other, PipelineNode):
            found += _differences(member.pipeline, other.pipeline, inner)
    return found


def _pipeline_facts(pipeline: Pipeline) -> dict[str, Any]:
    return {
        "name": pipeline.name,
        "inputs": pipeline.inputs,
        "required inputs": pipeline.required_inputs,
        "outputs": pipeline.outputs,
        "node ids": sorted(pipeline.node_ids),
        "bound values": pipeline.bound_inputs,
        "input types": {n: t for n, t in pipeline.input_types.items() if t != "any"},
        "config": pipeline_config(pipeline.config)[0],
    }


def _facts(member: Node | PipelineNode) -> dict[str, Any]:
    if isinstance(member, Node):
        facts = {key: getattr(member, key) for key in SETTINGS}
        return {
            "function": member.func,
            "inputs": member.input_sources,
            "output_name": member.output_name,
            **facts,
        }
    return {
        "inputs": member.to_inner,
        "outputs": member.to_outer,
        "map_over": member.map_over,
        "map_mode": member.map_mode if member.map_over else "zip",
        "on_error": member.on_error,
    }


def _compare(label: str, original: Mapping[str, Any], loaded: Mapping[str, Any]) -> list[str]:
    return [
        f"{label}: {key} {original[key]!r} would load as {loaded.get(key)!r}"
        for key in original
        if original[key] != loaded.get(key)
    ]


def _error(pipeline: Pipeline, what: str, problems: list[str]) -> NotSerializableError:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return NotSerializableError(
        f"Pipeline `{pipeline.name}` {what} ({count}):\n  " + "\n  ".join(problems)
    )


# --- files ------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a temporary file, then a rename."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("x", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
