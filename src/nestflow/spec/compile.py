"""Compiling checked workflow data into ordinary ``Pipeline`` objects.

One ``Compiler`` per load: it reads files (each once), follows sub-pipelines, and collects
every problem before the loader raises. A step compiles to one node:

* a function step whose inputs are whole references (``{{inputs.x}}``,
  ``{{steps.s.result}}``) or omitted is the imported node itself, rewired with
  ``with_inputs`` and named after the step, so it shares cache entries with the same node
  used from Python (SPEC 11.5);
* a function step with literals or computed templates is a step node that renders its
  arguments and calls the function: its code fingerprint is the function's (``__wrapped__``)
  and its ``cache_version`` digests the templates;
* a pipeline step is the sub-workflow ``as_node``, a for_each step the same with
  ``map_over`` (one name per list), a parallel step a nested pipeline of its sub-steps on
  threads;
* a call step is a ``pipeline_call`` node (``spec.calls``).
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nestflow.core.gates import Condition, is_private, private_name
from nestflow.core.limits import Limits
from nestflow.core.nesting import PipelineNode
from nestflow.core.node import Node, node
from nestflow.core.pipeline import Pipeline
from nestflow.core.workspaces import Workspace
from nestflow.engines.backends import LocalBackend
from nestflow.errors import (
    InvalidOptionError,
    RecursionDepthError,
    SpecValidationError,
    TemplateError,
)
from nestflow.spec import templates
from nestflow.spec.calls import compile_call
from nestflow.spec.imports import ReferenceProblem, import_reference
from nestflow.spec.project import allowed
from nestflow.spec.sandbox import Absent, lookup
from nestflow.spec.schema import Checker, Problems, is_identifier
from nestflow.spec.source import Key, Marks, SourceError, Where, read_file

Path_ = tuple[Key, ...]


@dataclass
class Level:
    """What templates of one workflow body may refer to, while its steps compile."""

    name: str
    inputs: dict[str, Any]
    """Declared inputs: name -> default (``REQUIRED`` when none)."""
    workflow: dict[str, Any]
    global_vars: dict[str, Any]
    steps: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Step name -> the names it publishes."""
    loop: tuple[str, ...] = ()
    """Loop variables of an enclosing for_each (inputs of this level)."""
    fixed: dict[str, Path_] = field(default_factory=dict)
    """Inputs of sub-pipelines given literals (bound), by name: where each was written."""
    workspace: Workspace | None = None
    """The workspace of the workflow's config: the default of its pipeline steps."""
    global_templates: dict[str, templates.Compiled] = field(default_factory=dict)
    """``global_vars`` written as templates (over inputs and workflow keys), compiled."""
    broken: set[str] = field(default_factory=set)
    """Steps that failed to compile (their readers are not reported again)."""
    outcomes: dict[str, Path_] = field(default_factory=dict)
    """Steps whose outcome is read (``.status``, ``.error``, ``| default``): where first."""
    call_errors: dict[str, str] = field(default_factory=dict)
    """Call steps, by name: the ``<output_key>._error`` output their ``.error`` reads."""

    def scope(self) -> templates.Scope:
        return templates.Scope(
            steps=dict(self.steps),
            inputs=tuple(self.inputs),
            global_vars=tuple(self.global_vars),
            workflow=tuple(self.workflow),
            loop_vars=self.loop,
            broken=tuple(self.broken),
        )


REQUIRED: Any = object()

"""``config`` keys of SPEC 11.6 this loader reads but cannot apply yet: each is a problem."""


DEFAULT_MAX_DEPTH = 10
"""``max_depth`` when neither the project nor a workflow sets one (SPEC 11.6)."""

LIMIT_KEYS = ("max_total_steps", "max_depth", "memory_limit_mb", "memory_warning_mb")
"""``config`` keys that set the run's ``Limits``."""


class Compiler:
    """Compiles one root file (or text) and everything it refers to."""

    def __init__(
        self,
        registry: Any = None,
        allowed_dirs: tuple[Path, ...] = (),
        workspace_root: Path | None = None,
        max_depth: int | None = None,
    ) -> None:
        self.problems = Problems()
        self.registry = registry
        self.allowed_dirs = allowed_dirs
        self.workspace_root = workspace_root
        self._depth_caps: list[int] = [] if max_depth is None else [max_depth]
        """The ``max_depth`` values in force where the compiler is (project, workflows)."""
        self._bases: dict[str, tuple[Any, Node]] = {}
        """The node made of each function named by a step, by reference: a function is
        analysed once per load (each step renames and rewires its own copy)."""
        self._inherit: tuple[dict[str, Any], dict[str, Any]] | None = None
        """The parent's ``global_vars`` and workflow keys, for the next body compiled (a
        pipeline step with ``inherit_context: true``)."""
        self._unrolled: dict[tuple[Path, int], Pipeline | None] = {}
        """Workflows compiled again for a recursive step, by file and depth."""
        """Where relative ``workspace_dir`` paths lie (``None``: the working directory)."""
        """Where ``pipeline_file`` targets may be (``Project.pipeline_dirs``); empty: anywhere."""
        self._files: dict[Path, Pipeline | None] = {}
        self._declared: dict[str, set[str]] = {}
        """The inputs each compiled workflow declares, by workflow name."""
        self._chain: list[tuple[str, Where]] = []

    def files_read(self) -> tuple[Path, ...]:
        """Every workflow file compiled in this load, in the order they were read."""
        return tuple(self._files)

    # --- files and bodies ---------------------------------------------------------------------

    def file(self, path: Path, where: Where | None = None) -> Pipeline | None:
        """The pipeline of the file at ``path`` (compiled once per load)."""
        path = path.resolve()
        if path in self._files:
            return self._files[path]
        try:
            data, marks = read_file(path)
        except OSError as exc:
            self.problems.add(
                where or Where(str(path), 1, 1), f"cannot read `{path}`: {exc.strerror or exc}"
            )
            return None
        except SourceError as exc:
            self.problems.add(exc.where, str(exc))
            return None
        self._files[path] = found = self.document(data, marks, path.parent)
        return found

    def document(self, data: Any, marks: Marks, base: Path) -> Pipeline | None:
        """A whole file's data: checked, then its workflow compiled."""
        checker = Checker(marks, self.problems)
        before = len(self.problems.found)
        if not checker.document(data) or len(self.problems.found) > before:
            return None
        return self.body(data["workflow"], ("workflow",), marks, base)

    def body(
        self, body: Mapping[str, Any], path: Path_, marks: Marks, base: Path
    ) -> Pipeline | None:
        """A checked workflow body compiled into a pipeline."""
        name = str(body["name"])
        declared = {
            input_name: REQUIRED if spec is None or "default" not in spec else spec["default"]
            for input_name, spec in (body.get("inputs") or {}).items()
        }
        inherited_vars, inherited_keys = self._inherit or ({}, {})
        self._inherit = None  # for this body only, not the ones it refers to
        workflow = {**inherited_keys, "name": name, **(body.get("settings") or {})}
        own_vars = dict(body.get("global_vars") or {})
        level = Level(name, declared, workflow, {**inherited_vars, **own_vars})
        self._global_templates(level, own_vars, path, marks)
        settings = self.config(body.get("config"), path, marks)
        level.workspace = self._workspace(body, path, marks, None)
        cap = (body.get("config") or {}).get("max_depth")
        capped = isinstance(cap, int) and not isinstance(cap, bool)
        if isinstance(cap, int) and capped:
            self._depth_caps.append(cap)
        try:
            return self._body_steps(body, path, marks, base, level, settings, declared, name)
        finally:
            if capped:
                self._depth_caps.pop()

    def _body_steps(
        self,
        body: Mapping[str, Any],
        path: Path_,
        marks: Marks,
        base: Path,
        level: Level,
        settings: dict[str, Any],
        declared: dict[str, Any],
        name: str,
    ) -> Pipeline | None:
        """The steps of a workflow body compiled into its pipeline."""
        nodes: list[Any] = []
        made_by: dict[str, int] = {}
        compiled_steps = 0
        for index, step in enumerate(body["steps"]):
            where_path = (*path, "steps", index)
            made = self.step(step, where_path, marks, base, level)
            if made is None:
                level.broken.add(str(step["name"]))
                continue
            compiled_steps += 1
            member, helpers = _split(made, str(step["name"]))
            nodes.extend(helpers)
            made_by[str(step["name"])] = len(nodes)
            nodes.append(member)
        if compiled_steps != len(body["steps"]) or not self._fixed_apart(level, marks):
            return None
        if not self._outcomes(level, nodes, made_by, marks):
            return None
        try:
            pipeline = Pipeline(nodes, name=name, **settings)
            pipeline = self._traced(pipeline, body.get("config"), path, marks, level)
            # A declared input no step reads is accepted, and its default is not bound.
            defaults = {
                k: v for k, v in declared.items() if v is not REQUIRED and k in pipeline.inputs
            }
            self._declared[pipeline.name] = set(declared)
            if defaults:
                pipeline = pipeline.bind(**defaults)
            # Every declared input is part of the interface, read by a step or not.
            types = {
                input_name: (spec or {}).get("type", "any")
                for input_name, spec in (body.get("inputs") or {}).items()
                if (spec or {}).get("type", "any") != "any" or input_name not in pipeline.inputs
            }
            return pipeline.with_input_types(types, accept_unused=True) if types else pipeline
        except Exception as exc:  # a graph problem nestflow itself reports (duplicates, cycles)
            self.problems.add(marks.at(path), f"{type(exc).__name__}: {exc}")
            return None

    def _clash(
        self,
        variables: tuple[str, ...],
        members: list[Any],
        step: Mapping[str, Any],
        path: Path_,
        marks: Marks,
    ) -> bool:
        """Whether a loop variable has the name of a value the mapped step publishes (a
        problem: the step would consume its own output)."""
        published = {o for m in members for o in m.outputs}
        clashes = [v for v in variables if v in published]
        for clash in clashes:
            self.problems.add(
                marks.at((*path, "as" if "as" in step else "over")),
                f"the loop variable `{clash}` has the name of a value the mapped step "
                f"publishes; name the loop variable differently (as: {clash}_item)",
            )
        return bool(clashes)

    def _pipeline(self, members: list[Any], name: str, path: Path_, marks: Marks) -> Any:
        """``Pipeline(members)``, or ``None`` with the problem nestflow reports about it."""
        try:
            return Pipeline(members, name=name)
        except Exception as exc:  # a graph problem nestflow itself explains
            self.problems.add(marks.at(path), f"{type(exc).__name__}: {exc}")
            return None

    def _outcomes(
        self, level: Level, nodes: list[Any], made_by: dict[str, int], marks: Marks
    ) -> bool:
        """Give each step whose outcome is read (``.status``, ``.error``, ``| default``)
        its outcome, under the private name its readers are wired to."""
        for step_name, where in level.outcomes.items():
            index = made_by.get(step_name)
            if index is None:
                self.problems.add(
                    marks.at(where),
                    f"`.status`, `.error` and `| default` of step `{step_name}` can only be "
                    "read in the workflow that runs it, not from outside its parallel or "
                    "for_each step",
                    kind="template",
                )
                return False
            nodes[index] = nodes[index].with_options(outcome=outcome_name(step_name))
        return True

    def _fixed_apart(self, level: Level, marks: Marks) -> bool:
        """Whether every literal given to a sub-pipeline keeps its name to itself: a bound
        input is still an input of the nested step, so a workflow input or a step output of
        the same name would take its place."""
        published = {name for names in level.steps.values() for name in names}
        clashes = [
            (name, where)
            for name, where in level.fixed.items()
            if name in level.inputs or name in published
        ]
        for name, where in clashes:
            what = "a workflow input" if name in level.inputs else "a step's output"
            self.problems.add(
                marks.at(where),
                f"the literal given to `{name}` would be replaced by {what} of the same name; "
                f'pass it as a reference instead ("{{{{inputs.{name}}}}}"), or rename one',
            )
        return not clashes

    # --- steps --------------------------------------------------------------------------------

    def step(
        self, step: Mapping[str, Any], path: Path_, marks: Marks, base: Path, level: Level
    ) -> Any:
        if step.get("recursive") and "outputs" not in step:
            self.problems.add(
                marks.at((*path, "recursive")),
                "a recursive step lists the outputs it publishes (`outputs: [...]`), so its "
                "interface is known without expanding it",
            )
            return None
        condition = None
        if "condition" in step:  # read before the step is known: it cannot refer to itself
            condition = self._condition(step, path, marks, level)
            if condition is None:
                return None
        made = self._made(step, path, marks, base, level)
        if made is None or condition is None:
            return made
        member, helpers = _split(made, str(step["name"]))
        when, tolerated = condition
        strict = set(member.inputs) - set(member.tolerates)
        gated = member.with_options(
            when=when, tolerates=tuple(member.tolerates | (tolerated - strict))
        )
        if not helpers:
            return gated
        # The helpers computing the step's inputs or outputs run only when the step does.
        return [*(h.with_options(when=when) for h in helpers), gated]

    def _made(
        self, step: Mapping[str, Any], path: Path_, marks: Marks, base: Path, level: Level
    ) -> Any:
        """The node(s) of a step of any type, without its condition."""
        kind = step["type"]
        if kind == "function":
            return self.function(step, path, marks, level)
        if kind == "pipeline":
            return self.pipeline_step(step, path, marks, base, level)
        if kind == "for_each":
            return self.for_each(step, path, marks, base, level)
        if kind == "parallel":
            return self.parallel(step, path, marks, base, level)
        if kind == "call":
            return compile_call(
                step,
                path,
                marks,
                level,
                self.problems,
                lambda value, where: self._template(value, where, marks, level),
            )
        self.problems.add(
            marks.at((*path, "type")),
            f"`{kind}` steps are not supported by this version of nestflow yet",
        )
        return None

    def _condition(
        self, step: Mapping[str, Any], path: Path_, marks: Marks, level: Level
    ) -> tuple[Condition, set[str]] | None:
        """A step's ``condition``: when it runs, and the names it reads that may be missing."""
        where = (*path, "condition")
        compiled = self._template(step["condition"], where, marks, level)
        if compiled is None:
            return None
        if not templates.is_expression(compiled):
            self.problems.add(
                marks.at(where),
                "a condition is one template that gives a boolean, such as "
                '"{{ steps.score.result > 0.5 }}"; got ' + repr(step["condition"]),
                kind="template",
            )
            return None
        reads = _reads([compiled], level, where)
        inputs = tuple(sorted(reads.names))
        steps, constants = _readable(level)
        name = str(step["name"])

        def test(*values: Any) -> bool:
            context = _context(dict(zip(inputs, values, strict=True)), steps, constants)
            return bool(compiled.render(context, name))

        return Condition(test, inputs, str(compiled.source)), reads.tolerated

    def function(
        self, step: Mapping[str, Any], path: Path_, marks: Marks, level: Level
    ) -> Node | None:
        name = str(step["name"])
        before = len(self.problems.found)
        base = self._imported(step, path, marks)
        if base is None:
            return None
        outputs = self._outputs(step, base, name)
        wires, rendered = self._arguments(step, path, marks, level, base)
        if len(self.problems.found) > before:
            return None
        options = self._node_options(step.get("config"))
        if not rendered:
            made = base.with_inputs(wires) if wires else base
            made = made.with_options(name=name, output_name=outputs, **options)
        else:
            made = self._step_node(step, base, name, outputs, wires, rendered, level, options)
        level.steps[name] = made.outputs
        return made

    def _imported(self, step: Mapping[str, Any], path: Path_, marks: Marks) -> Node | None:
        """The node a function step names: a ``Node`` as it is, a function made into one."""
        where = marks.at((*path, "function"))
        try:
            target = import_reference(str(step["function"]))
        except ReferenceProblem as exc:
            self.problems.add(where, str(exc), kind="import")
            return None
        if isinstance(target, Node):
            return target
        if not callable(target):
            self.problems.add(
                where,
                f"`{step['function']}` is a {type(target).__name__}, not a function",
                kind="import",
            )
            return None
        found = self._bases.get(str(step["function"]))
        if found is not None and found[0] is target:  # analysed once per load
            return found[1]
        try:
            made: Node = node(target, output_name=str(step["name"]))
            self._bases[str(step["function"])] = (target, made)
            return made
        except Exception as exc:  # nestflow's own explanation of why it cannot be a node
            self.problems.add(where, f"{type(exc).__name__}: {exc}", kind="import")
            return None

    def _arguments(
        self, step: Mapping[str, Any], path: Path_, marks: Marks, level: Level, base: Node
    ) -> tuple[dict[str, str], dict[str, templates.Compiled]]:
        """Each parameter's source: a value name wired to it, or a template rendered for it."""
        given = dict(step.get("inputs") or {})
        for param in given:
            if param not in base.params:
                self.problems.add(
                    marks.at((*path, "inputs", param)),
                    f"function `{step['function']}` has no parameter `{param}`; its "
                    f"parameters are: {', '.join(base.params) or '(none)'}",
                )
        wires: dict[str, str] = {}
        rendered: dict[str, templates.Compiled] = {}
        for param in base.params:
            if param in given:
                compiled = self._template(given[param], (*path, "inputs", param), marks, level)
                wired = None if compiled is None else self._wire(compiled, level)
                if wired is not None:
                    wires[param] = wired
                elif compiled is not None:
                    rendered[param] = compiled
            elif param in level.inputs or param in level.loop:
                wires[param] = param
            elif param not in base.defaults:
                self.problems.add(
                    marks.at((*path, "inputs")),
                    f"parameter `{param}` of `{step['function']}` gets no value: give it in "
                    f"`inputs:` of step `{step['name']}`, or declare a workflow input `{param}`",
                )
        return wires, rendered

    def _outputs(self, step: Mapping[str, Any], base: Node, name: str) -> str | tuple[str, ...]:
        chosen = step.get("output_name")
        if chosen is not None:
            return chosen if isinstance(chosen, str) else tuple(chosen)
        if base.outputs == (name,):  # a referenced node named as its output: unchanged
            return name
        return name if len(base.outputs) == 1 else base.outputs

    def _step_node(
        self,
        step: Mapping[str, Any],
        base: Node,
        name: str,
        outputs: str | tuple[str, ...],
        wires: dict[str, str],
        rendered: dict[str, templates.Compiled],
        level: Level,
        options: dict[str, Any],
    ) -> Node:
        """A node that renders the templated arguments, then calls the function."""
        function = base.func
        reads = _reads(rendered.values(), level, ())
        strict = set(wires.values())
        needs = sorted(strict | reads.names)
        steps, constants = _readable(level)

        def call_step(values: dict[str, Any]) -> Any:
            context = _context(values, steps, constants)
            kwargs = {param: values[wire] for param, wire in wires.items()}
            kwargs.update(
                (param, compiled.render(context, name)) for param, compiled in rendered.items()
            )
            return function(**kwargs)

        made, sources = _taking(call_step, needs, function, name)
        written = repr(sorted((p, c.source) for p, c in rendered.items()))
        version = hashlib.sha256(f"{step['function']}|{written}".encode()).hexdigest()[:16]
        return Node(
            made,
            output_name=outputs,
            name=name,
            cache_version=version,
            input_sources=sources,
            tolerates=tuple(reads.tolerated - strict),
            **{k: v for k, v in options.items() if k != "output_name"},
        )

    def pipeline_step(
        self, step: Mapping[str, Any], path: Path_, marks: Marks, base: Path, level: Level
    ) -> Any:
        name = str(step["name"])
        inner = self._sub_pipeline(step, path, marks, base, level)
        if inner is None:
            return None
        adapted = self._adapted(inner, step, path, marks, level)
        if adapted is None:
            return None
        inner, input_mapping, output_mapping, helpers = adapted
        made = inner.as_node(
            name=name,
            input_mapping=input_mapping or None,
            output_mapping=output_mapping or None,
            on_error="continue" if _continues(step) else "raise",
            workspace=self._workspace(step, path, marks, level),
        )
        level.steps[name] = _published(made, helpers)
        return [*helpers, made] if helpers else made

    def for_each(
        self, step: Mapping[str, Any], path: Path_, marks: Marks, base: Path, level: Level
    ) -> Any:
        name = str(step["name"])
        loops = self._loops(step, path, marks, level)
        if loops is None:
            return None
        variables = tuple(variable for variable, _ in loops)
        inner_level = Level(
            name, dict(level.inputs), level.workflow, level.global_vars, {},
            (*level.loop, *variables),
        )  # fmt: skip
        inner_level.steps = dict(level.steps)
        inner_level.call_errors = dict(level.call_errors)
        inner: Pipeline | None
        if "step" in step:
            inner_step = {"name": name, **step["step"]}
            made = self.step(inner_step, (*path, "step"), marks, base, inner_level)
            if made is None or self._clash(variables, _members([made]), step, path, marks):
                return None
            inner = self._pipeline(_members([made]), name, path, marks)
        else:
            inner = self._sub_pipeline(step, path, marks, base, level)
            if inner is not None and self._clash(variables, [inner], step, path, marks):
                return None
        if inner is None:
            return None
        adapted = self._adapted(inner, step, path, marks, level)
        if adapted is None:
            return None
        inner, given, outputs, helpers = adapted
        unused = [v for v in variables if v not in inner.inputs]
        if unused:
            self.problems.add(
                marks.at((*path, "as" if "as" in step else "over")),
                f"the loop variable(s) {', '.join(f'`{v}`' for v in unused)} are not used by "
                "the step it maps",
            )
            return None
        read = tuple(f for f in LOOP_FIELDS if loop_name(f) in inner.inputs)
        input_mapping, map_over, mode, helpers = _mapping(
            name, loops, step.get("mode", "zip"), read, helpers
        )
        input_mapping.update(given)
        for wanted in inner.inputs:
            if wanted not in variables and wanted in level.inputs:
                input_mapping.setdefault(wanted, wanted)
        made = inner.as_node(
            name=name,
            map_over=map_over,
            map_mode="product" if mode == "product" else "zip",
            input_mapping={k: v for k, v in input_mapping.items() if k != v} or None,
            output_mapping=outputs or None,
            on_error="continue" if _continues(step) else "raise",
            workspace=self._workspace(step, path, marks, level),
        )
        level.steps[name] = _published(made, helpers)
        level.outcomes.update(
            (s, w) for s, w in inner_level.outcomes.items() if s not in level.outcomes
        )
        return [*helpers, made] if helpers else made

    def _loops(
        self, step: Mapping[str, Any], path: Path_, marks: Marks, level: Level
    ) -> list[tuple[str, str]] | None:
        """(loop variable, the value name of its list) for each list a for_each maps."""
        over = step["over"]
        written = {str(step["as"]): over} if isinstance(over, str) else dict(over)
        loops: list[tuple[str, str]] = []
        for variable, value in written.items():
            where = (*path, "over") if isinstance(over, str) else (*path, "over", variable)
            compiled = self._template(value, where, marks, level)
            if compiled is None:
                return None
            collection = self._wire(compiled, level)
            if not is_identifier(variable) or collection is None:
                deeper = (
                    " (a path into a value is not supported here: publish the list from a "
                    "step first)"
                    if compiled is not None and compiled.whole_reference is not None
                    else ""
                )
                self.problems.add(
                    marks.at(where),
                    f"loop variable `{variable}` needs a list given as one whole reference, "
                    f'such as "{{{{inputs.docs}}}}" or "{{{{steps.split.result}}}}"{deeper}',
                )
                return None
            if any(collection == known for _, known in loops):
                self.problems.add(
                    marks.at(where), f"the list `{collection}` is mapped twice: map each list once"
                )
                return None
            loops.append((variable, collection))
        return loops

    def parallel(
        self, step: Mapping[str, Any], path: Path_, marks: Marks, base: Path, level: Level
    ) -> Pipeline | PipelineNode | None:
        """Sub-steps in a nested pipeline whose nodes run side by side (threads, at most
        ``max_parallel`` at once), unless the step's config sets a backend."""
        name = str(step["name"])
        made = [
            self.step(sub, (*path, "steps", index), marks, base, level)
            for index, sub in enumerate(step["steps"])
        ]
        if any(m is None for m in made):
            return None
        config = self.config(step.get("config"), path, marks)
        width = int(step.get("max_parallel") or len(made))
        config.setdefault("backend", LocalBackend(node_execution="threaded", max_workers=width))
        try:
            inner = Pipeline(_members(made), name=name, **config)
            inner = self._traced(inner, step.get("config"), path, marks, level)
        except Exception as exc:
            self.problems.add(marks.at(path), f"{type(exc).__name__}: {exc}")
            return None
        level.steps[name] = tuple(inner.outputs)
        workspace = self._workspace(step, path, marks, level)
        return inner if workspace is None else inner.as_node(workspace=workspace)

    # --- pieces -------------------------------------------------------------------------------

    def _sub_pipeline(
        self, step: Mapping[str, Any], path: Path_, marks: Marks, base: Path, level: Level
    ) -> Pipeline | None:
        """The pipeline a pipeline (or for_each) step runs, compiled with its parent's
        ``global_vars`` and workflow keys when the step inherits them."""
        if (step.get("config") or {}).get("inherit_context"):
            self._inherit = (dict(level.global_vars), dict(level.workflow))
        try:
            return self._sub_pipeline_of(step, path, marks, base)
        finally:
            self._inherit = None

    def _sub_pipeline_of(
        self, step: Mapping[str, Any], path: Path_, marks: Marks, base: Path
    ) -> Pipeline | None:
        if "pipeline_file" in step:
            target = (base / str(step["pipeline_file"])).resolve()
            where = marks.at((*path, "pipeline_file"))
            if self.allowed_dirs and not allowed(target, self.allowed_dirs):
                dirs = ", ".join(f"`{d}`" for d in self.allowed_dirs)
                self.problems.add(
                    where,
                    f"`{step['pipeline_file']}` resolves to `{target}`, outside the folders "
                    f"pipeline files may come from ({dirs}); move the file there, or add its "
                    "folder to `allowed_pipeline_dirs` of the project (nestflow.toml)",
                )
                return None
            return self._follow(target, where, str(step["name"]), step)
        if "pipeline" in step:
            return self.body(step["pipeline"], (*path, "pipeline"), marks, base)
        reference = str(step["pipeline_ref"])
        if self.registry is None:
            self.problems.add(
                marks.at((*path, "pipeline_ref")),
                f"`pipeline_ref: {reference}` needs a registry; none was given",
            )
            return None
        where = marks.at((*path, "pipeline_ref"))
        try:
            found = self.registry.resolve(reference, at=(where.file, where.line, where.column))
        except SpecValidationError as exc:
            for file, line, column, message in exc.problems:
                self.problems.add(Where(file, line, column), message)
            return None
        if isinstance(found, Pipeline):
            if self._inherit is not None:
                self.problems.add(
                    where,
                    f"`{reference}` is a pipeline registered from Python: it has no templates "
                    "to give the parent's context to; remove `inherit_context`",
                )
            return found
        return self._follow(
            Path(found).resolve(), marks.at((*path, "pipeline_ref")), reference, step
        )

    def _follow(
        self, target: Path, where: Where, label: str, step: Mapping[str, Any]
    ) -> Pipeline | None:
        """A referenced file, unless it is already being compiled (a cycle, or recursion when
        the step says so)."""
        chain = [str(p) for p, _ in self._chain]
        if str(target) in chain and step.get("recursive"):
            return self._recursion(target, where, step)
        if str(target) in chain:
            steps = [*self._chain, (str(target), where)]
            names = " -> ".join(Path(p).stem for p, _ in steps)
            lines = [f"circular pipeline reference: {names}"]
            for number, (p, at) in enumerate(steps, 1):
                note = "  <- already in the chain" if number == len(steps) else ""
                lines.append(f"  {number}. {Path(p).stem}  ({at}, depth {number - 1}){note}")
            self.problems.add(where, "\n".join(lines), kind="cycle")
            return None
        self._chain.append((str(target), where))
        try:
            if self._inherit is not None:  # compiled with the parent's context: its own copy
                return self._compiled_again(target, where)
            return self.file(target, where)
        finally:
            self._chain.pop()

    def _recursion(self, target: Path, where: Where, step: Mapping[str, Any]) -> Pipeline | None:
        """A workflow that refers to itself, compiled once more one level down, as far as
        ``max_depth`` allows; below that, a stand-in that fails the run if it is reached
        (the run's own depth guard stops it on entering that level first)."""
        depth = len(self._chain)
        own = (step.get("config") or {}).get("max_depth")
        cap = min([*self._depth_caps, *([own] if isinstance(own, int) else [])], default=None)
        if cap is None:
            cap = DEFAULT_MAX_DEPTH
        key = (target, depth)
        if key in self._unrolled:
            return self._unrolled[key]
        if depth > cap:
            found = self._too_deep(target, step, depth, cap)
        else:
            self._chain.append((str(target), where))
            try:
                found = self._compiled_again(target, where)
            finally:
                self._chain.pop()
        self._unrolled[key] = found
        return found

    def _compiled_again(self, target: Path, where: Where) -> Pipeline | None:
        """The file at ``target`` compiled anew (not the one compiled for another depth)."""
        try:
            data, marks = read_file(target)
        except (OSError, SourceError) as exc:
            self.problems.add(where, f"cannot read `{target}`: {exc}")
            return None
        return self.document(data, marks, target.parent)

    def _too_deep(
        self, target: Path, step: Mapping[str, Any], depth: int, cap: int
    ) -> Pipeline | None:
        """The stand-in for a recursive workflow below ``max_depth``: its interface, and a
        node that fails with ``RecursionDepthError`` when run."""
        try:
            data, _ = read_file(target)
            body = data["workflow"]
            declared = dict(body.get("inputs") or {})
            name = str(body["name"])
        except Exception:
            return None
        chain = " -> ".join(Path(p).stem for p, _ in [*self._chain, (str(target), None)])
        outputs = tuple(
            dict.fromkeys(
                entry if isinstance(entry, str) else str(entry.get("path", "")).split(".")[0]
                for entry in step.get("outputs") or ()
            )
        )

        def stop(values: dict[str, Any]) -> Any:
            raise RecursionDepthError(
                f"nesting deeper than max_depth {cap}: {chain} (depth {depth}). Raise "
                "max_depth in the workflow's config if the data is this deep."
            )

        taking, _ = _taking(stop, sorted(declared), stop, name)
        defaults = {
            k: v["default"]
            for k, v in declared.items()
            if isinstance(v, Mapping) and "default" in v
        }
        try:
            stand_in = Node(
                taking, name=name, output_name=outputs if len(outputs) > 1 else outputs[0]
            )
            return (
                Pipeline([stand_in], name=name).bind(**defaults)
                if defaults
                else Pipeline([stand_in], name=name)
            )
        except Exception:
            return None

    def _adapted(
        self, inner: Pipeline, step: Mapping[str, Any], path: Path_, marks: Marks, level: Level
    ) -> tuple[Pipeline, dict[str, str], dict[str, str], list[Node]] | None:
        """A sub-pipeline as a step uses it: its config applied, literal inputs bound; with
        the step's input mapping (outer name -> inner name), output mapping, and the private
        nodes computing its templated inputs and the values its outputs' paths lead to."""
        inner = self._configured(inner, step.get("config"), path, marks, level)
        mapping, literals, computed = self._sub_inputs(step, path, marks, level, inner)
        if literals:
            inner = inner.bind(**literals)
            for literal in literals:
                level.fixed.setdefault(literal, (*path, "inputs", literal))
        published = self._sub_outputs(step, path, marks, inner)
        if published is None:
            return None
        outputs, extracts = published
        helpers = []
        if computed:
            adapter = _adapter(str(step["name"]), computed, level, (*path, "inputs"))
            mapping.update(zip(adapter.outputs, computed, strict=True))
            helpers.append(adapter)
        if extracts:
            mapped = step["type"] == "for_each"
            helpers.append(_extractor(str(step["name"]), extracts, mapped))
        return inner, mapping, outputs, helpers

    def _configured(
        self, inner: Pipeline, config: Any, path: Path_, marks: Marks, level: Level
    ) -> Pipeline:
        """A sub-pipeline with the step's own ``config`` (timeout, retries, backend, cache,
        limits, tracing)."""
        inner = self._traced(inner, config, path, marks, level)
        settings = self.config(config, path, marks)
        if "timeout" in settings:
            inner = inner.with_timeout(settings["timeout"])
        if "retries" in settings:
            inner = inner.with_retries(settings["retries"])
        if "backend" in settings:
            inner = inner.with_backend(settings["backend"])
        if "cache" in settings:
            inner = inner.with_cache(settings["cache"])
        if "limits" in settings:
            inner = inner.with_limits(settings["limits"])
        return inner

    def _sub_inputs(
        self,
        step: Mapping[str, Any],
        path: Path_,
        marks: Marks,
        level: Level,
        inner: Pipeline,
    ) -> tuple[dict[str, str], dict[str, Any], dict[str, templates.Compiled]]:
        """The step's inputs: wired (outer name -> inner name), literals, and templates
        computed for it by a node of its own."""
        mapping: dict[str, str] = {}
        literals: dict[str, Any] = {}
        computed: dict[str, templates.Compiled] = {}
        for inner_name, value in (step.get("inputs") or {}).items():
            where = (*path, "inputs", inner_name)
            if inner_name not in inner.inputs:
                if inner_name in self._declared.get(inner.name, ()):
                    continue  # declared by the sub-workflow, read by none of its steps
                self.problems.add(
                    marks.at(where),
                    f"pipeline `{inner.name}` has no input `{inner_name}`; its inputs are: "
                    f"{', '.join(inner.inputs) or '(none)'}",
                )
                continue
            compiled = self._template(value, where, marks, level)
            if compiled is None:
                continue
            if compiled.is_literal:
                literals[inner_name] = compiled.render({}, str(step["name"]))
                continue
            wired = self._wire(compiled, level)
            if wired is None:
                computed[inner_name] = compiled
            elif wired != inner_name:
                mapping[wired] = inner_name
        return mapping, literals, computed

    def _sub_outputs(
        self, step: Mapping[str, Any], path: Path_, marks: Marks, inner: Pipeline
    ) -> tuple[dict[str, str], list[Extract]] | None:
        """What a pipeline step publishes: inner outputs under outer names (inner -> outer),
        and the values found by walking a path into one (``{path: a.b, as: name}``)."""
        chosen = step.get("outputs")
        if chosen is None:
            return {}, []
        mapping: dict[str, str] = {}
        walked: list[tuple[str, tuple[Key, ...], str, Path_]] = []
        for index, entry in enumerate(chosen):
            where = (*path, "outputs", index)
            found = _output_entry(entry)
            if found is None:
                self.problems.add(
                    marks.at(where),
                    "an output is an inner output's name, or {path: name.field, as: new_name} "
                    f"(names and list positions joined by '.'); got {entry!r}",
                )
                return None
            inner_name, rest, outer_name = found
            if inner_name not in inner.outputs:
                self.problems.add(
                    marks.at(where),
                    f"pipeline `{inner.name}` has no output `{inner_name}`; its outputs are: "
                    f"{', '.join(inner.outputs)}",
                )
                return None
            if rest:
                walked.append((inner_name, rest, outer_name, where))
            else:
                mapping[inner_name] = outer_name
        extracts = []
        for inner_name, rest, outer_name, where in walked:
            # The value walked into is published privately unless the step publishes it too.
            source = mapping.setdefault(inner_name, private_name(str(step["name"]), inner_name))
            written = ".".join(str(k) for k in (inner_name, *rest))
            extracts.append(Extract(source, rest, outer_name, written, marks.at(where)))
        return mapping, extracts

    def _template(
        self, value: Any, path: Path_, marks: Marks, level: Level
    ) -> templates.Compiled | None:
        try:
            return templates.compile_value(
                value, level.scope(), lambda inside: marks.at((*path, *inside))
            )
        except TemplateError as exc:
            where = marks.at(path)
            for problem in exc.problems or [(where.file, where.line, where.column, str(exc))]:
                self.problems.add(Where(*problem[:3]), problem[3], kind="template")
            return None

    @staticmethod
    def _wire(compiled: templates.Compiled, level: Level) -> str | None:
        """The value name a whole reference is wired to, or ``None`` (it needs rendering)."""
        reference = compiled.whole_reference
        if reference is None:
            return None
        root, rest = reference.root, reference.path
        if root == "inputs" and len(rest) == 1:
            return str(rest[0])
        if root in level.loop and not rest:
            return str(root)
        if root == "steps" and len(rest) == 2:
            step, part = rest
            published = level.steps.get(str(step), ())
            if part == "error" and str(step) in level.call_errors:
                return level.call_errors[str(step)]
            if part == "result" and len(published) == 1:
                return published[0]
            if part in published:
                return str(part)
        return None

    def config(self, config: Any, path: Path_, marks: Marks) -> dict[str, Any]:
        """``Pipeline`` keywords for a workflow (or pipeline step) config block."""
        if not config:
            return {}
        found: dict[str, Any] = {}
        if "timeout_seconds" in config:
            found["timeout"] = config["timeout_seconds"]
        if "max_retries" in config:
            found["retries"] = config["max_retries"]
        if "backend" in config:
            found["backend"] = _backend(config["backend"])
        if "cache" in config:
            found["cache"] = _cache(config["cache"])
        limits = {key: config[key] for key in LIMIT_KEYS if key in config}
        if limits:
            found["limits"] = Limits(**limits)
        return found

    def _global_templates(
        self, level: Level, own: dict[str, Any], path: Path_, marks: Marks
    ) -> None:
        """Compile the ``global_vars`` written as templates: they read inputs and workflow
        keys (not steps or other global variables) and are rendered where they are read."""
        scope = Level(level.name, level.inputs, level.workflow, {})
        for key, value in own.items():
            where = (*path, "global_vars", key)
            compiled = self._template(value, where, marks, scope)
            if compiled is not None and not compiled.is_literal:
                level.global_templates[key] = compiled

    def _traced(
        self, pipeline: Pipeline, config: Any, path: Path_, marks: Marks, level: Level
    ) -> Pipeline:
        """``pipeline`` with a ``TelemetryCallback`` added to the callbacks it inherits when
        the config says ``enable_tracing``; ``trace_metadata`` becomes its spans' attributes
        (rendered when the file loads: its templates read ``workflow`` and ``global_vars``)."""
        if not config or not config.get("enable_tracing"):
            if config and "trace_metadata" in config:
                self.problems.add(
                    marks.at((*path, "config", "trace_metadata")),
                    "`trace_metadata` describes the spans of `enable_tracing: true`; set it too",
                )
            return pipeline
        where = (*path, "config", "trace_metadata")
        constant = Level(level.name, {}, level.workflow, level.global_vars)
        compiled = self._template(config.get("trace_metadata") or {}, where, marks, constant)
        if compiled is None:
            self.problems.add(
                marks.at(where),
                "trace_metadata is rendered when the file loads: its templates read "
                "`workflow` and `global_vars` only",
                kind="template",
            )
            return pipeline
        _, constants = _readable(level)
        try:
            from nestflow.callbacks.telemetry import TelemetryCallback

            attributes = compiled.render(dict(constants), str(level.name))
            tracing = TelemetryCallback(attributes=attributes)
        except ImportError as exc:
            self.problems.add(marks.at((*path, "config", "enable_tracing")), str(exc))
            return pipeline
        return pipeline.with_callbacks([tracing], add=True)

    def _workspace(
        self, owner: Mapping[str, Any], path: Path_, marks: Marks, level: Level | None
    ) -> Workspace | None:
        """The workspace ``config`` of a pipeline step (or a workflow), else the default of
        the workflow it is in; relative paths lie under the project's workspace root."""
        config = owner.get("config") or {}
        if "workspace_dir" not in config:
            for key in ("cleanup_on_success", "cleanup_on_error"):
                if key in config:
                    self.problems.add(
                        marks.at((*path, "config", key)),
                        f"`{key}` applies to a workspace: set `workspace_dir` beside it",
                    )
            return None if level is None else level.workspace
        written = str(config["workspace_dir"])
        root = self.workspace_root
        where = written if root is None or Path(written).is_absolute() else str(root / written)
        try:
            return Workspace(
                where,
                cleanup_on_success=bool(config.get("cleanup_on_success", True)),
                cleanup_on_error=bool(config.get("cleanup_on_error", False)),
            )
        except InvalidOptionError as exc:
            self.problems.add(marks.at((*path, "config", "workspace_dir")), str(exc))
            return None

    @staticmethod
    def _node_options(config: Any) -> dict[str, Any]:
        if not config:
            return {}
        found: dict[str, Any] = {}
        if "timeout_seconds" in config:
            found["timeout"] = config["timeout_seconds"]
        if "max_retries" in config:
            found["retries"] = config["max_retries"]
        if config.get("continue_on_error"):
            found["on_error"] = "continue"
        return found


def _output_entry(entry: Any) -> tuple[str, tuple[Key, ...], str] | None:
    """(inner output, path into it, published name) of one ``outputs:`` entry; ``None``
    when it cannot be read."""
    if isinstance(entry, str):
        return (entry, (), entry) if is_identifier(entry) else None
    if not (isinstance(entry, Mapping) and set(entry) == {"path", "as"}):
        return None
    path, published = str(entry["path"]), entry["as"]
    first, *rest = path.split(".")
    keys: list[Key] = []
    for part in rest:
        if part.isdigit():
            keys.append(int(part))
        elif is_identifier(part) and not part.startswith("_"):
            keys.append(part)
        else:
            return None
    if not (is_identifier(first) and is_identifier(published)):
        return None
    return first, tuple(keys), str(published)


@dataclass(frozen=True)
class Extract:
    """A value a pipeline step publishes from a path into one of its outputs."""

    source: str
    """The value name the step's output is published under (maybe private)."""
    path: tuple[Key, ...]
    outer: str
    written: str
    """The path as written (``report.summary``)."""
    where: Where


def _extractor(step: str, extracts: list[Extract], mapped: bool) -> Node:
    """The private node publishing the values found along ``extracts``' paths (into each
    item's value when the step maps)."""
    sources = sorted({e.source for e in extracts})

    def walk(value: Any, extract: Extract) -> Any:
        for key in extract.path:
            try:
                value = lookup(value, key)
            except Absent as absent:
                problem = (
                    extract.where.file,
                    extract.where.line,
                    extract.where.column,
                    str(absent),
                )
                raise TemplateError(
                    f"Step `{step}` cannot publish `{extract.outer}`: the path "
                    f"`{extract.written}` has no `{key}` ({absent})",
                    [problem],
                ) from None
        return value

    def extract_all(values: dict[str, Any]) -> Any:
        found = []
        for extract in extracts:
            value = values[extract.source]
            found.append([walk(v, extract) for v in value] if mapped else walk(value, extract))
        return tuple(found) if len(found) > 1 else found[0]

    taking, renamed = _taking(extract_all, sources, extract_all, "outputs")
    outputs = tuple(e.outer for e in extracts)
    return Node(
        taking,
        name=private_name(step, "outputs"),
        output_name=outputs if len(outputs) > 1 else outputs[0],
        cache=False,  # cheap to walk again; its consumers key on the values it gives
        input_sources=renamed,
    )


def _continues(step: Mapping[str, Any]) -> bool:
    return bool((step.get("config") or {}).get("continue_on_error"))


def _published(member: Any, helpers: list[Node]) -> tuple[str, ...]:
    """The names a step publishes: its node's public outputs and its extracted values."""
    names = [o for o in member.outputs if not is_private(o)]
    names += [o for h in helpers if h.name.endswith(".outputs") for o in h.outputs]
    return tuple(names)


def _split(made: Any, name: str) -> tuple[Any, list[Any]]:
    """A compiled step's own node (named after the step; a pipeline as a nested node) and
    the private helpers made with it."""
    found = made if isinstance(made, list) else [made]
    member = next(m for m in found if m.name == name)
    helpers = [m for m in found if m is not member]
    return (member.as_node() if isinstance(member, Pipeline) else member), helpers


def _members(made: list[Any]) -> list[Any]:
    """Compiled steps as pipeline members: a step made of several nodes gives them all."""
    return [m for one in made for m in (one if isinstance(one, list) else [one])]


LOOP_FIELDS = ("index", "first", "last", "length")


def loop_name(field: str) -> str:
    """The private name a for_each item's steps read ``loop.<field>`` from."""
    return private_name("loop", field)


_LOOP_NAMES = tuple((f, loop_name(f)) for f in LOOP_FIELDS)


def _mapping(
    step: str,
    loops: list[tuple[str, str]],
    mode: str,
    read: tuple[str, ...],
    helpers: list[Node],
) -> tuple[dict[str, str], list[str], str, list[Node]]:
    """How a for_each maps: its input mapping, the names mapped over, the mode, and its
    helpers (with the one giving the ``loop`` fields ``read`` first, when there are any)."""
    if not read:
        mapping = {collection: variable for variable, collection in loops}
        return mapping, [collection for _, collection in loops], mode, helpers
    looper = _looper(step, loops, mode)
    columns = looper.outputs[: len(loops)]
    places = dict(zip(LOOP_FIELDS, looper.outputs[len(loops) :], strict=True))
    mapping = dict(zip(columns, (variable for variable, _ in loops), strict=True))
    mapping.update((places[f], loop_name(f)) for f in read)
    return mapping, [*columns, *(places[f] for f in read)], "zip", [looper, *helpers]


def _looper(step: str, loops: list[tuple[str, str]], mode: str) -> Node:
    """The private node of a for_each whose steps read ``loop.*``: the items, one list per
    loop variable (the product expanded), and each item's place (``index``, ``first``,
    ``last``, ``length``), mapped side by side."""
    collections = [collection for _, collection in loops]

    def expand(values: dict[str, Any]) -> tuple[list[Any], ...]:
        columns = [list(values[c]) for c in collections]
        if mode == "product":
            rows = list(itertools.product(*columns))
        else:
            lengths = {len(c) for c in columns}
            if len(lengths) > 1:
                sizes = ", ".join(
                    f"`{c}` has {len(v)}" for c, v in zip(collections, columns, strict=True)
                )
                raise ValueError(
                    f"for_each `{step}` pairs its lists item by item (mode: zip), but {sizes} "
                    "items; give lists of one length, or use mode: product"
                )
            rows = list(zip(*columns, strict=True))
        total = len(rows)
        return (
            *([row[k] for row in rows] for k in range(len(columns))),
            list(range(total)),
            [i == 0 for i in range(total)],
            [i == total - 1 for i in range(total)],
            [total] * total,
        )

    taking, sources = _taking(expand, collections, expand, "loop")
    outputs = (
        *(private_name(step, "over", v) for v, _ in loops),
        *(private_name(step, "loop", f) for f in LOOP_FIELDS),
    )
    return Node(
        taking,
        name=private_name(step, "loop"),
        output_name=outputs,
        cache=False,  # cheap; the items are keyed by their values as in any map
        input_sources=sources,
    )


def outcome_name(step: str) -> str:
    """The private name a step's outcome is published under (when it is read)."""
    return private_name(step, "outcome")


@dataclass(frozen=True)
class Reads:
    """What templates read: the value names to wire in, those of them that may be missing
    (read only under ``| default``), and the steps whose outcome they read."""

    names: set[str]
    tolerated: set[str]
    outcomes: set[str]


def _reads(compiled: Any, level: Level, where: Path_) -> Reads:
    """The value names ``compiled`` templates read (inputs, loop variables, step outputs
    and outcomes), noting the outcomes in ``level``."""
    strict: set[str] = set()
    guarded: set[str] = set()
    outcomes: set[str] = set()
    for value in compiled:
        for reference in value.references:
            if reference.root == "steps" and reference.path:
                step = str(reference.path[0])
                published = level.steps.get(step, ())
                if reference.path[1:2] == ("error",) and step in level.call_errors:
                    strict.add(level.call_errors[step])  # a call's failure is data
                elif reference.path[1:2] in (("status",), ("error",)):
                    outcomes.add(step)
                elif reference.guarded:
                    guarded.update(published)
                    outcomes.add(step)
                else:
                    strict.update(published)
            else:
                strict.update(_names_read(reference, level))
    for step in sorted(outcomes):
        level.outcomes.setdefault(step, where)
    names = strict | guarded | {outcome_name(step) for step in outcomes}
    return Reads(names, guarded - strict, outcomes)


def _names_read(reference: templates.Reference, level: Level) -> list[str]:
    """The value names a reference to anything but a step reads."""
    root, rest = reference.root, reference.path
    if root == "inputs" and rest:
        return [str(rest[0])]
    if root in level.loop:
        return [str(root)]
    if root == "global_vars" and rest and str(rest[0]) in level.global_templates:
        inner = level.global_templates[str(rest[0])].references
        return [str(r.path[0]) for r in inner if r.root == "inputs" and r.path]
    if root == "loop":  # only the fields read: an item's key changes with them only
        fields = [rest[0]] if rest and rest[0] in LOOP_FIELDS else LOOP_FIELDS
        return [loop_name(str(f)) for f in fields]
    return []


GLOBAL_TEMPLATES = private_name("global_vars")
"""Where ``_readable`` hands the templated ``global_vars`` to ``_context``."""

CALL_ERRORS = private_name("call_errors")
"""Where ``_readable`` hands the call steps' error outputs to ``_context``."""


def _readable(level: Level) -> tuple[dict[str, tuple[tuple[str, ...], str]], dict[str, Any]]:
    """What a template of ``level`` can read at run time besides its inputs: each step's
    published names and outcome name, and the workflow's constants."""
    steps = {step: (published, outcome_name(step)) for step, published in level.steps.items()}
    constants = {"workflow": dict(level.workflow), "global_vars": dict(level.global_vars)}
    if level.global_templates:
        constants[GLOBAL_TEMPLATES] = dict(level.global_templates)
    if level.call_errors:
        constants[CALL_ERRORS] = dict(level.call_errors)
    return steps, constants


def _context(
    values: Mapping[str, Any],
    steps: Mapping[str, tuple[tuple[str, ...], str]],
    constants: Mapping[str, Any],
) -> dict[str, Any]:
    """What templates read at run time, from the values wired in: a step's state has its
    ``status`` and ``error`` when its outcome is wired, and its result when it succeeded."""
    context: dict[str, Any] = {**constants, "inputs": dict(values)}
    templated = context.pop(GLOBAL_TEMPLATES, None)
    call_errors = context.pop(CALL_ERRORS, {})
    if templated:  # global_vars written as templates over inputs and workflow keys
        context["global_vars"] = {
            **context["global_vars"],
            **{
                key: value.render(context, f"global_vars.{key}") for key, value in templated.items()
            },
        }
    context.update(values)  # loop variables are read by their own name
    place = {f: values[n] for f, n in _LOOP_NAMES if n in values}
    if place:
        context["loop"] = place
    step_values: dict[str, Any] = {}
    for step, (published, outcome_key) in steps.items():
        state: dict[str, Any] = {}
        outcome = values.get(outcome_key)
        if outcome is not None:
            state["status"], state["error"] = outcome["status"], outcome["error"]
        if call_errors.get(step) in values:  # a call step succeeds; its failure is data
            state["error"] = values[call_errors[step]]
        succeeded = outcome is None or outcome["status"] == "ok"
        if succeeded and published and all(p in values for p in published):
            entry = {p: values[p] for p in published}
            state.update(entry)
            state["result"] = entry[published[0]] if len(published) == 1 else entry
        if state:
            step_values[step] = state
    context["steps"] = step_values
    return context


def _taking(body: Any, names: list[str], wrapped: Any, label: str) -> tuple[Any, dict[str, str]]:
    """A function of keyword parameters that calls ``body`` with ``{name: value}`` for the
    value ``names``; with the sources of the parameters that a name could not be (private
    names). Its code fingerprint is that of ``wrapped``."""
    params = {
        (name if name.isidentifier() else f"p{index}_{name.split('.')[-1]}"): name
        for index, name in enumerate(names)
    }
    if all(param == name for param, name in params.items()):

        def taking(**values: Any) -> Any:
            return body(values)
    else:
        renamed = tuple(params.items())

        def taking(**values: Any) -> Any:
            return body({name: values[param] for param, name in renamed})

    taking.__wrapped__ = wrapped  # type: ignore[attr-defined]
    taking.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY) for param in params]
    )
    taking.__name__ = getattr(wrapped, "__name__", label)
    return taking, {param: name for param, name in params.items() if param != name}


def _adapter(
    step: str, computed: Mapping[str, templates.Compiled], level: Level, where: Path_
) -> Node:
    """The private node rendering a pipeline step's templated inputs, one private output
    per inner input."""
    reads = _reads(computed.values(), level, where)
    steps, constants = _readable(level)
    values_of = tuple(computed.values())

    def render(values: dict[str, Any]) -> Any:
        context = _context(values, steps, constants)
        made = tuple(value.render(context, step) for value in values_of)
        return made if len(made) > 1 else made[0]

    taking, sources = _taking(render, sorted(reads.names), render, "inputs")
    written = repr(sorted((inner, value.source) for inner, value in computed.items()))
    outputs = tuple(private_name(step, "inputs", inner) for inner in computed)
    return Node(
        taking,
        name=private_name(step, "inputs"),
        output_name=outputs if len(outputs) > 1 else outputs[0],
        cache_version=hashlib.sha256(written.encode()).hexdigest()[:16],
        input_sources=sources,
        tolerates=tuple(reads.tolerated),
    )


def _backend(spec: Mapping[str, Any]) -> Any:
    options = {k: v for k, v in spec.items() if k != "type"}
    if spec["type"] == "local":
        return LocalBackend(**options)
    from nestflow.engines.dask import DaskBackend

    return DaskBackend(**options)


def _cache(spec: Mapping[str, Any] | None) -> Any:
    if spec is None:
        return None
    options = {k: v for k, v in spec.items() if k != "type"}
    if spec["type"] == "disk":
        from nestflow.cache.disk import DiskCache

        return DiskCache(options.get("path", ".nestflow-cache"))
    from nestflow.cache.redis import RedisCache

    return RedisCache(**options)
