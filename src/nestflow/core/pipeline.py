"""Pipeline: an immutable set of nodes wired by name, plus its own (possibly UNSET) config.

Everything about the graph is checked and derived once, at construction. Running
is delegated to ``nestflow.runtime``; no run-time state is ever written here, so one
pipeline may be shared by many parents and many concurrent runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Never, overload

from nestflow.core.config import ASPECTS, UNSET, Added
from nestflow.core.contracts import TYPES
from nestflow.core.gates import Condition, is_private, produced
from nestflow.core.names import RULE, name_problem
from nestflow.core.nesting import MapMode, PipelineNode
from nestflow.core.node import Node, OnError
from nestflow.core.options import checked_config, misplaced_options
from nestflow.errors import (
    CycleError,
    DependencyError,
    InputError,
    InvalidNameError,
    InvalidOptionError,
    UnknownInputError,
)
from nestflow.graph.dag import Graph, Shape, analyse

if TYPE_CHECKING:
    from nestflow.cache.store import Cache
    from nestflow.callbacks.events import PipelineCallback
    from nestflow.core.config import EffectiveConfig, Unset
    from nestflow.core.limits import Limits
    from nestflow.core.retry import Retry
    from nestflow.core.workspaces import Workspace
    from nestflow.engines.protocol import Backend
    from nestflow.runtime.report import Outputs

AnyNode = Node | PipelineNode
_AS_NODE_KEYWORDS = (
    "input_mapping", "output_mapping", "map_over", "map_mode", "name", "on_error", "when",
    "outcome", "workspace",
)  # fmt: skip


class Pipeline:
    """A DAG of nodes inferred from their names; itself usable as a node.

    >>> from nestflow import node
    >>> @node(output_name="doubled")
    ... def double(x):
    ...     return 2 * x
    >>> Pipeline([double]).run(x=3)
    {'doubled': 6}
    """

    nodes: tuple[AnyNode, ...]
    node_ids: tuple[str, ...]
    name: str
    inputs: tuple[str, ...]
    required_inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    bound_inputs: dict[str, Any]
    input_types: dict[str, str]
    """Declared types of inputs (``with_input_types``), checked when a run starts."""
    graph: Graph
    backend: Backend | Unset
    cache: Cache | Unset | None
    callbacks: tuple[PipelineCallback, ...] | Unset
    timeout: float | Unset | None
    retries: int | Retry | Unset

    def __init__(
        self,
        nodes: Sequence[AnyNode | Pipeline],
        *,
        name: str | None = None,
        backend: Backend | Unset = UNSET,
        cache: Cache | Unset | None = UNSET,
        callbacks: Sequence[PipelineCallback] | Unset | None = UNSET,
        timeout: float | Unset | None = UNSET,
        retries: int | Retry | Unset = UNSET,
        limits: Limits | Unset = UNSET,
        **misplaced: Never,
    ) -> None:
        misplaced_options("Pipeline()", misplaced, ("name", *ASPECTS))
        pipeline_name = "pipeline" if name is None else name
        if (problem := name_problem(pipeline_name)) is not None:
            raise InvalidNameError(f"Invalid pipeline name ({RULE}): {problem}.")
        members = tuple(_as_member(n) for n in _node_list(nodes))
        ids = _assign_ids(members)
        graph = analyse(
            [Shape(i, n.inputs, produced(n)) for i, n in zip(ids, members, strict=True)]
        )
        _check_graph(pipeline_name, graph)
        config = checked_config(
            f"pipeline `{pipeline_name}`",
            backend=backend,
            cache=cache,
            callbacks=callbacks,
            timeout=timeout,
            retries=retries,
            limits=limits,
        )
        self.__dict__.update(nodes=members, node_ids=ids, name=pipeline_name, graph=graph)
        self.__dict__.update(config, bound_inputs={}, input_types={}, _memo={})
        self._derive()

    # --- construction helpers ----------------------------------------------------------------

    def _derive(self) -> None:
        assert self.graph.order is not None
        consumed: dict[str, list[AnyNode]] = {}
        for index in self.graph.order:
            member = self.nodes[index]
            for name in member.inputs:
                if name not in self.graph.producers:
                    consumed.setdefault(name, []).append(member)
        optional = {
            name
            for name, members in consumed.items()
            if all(name in m.optional_inputs for m in members)
        }
        self.__dict__.update(
            inputs=tuple(consumed),
            required_inputs=tuple(
                n for n in consumed if n not in optional and n not in self.bound_inputs
            ),
            outputs=tuple(
                o
                for index in self.graph.order
                for o in self.nodes[index].outputs
                if not is_private(o)
            ),
        )

    def _copy(self, **changes: Any) -> Pipeline:
        clone = object.__new__(Pipeline)
        clone.__dict__.update(self.__dict__)
        clone.__dict__.update(changes, _memo={})
        clone._derive()
        return clone

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(
            f"Pipeline `{self.name}` is immutable; use with_{key}(...) or bind(...) for a copy."
        )

    def __getstate__(self) -> dict[str, Any]:
        # Memoised plans hold compiled closures; they are rebuilt on the other side.
        # Callbacks belong to the process that runs the pipeline: a worker records events
        # and the coordinator replays them, so a pickled pipeline carries none.
        state = {k: v for k, v in self.__dict__.items() if k != "_memo"}
        state["callbacks"] = UNSET
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("input_types", {})
        state.setdefault("limits", UNSET)
        self.__dict__.update(state, _memo={})

    def __repr__(self) -> str:
        return f"Pipeline(name={self.name!r}, nodes={list(self.node_ids)!r})"

    def bare(self) -> Pipeline:
        """This pipeline's structure with no configuration: what a shared plan keeps of it.

        Same name, members, ids and bound inputs; every aspect unset and no declared input
        types, so it holds on to no cache, callback or backend (see ``runtime/plan.py``).
        """
        found = self.memo.get("bare")
        if found is None:
            unset = dict.fromkeys(ASPECTS, UNSET)
            found = self.memo["bare"] = self._copy(**unset, input_types={})
        assert isinstance(found, Pipeline)
        return found

    # --- introspection -----------------------------------------------------------------------

    @property
    def memo(self) -> dict[Any, Any]:
        """Derived data (plans) computed on demand; never run-time state."""
        memo: dict[Any, Any] = self.__dict__["_memo"]
        return memo

    def execution_order(self) -> tuple[str, ...]:
        """Node ids in the order a sequential run uses."""
        assert self.graph.order is not None
        return tuple(self.node_ids[i] for i in self.graph.order)

    def node(self, node_id: str) -> AnyNode:
        """The node with id ``node_id``."""
        try:
            return self.nodes[self.node_ids.index(node_id)]
        except ValueError:
            raise KeyError(
                f"Pipeline `{self.name}` has no node `{node_id}`; "
                f"its nodes are: {', '.join(self.node_ids)}."
            ) from None

    @property
    def config(self) -> dict[str, Any]:
        """The five configuration aspects as given (``UNSET`` where not set)."""
        return {aspect: self.__dict__[aspect] for aspect in ASPECTS}

    # --- copies ------------------------------------------------------------------------------

    def with_name(self, name: str) -> Pipeline:
        """A copy with another name."""
        if (problem := name_problem(name)) is not None:
            raise InvalidNameError(f"Invalid pipeline name ({RULE}): {problem}.")
        return self._copy(name=name)

    def with_backend(self, backend: Backend | Unset) -> Pipeline:
        """A copy with another backend (``UNSET`` to inherit)."""
        return self._copy(**checked_config(f"pipeline `{self.name}`", backend=backend))

    def with_cache(self, cache: Cache | Unset | None) -> Pipeline:
        """A copy with another cache (``None`` disables, ``UNSET`` inherits)."""
        return self._copy(**checked_config(f"pipeline `{self.name}`", cache=cache))

    def with_callbacks(
        self, callbacks: Sequence[PipelineCallback] | Unset | None, *, add: bool = False
    ) -> Pipeline:
        """A copy with other callbacks (``[]`` disables, ``UNSET`` inherits); with
        ``add=True``, these callbacks after the ones it has: its own if it sets some, else
        the ones it inherits."""
        if add and callbacks not in (UNSET, None):
            checked_config(f"pipeline `{self.name}`", callbacks=callbacks)
            own = self.__dict__["callbacks"]
            kept: tuple[PipelineCallback, ...] = () if own in (UNSET, None) else tuple(own)
            if own is UNSET or isinstance(own, Added):
                return self._copy(callbacks=Added((*kept, *callbacks)))
            return self._copy(callbacks=[*kept, *callbacks])
        return self._copy(**checked_config(f"pipeline `{self.name}`", callbacks=callbacks))

    def with_timeout(self, timeout: float | Unset | None) -> Pipeline:
        """A copy with another per-node timeout in seconds (``None`` for no limit)."""
        return self._copy(**checked_config(f"pipeline `{self.name}`", timeout=timeout))

    def with_retries(self, retries: int | Retry | Unset) -> Pipeline:
        """A copy with another retry policy (``0`` disables, ``UNSET`` inherits)."""
        return self._copy(**checked_config(f"pipeline `{self.name}`", retries=retries))

    def with_limits(self, limits: Limits | Unset) -> Pipeline:
        """A copy with other limits (``Limits(...)``; its ``UNSET`` fields inherit)."""
        return self._copy(**checked_config(f"pipeline `{self.name}`", limits=limits))

    @classmethod
    def from_yaml(cls, source: str | os.PathLike[str], *, registry: Any = None) -> Pipeline:
        """The pipeline a workflow file describes (``source``: a path, or the YAML text);
        see ``nestflow.load_yaml``."""
        from nestflow.spec.loader import load_yaml

        return load_yaml(source, registry=registry)

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """This pipeline as a workflow file that loads back as itself (``from_yaml``); with
        ``path``, also written there, atomically.

        Function nodes are named as ``"module:name"``; callbacks are not written. Raises
        ``NotSerializableError`` for what a file cannot hold (lambdas, closures, functions of
        ``__main__``, bound values that are not JSON), naming each node.
        """
        from nestflow.spec.export import to_yaml

        return to_yaml(self, path)

    def with_input_types(
        self, types: Mapping[str, str], *, accept_unused: bool = False
    ) -> Pipeline:
        """A copy that checks the types of these inputs when a run starts (``string``,
        ``integer``, ``number``, ``boolean``, ``array``, ``object``, ``any``).

        With ``accept_unused=True`` a name no node reads is declared all the same (as a
        workflow file's inputs are): runs accept it, check it, and leave it unused."""
        unknown = [
            n
            for n in types
            if n not in self.inputs
            and (not accept_unused or n in self.graph.producers or name_problem(n) is not None)
        ]
        wrong = {n: t for n, t in types.items() if t not in TYPES}
        if unknown or wrong:
            lines = [f"`{n}` is not an input of pipeline `{self.name}`" for n in unknown]
            lines += [
                f"`{n}`: unknown type {t!r}; the types are {', '.join(TYPES)}"
                for n, t in wrong.items()
            ]
            raise InvalidOptionError("with_input_types(): " + "; ".join(lines) + ".")
        return self._copy(input_types={**self.input_types, **types})

    def bind(self, **values: Any) -> Pipeline:
        """A copy with default values for some inputs; values given at run time still win."""
        unknown = [n for n in values if n not in self.inputs]
        published = [n for n in unknown if n in self.outputs]
        if published:
            raise InputError(
                f"Cannot bind {', '.join(f'`{n}`' for n in published)}: published by a node of "
                f"pipeline `{self.name}`; only inputs can be bound."
            )
        if unknown:
            raise UnknownInputError(
                f"Cannot bind {', '.join(f'`{n}`' for n in unknown)}: not an input of pipeline "
                f"`{self.name}`. Its inputs are: {', '.join(f'`{n}`' for n in self.inputs)}."
            )
        return self._copy(bound_inputs={**self.bound_inputs, **values})

    def unbind(self, *names: str) -> Pipeline:
        """A copy without the bound values of ``names``."""
        missing = [n for n in names if n not in self.bound_inputs]
        if missing:
            raise KeyError(
                f"{', '.join(f'`{n}`' for n in missing)} not bound on pipeline `{self.name}`; "
                f"bound inputs are: {', '.join(self.bound_inputs) or '(none)'}."
            )
        return self._copy(
            bound_inputs={k: v for k, v in self.bound_inputs.items() if k not in names}
        )

    def as_node(
        self,
        *,
        input_mapping: Mapping[str, str] | None = None,
        output_mapping: Mapping[str, str] | None = None,
        map_over: str | Sequence[str] | None = None,
        map_mode: MapMode = "zip",
        name: str | None = None,
        on_error: OnError = "raise",
        when: str | Condition | None = None,
        outcome: str | None = None,
        workspace: str | Workspace | None = None,
        **misplaced: Never,
    ) -> PipelineNode:
        """This pipeline as a node of another, with renamed inputs/outputs and an optional map."""
        misplaced_options("as_node()", misplaced, _AS_NODE_KEYWORDS)
        return PipelineNode(
            self,
            input_mapping=input_mapping,
            output_mapping=output_mapping,
            map_over=map_over,
            map_mode=map_mode,
            name=name,
            on_error=on_error,
            when=when,
            outcome=outcome,
            workspace=workspace,
        )

    # --- running (delegated to the runtime) ---------------------------------------------------

    @overload
    def run(
        self, inputs: Mapping[str, Any] | None = None, /, *, output_name: str, **kwargs: Any
    ) -> Any: ...

    @overload
    def run(self, inputs: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Outputs: ...

    def run(self, inputs: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Any:
        """Run once; see ``nestflow.runtime.api.run``.

        With ``output_name="name"`` the bare value of that output; otherwise ``Outputs``, a
        ``dict`` of the outputs that also carries the run's ``report``.
        """
        from nestflow.runtime import api

        return api.run(self, inputs, kwargs)

    @overload
    async def arun(
        self, inputs: Mapping[str, Any] | None = None, /, *, output_name: str, **kwargs: Any
    ) -> Any: ...

    @overload
    async def arun(self, inputs: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Outputs: ...

    async def arun(self, inputs: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Any:
        """Run once on the caller's event loop; returns what :meth:`run` returns."""
        from nestflow.runtime import api

        return await api.arun(self, inputs, kwargs)

    @overload
    def map(
        self, inputs: Mapping[str, Any] | None = None, /, *, output_name: str, **kwargs: Any
    ) -> Any: ...

    @overload
    def map(self, inputs: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Outputs: ...

    def map(self, inputs: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Any:
        """Run over many items; see ``nestflow.runtime.api.map``.

        With ``output_name="name"`` the bare list of that output's values; otherwise
        ``Outputs``, one list per output, with the run's ``report``.
        """
        from nestflow.runtime import api

        return api.map(self, inputs, kwargs)

    @overload
    async def amap(
        self, inputs: Mapping[str, Any] | None = None, /, *, output_name: str, **kwargs: Any
    ) -> Any: ...

    @overload
    async def amap(self, inputs: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Outputs: ...

    async def amap(self, inputs: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Any:
        """Map on the caller's event loop; returns what :meth:`map` returns."""
        from nestflow.runtime import api

        return await api.amap(self, inputs, kwargs)

    def effective_config(self, *path: str) -> EffectiveConfig:
        """The configuration a run rooted here would give the nested node reached by ``path``."""
        from nestflow.runtime import api

        return api.effective_config(self, path)

    def to_text(self, depth: int | None = 1, show_config: bool = False) -> str:
        """One line per node in execution order (``[clean] (passage) -> cleaned``).

        Nested pipelines are expanded, indented, down to ``depth`` levels (``None``: all).
        """
        from nestflow.diagram.text import to_text

        return to_text(self, depth, show_config)

    def visualize(
        self,
        depth: int | None = 1,
        flatten: bool = False,
        orient: str = "TB",
        filename: str | None = None,
        show_config: bool = True,
        show_types: bool = True,
        show_legend: bool = False,
        style: Any = None,
    ) -> Any:
        """A ``graphviz.Digraph`` of the pipeline (extra ``viz``); see ``docs/visualization.md``."""
        from nestflow.diagram.dot import visualize

        return visualize(
            self, depth, flatten, orient, filename, show_config, show_types, show_legend, style
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from nestflow.diagram.dot import mimebundle

        return mimebundle(self)

    def _repr_svg_(self) -> str | None:
        return self._repr_mimebundle_().get("image/svg+xml")

    def describe_config(self, depth: int | None = None) -> str:
        """A text tree of the effective configuration, one line per pipeline level."""
        from nestflow.runtime import api

        return api.describe_config(self, depth)


# --- module helpers ----------------------------------------------------------------------------


def _node_list(nodes: Any) -> list[Any]:
    if isinstance(nodes, (Node, PipelineNode, Pipeline)) or callable(nodes):
        raise TypeError(
            "Pipeline(nodes) takes a list of nodes, got a single "
            f"{type(nodes).__name__}; write Pipeline([{getattr(nodes, 'name', '...')}])."
        )
    try:
        return list(nodes)
    except TypeError:
        raise TypeError(
            f"Pipeline(nodes) takes a list of nodes, got {type(nodes).__name__}."
        ) from None


def _as_member(item: Any) -> AnyNode:
    if isinstance(item, (Node, PipelineNode)):
        return item
    if isinstance(item, Pipeline):
        return item.as_node()
    if callable(item):
        name = getattr(item, "__name__", type(item).__name__)
        raise TypeError(
            f"`{name}` is a plain function, not a node. Decorate it with @node "
            f"(for example @node(output_name='...')) or wrap it: node({name}, output_name='...')."
        )
    raise TypeError(
        f"Pipeline nodes must be @node functions, pipelines or as_node() results; "
        f"got {type(item).__name__}: {item!r}."
    )


def _assign_ids(members: tuple[AnyNode, ...]) -> tuple[str, ...]:
    explicit: dict[str, int] = {}
    for member in members:
        if member.name_is_explicit:
            explicit[member.name] = explicit.get(member.name, 0) + 1
    doubled = sorted(n for n, count in explicit.items() if count > 1)
    if doubled:
        raise InvalidNameError(
            "Node names must be unique within a pipeline; given explicitly more than once: "
            + ", ".join(f"`{n}` ({explicit[n]} times)" for n in doubled)
            + ". Rename one of them with name='...'."
        )
    taken = set(explicit)
    ids = []
    for member in members:
        node_id = member.name
        if not member.name_is_explicit:
            suffix = 1
            while node_id in taken:
                suffix += 1
                node_id = f"{member.name}_{suffix}"
            taken.add(node_id)
        ids.append(node_id)
    return tuple(ids)


def _check_graph(pipeline_name: str, graph: Graph) -> None:
    problems: list[tuple[type[Exception], str]] = []
    ids = [shape.id for shape in graph.shapes]
    if graph.cycle:
        path = " -> ".join(ids[i] for i in graph.cycle)
        problems.append((CycleError, f"cycle: {path}"))
    for output, producers in graph.duplicates.items():
        names = " and ".join(f"`{ids[i]}`" for i in producers)
        problems.append(
            (
                DependencyError,
                (
                    f"`{output}` is published by both {names}; rename one output, or for a "
                    "nested pipeline expose it under another name with "
                    "as_node(output_mapping={...})."
                ),
            )
        )
    if not problems:
        return
    message = f"Pipeline `{pipeline_name}` is not a valid DAG:\n  " + "\n  ".join(
        text for _, text in problems
    )
    kind = problems[0][0]
    if kind is CycleError:
        raise CycleError(message, cycle=tuple(ids[i] for i in graph.cycle))
    raise kind(message)
