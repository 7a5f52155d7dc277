"""``Pipeline.to_text``: one line per node in execution order, nested levels indented."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nestflow.core.gates import is_private
from nestflow.core.nesting import PipelineNode
from nestflow.runtime.views import config_labels, effective_config

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline


def check_depth(depth: int | None) -> None:
    """``depth`` is ``None`` (everything) or at least 1."""
    if depth is not None and depth < 1:
        raise ValueError(
            f"depth must be >= 1 (1 draws nested pipelines as single nodes) or None (expand "
            f"everything), got {depth!r}."
        )


def to_text(pipeline: Pipeline, depth: int | None = 1, show_config: bool = False) -> str:
    """``[clean] (passage) -> cleaned``, per node; nested pipelines expanded to ``depth``."""
    check_depth(depth)
    head = pipeline.name
    if show_config:
        head += f" [{config_labels(effective_config(pipeline, ()))}]"
    lines = [head]
    _level(pipeline, pipeline, (), depth, "  ", show_config, lines)
    return "\n".join(lines)


def _level(
    root: Pipeline,
    pipeline: Pipeline,
    path: tuple[str, ...],
    depth: int | None,
    indent: str,
    show_config: bool,
    lines: list[str],
) -> None:
    for node_id in pipeline.execution_order():
        if is_private(node_id):  # a front end's own wiring: not shown
            continue
        member = pipeline.node(node_id)
        ins = ", ".join(name.lstrip(".") for name in member.inputs)
        outs = ", ".join(name.lstrip(".") for name in member.outputs)
        line = f"{indent}[{node_id}] ({ins}) -> {outs}"
        if isinstance(member, PipelineNode):
            line += f"  · pipeline {member.pipeline.name}"
            if member.map_over:
                line += f" · maps over {', '.join(n.lstrip('.') for n in member.map_over)}"
            if show_config:
                line += f" [{config_labels(effective_config(root, (*path, node_id)))}]"
        lines.append(line)
        if isinstance(member, PipelineNode) and (depth is None or depth > 1):
            below = None if depth is None else depth - 1
            inner = member.pipeline
            _level(root, inner, (*path, node_id), below, indent + "    ", show_config, lines)
