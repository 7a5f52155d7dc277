"""``Pipeline.visualize``: the pipeline as a Graphviz graph (extra ``viz``).

Inputs are dashed green boxes (``name: type = default``, or ``bound``), function nodes
rounded blue boxes listing their outputs, collapsed nested pipelines double-bordered boxes;
expanded nested pipelines are clusters labelled with their name and effective
configuration (``flatten=True`` draws their nodes inline with the label on each node).
Writing ``.dot`` needs no Graphviz binary; other formats need ``dot``.
"""

from __future__ import annotations

import inspect
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nestflow.core.gates import is_private, produced
from nestflow.core.nesting import PipelineNode
from nestflow.core.node import Node
from nestflow.diagram.text import check_depth, to_text
from nestflow.errors import NestflowWarning
from nestflow.runtime.views import config_labels, effective_config

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline

ORIENTS = ("TB", "LR", "BT", "RL")
INSTALL_DOT = (
    "Graphviz's `dot` program is needed to render this format. Install it with "
    "`apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) or "
    "`conda install graphviz`, or write a `.dot` file, which needs no binary."
)


@dataclass(frozen=True)
class GraphvizStyle:
    """Colours and fonts of ``visualize``; pass one as ``style=`` to override them."""

    input_color: str = "#e8f5e9"
    function_color: str = "#e3f2fd"
    pipeline_color: str = "#fff3e0"
    cluster_color: str = "#fafafa"
    font: str = "Helvetica"
    font_size: str = "11"


NOWHERE = ""
"""Where a value made by a hidden node that reads nothing comes from: drawn as no edge."""


def graphviz_module() -> Any:
    """The ``graphviz`` package, or an ImportError with the install command."""
    try:
        import graphviz
    except ImportError as exc:
        raise ImportError(
            "Pipeline.visualize needs the `graphviz` package, which is not installed. Install "
            "it with: pip install 'nestflow[viz]' (Pipeline.to_text needs nothing)."
        ) from exc
    return graphviz


@dataclass
class _Options:
    depth: int | None
    flatten: bool
    show_config: bool
    show_types: bool
    style: GraphvizStyle


class _Drawing:
    """One graph being drawn: the root pipeline, its input boxes, and the options."""

    def __init__(self, graph: Any, root: Pipeline, options: _Options) -> None:
        self.graph, self.root, self.options = graph, root, options
        self.inputs: dict[str, str] = {}

    def input_box(self, name: str, consumer: Any) -> str:
        found = self.inputs.get(name)
        if found is None:
            found = self.inputs[name] = f"input {name}"
            style = self.options.style
            label = _input_label(name, consumer, self.root, self.options.show_types)
            self.graph.node(
                found, label, shape="box", style="dashed,filled", fillcolor=style.input_color
            )
        return found

    def level(
        self, graph: Any, pipeline: Pipeline, path: tuple[str, ...], sources: dict[str, str]
    ) -> dict[str, str]:
        """Draw ``pipeline``'s nodes; ``sources`` maps names to the DOT ids providing them."""
        available = dict(sources)
        for node_id in pipeline.execution_order():
            member = pipeline.node(node_id)
            if is_private(node_id):  # a front end's wiring: its inputs stand for its outputs
                hidden = [available.get(n) or self.input_box(n, member) for n in member.inputs]
                for out in produced(member):
                    available[out] = hidden[0] if hidden else NOWHERE
                continue
            if isinstance(member, PipelineNode) and self._expands(path):
                available.update(self._expanded(graph, member, (*path, node_id), available))
            else:
                self._box(graph, member, (*path, node_id), available)
        return available

    def _expands(self, path: tuple[str, ...]) -> bool:
        depth = self.options.depth
        return depth is None or len(path) + 1 < depth

    def _box(
        self, graph: Any, member: Any, path: tuple[str, ...], available: dict[str, str]
    ) -> None:
        dot_id = "/".join(path)
        label = _node_label(member, self.options.show_types)
        if self.options.flatten and len(path) > 1:
            label += f"\nin {' › '.join(path[:-1])}"
        style = self.options.style
        if isinstance(member, PipelineNode):
            graph.node(
                dot_id, label, shape="box", peripheries="2", style="filled",
                fillcolor=style.pipeline_color,
            )  # fmt: skip
        else:
            graph.node(
                dot_id, label, shape="box", style="rounded,filled", fillcolor=style.function_color
            )
        for name in member.inputs:
            source = available.get(name)
            if source == NOWHERE:  # made by a hidden node that reads nothing: no edge
                continue
            if source is None:
                source = self.input_box(name, member)
            edge = {"label": name.lstrip(".")} if not source.startswith("input ") else {}
            self.graph.edge(source, dot_id, **edge)
        for out in produced(member):
            available[out] = dot_id

    def _expanded(
        self, graph: Any, member: PipelineNode, path: tuple[str, ...], available: dict[str, str]
    ) -> dict[str, str]:
        inner_sources = {}
        for outer, inner in member.to_inner.items():
            inner_sources[inner] = available.get(outer) or self.input_box(outer, member)
        label = f"{member.name} [pipeline {member.pipeline.name}]"
        if member.map_over:
            label += f" · maps over {', '.join(n.lstrip('.') for n in member.map_over)}"
        if self.options.show_config:
            label += f"\n[{config_labels(effective_config(self.root, path))}]"
        if self.options.flatten:
            produced = self.level(graph, member.pipeline, path, inner_sources)
        else:
            with graph.subgraph(name="cluster_" + "/".join(path)) as cluster:
                cluster.attr(
                    label=label, style="rounded,filled", fillcolor=self.options.style.cluster_color
                )
                produced = self.level(cluster, member.pipeline, path, inner_sources)
        return {member.to_outer.get(i, i): produced[i] for i in member.pipeline.outputs
                if member.to_outer.get(i, i) in member.outputs}  # fmt: skip


def _annotation(value: Any) -> str:
    if value is inspect.Parameter.empty or value is inspect.Signature.empty:
        return ""
    if isinstance(value, str):
        return value
    return getattr(value, "__name__", None) or repr(value).replace("typing.", "")


def _function_consumer(member: Any, name: str) -> tuple[Node | None, str]:
    """The function node that finally receives input ``name`` of ``member``, and its name there.

    ``None`` when the value reaches it through a map (its type there is the item's type).
    """
    while isinstance(member, PipelineNode):
        if name in member.map_over:
            return None, name
        name = member.to_inner.get(name, name)
        inner = member.pipeline
        member = next((inner.node(i) for i in inner.execution_order()
                       if name in inner.node(i).inputs), None)  # fmt: skip
    return member, name


def _input_label(name: str, consumer: Any, root: Pipeline, show_types: bool) -> str:
    label = name
    consumer, wired_name = _function_consumer(consumer, name)
    if isinstance(consumer, Node):
        name_there = wired_name
        params = inspect.signature(consumer.func).parameters
        param = next((p for p, w in consumer.input_sources.items() if w == name_there), None)
        if param is not None and param in params:
            kind = _annotation(params[param].annotation)
            if show_types and kind:
                label += f": {kind}"
            if param in consumer.defaults:
                label += f" = {consumer.defaults[param]!r}"
    if name in root.bound_inputs:
        label += " (bound)"
    return label


def _node_label(member: Any, show_types: bool) -> str:
    if isinstance(member, PipelineNode):
        label = f"{member.name}\n[pipeline {member.pipeline.name}]"
        if member.map_over:
            label += f"\nmaps over {', '.join(n.lstrip('.') for n in member.map_over)}"
        return label + "\n→ " + ", ".join(member.outputs)
    kind = _annotation(inspect.signature(member.func).return_annotation) if show_types else ""
    outs = ", ".join(member.outputs)
    return f"{member.name}\n→ {outs}" + (f": {kind}" if kind and len(member.outputs) == 1 else "")


def visualize(
    pipeline: Pipeline,
    depth: int | None = 1,
    flatten: bool = False,
    orient: str = "TB",
    filename: str | None = None,
    show_config: bool = True,
    show_types: bool = True,
    show_legend: bool = False,
    style: GraphvizStyle | None = None,
) -> Any:
    """The pipeline as a ``graphviz.Digraph``; ``filename`` also writes it (format by suffix)."""
    check_depth(depth)
    if orient not in ORIENTS:
        raise ValueError(f"orient must be one of {', '.join(ORIENTS)}, got {orient!r}.")
    graphviz = graphviz_module()
    look = style or GraphvizStyle()
    graph = graphviz.Digraph(pipeline.name)
    graph.attr(rankdir=orient, fontname=look.font, fontsize=look.font_size)
    graph.attr("node", fontname=look.font, fontsize=look.font_size)
    graph.attr("edge", fontname=look.font, fontsize=look.font_size)
    title = pipeline.name
    if show_config:
        title += f"\n[{config_labels(effective_config(pipeline, ()))}]"
    graph.attr(label=title, labelloc="t")
    options = _Options(depth, flatten, show_config, show_types, look)
    _Drawing(graph, pipeline, options).level(graph, pipeline, (), {})
    if show_legend:
        _legend(graph, look)
    if filename is not None:
        write(graph, filename)
    return graph


def _legend(graph: Any, look: GraphvizStyle) -> None:
    with graph.subgraph(name="cluster_legend") as legend:
        legend.attr(label="legend", style="dashed")
        legend.node("legend input", "input", shape="box", style="dashed,filled",
                    fillcolor=look.input_color)  # fmt: skip
        legend.node("legend node", "function node", shape="box", style="rounded,filled",
                    fillcolor=look.function_color)  # fmt: skip
        legend.node("legend pipeline", "nested pipeline", shape="box", peripheries="2",
                    style="filled", fillcolor=look.pipeline_color)  # fmt: skip


def write(graph: Any, filename: str) -> Path:
    """Write ``graph`` to ``filename``: DOT text for ``.dot``/``.gv``, else rendered by ``dot``.

    Without the ``dot`` binary a rendered format cannot be made: the DOT source is written
    next to it instead, with a warning that says how to install Graphviz.
    """
    path = Path(filename)
    suffix = path.suffix.lstrip(".").lower()
    if suffix in ("dot", "gv", ""):
        path.write_text(graph.source, encoding="utf-8")
        return path
    if shutil.which("dot") is None:
        fallback = path.with_suffix(".dot")
        fallback.write_text(graph.source, encoding="utf-8")
        warnings.warn(
            NestflowWarning(f"Cannot write {path}: {INSTALL_DOT} The DOT source is in {fallback}."),
            stacklevel=3,
        )
        return fallback
    path.write_bytes(graph.pipe(format=suffix))
    return path


def mimebundle(pipeline: Pipeline) -> dict[str, str]:
    """What Jupyter shows: an SVG when Graphviz can draw it, else the text outline."""
    bundle = {"text/plain": to_text(pipeline)}
    if shutil.which("dot") is not None:
        try:
            svg = visualize(pipeline).pipe(format="svg").decode("utf-8")
        except ImportError:
            return bundle
        bundle["image/svg+xml"] = svg
    return bundle
