"""Configuration views: the effective configuration of a level, and every level described."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nestflow.core.config import EffectiveConfig
from nestflow.core.nesting import PipelineNode
from nestflow.runtime.settings import child_config, root_config

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline

__all__ = ["config_labels", "describe_config", "effective_config"]


def effective_config(pipeline: Pipeline, path: tuple[str, ...]) -> EffectiveConfig:
    """The configuration a run rooted at ``pipeline`` gives the level reached by ``path``."""
    config = root_config(pipeline)
    current = pipeline
    for node_id in path:
        member = current.node(node_id)
        if not isinstance(member, PipelineNode):
            nested = [
                i
                for i, n in zip(current.node_ids, current.nodes, strict=True)
                if isinstance(n, PipelineNode)
            ]
            raise KeyError(
                f"`{node_id}` in pipeline `{current.name}` is a function node; a config path "
                f"names nested pipelines: {', '.join(nested) or '(none here)'}."
            )
        current = member.pipeline
        config = child_config(current, config)
    return config


def describe_config(pipeline: Pipeline, depth: int | None) -> str:
    """One line per pipeline level: explicit values marked ``*``, inherited ones ``↓ ``."""
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be >= 1 or None (everything), got {depth}.")
    lines = [f"{pipeline.name} [{config_labels(root_config(pipeline))}]"]
    _describe_children(pipeline, root_config(pipeline), "", depth, 1, lines)
    return "\n".join(lines)


def _describe_children(
    pipeline: Pipeline,
    config: EffectiveConfig,
    prefix: str,
    depth: int | None,
    level: int,
    lines: list[str],
) -> None:
    if depth is not None and level >= depth + 1:
        return
    nested = [
        n
        for n in (pipeline.node(i) for i in pipeline.execution_order())
        if isinstance(n, PipelineNode)
    ]
    for position, member in enumerate(nested):
        last = position == len(nested) - 1
        child = child_config(member.pipeline, config)
        lines.append(f"{prefix}{'└─ ' if last else '├─ '}{member.name} [{config_labels(child)}]")
        _describe_children(
            member.pipeline, child, prefix + ("   " if last else "│  "), depth, level + 1, lines
        )


def config_labels(config: EffectiveConfig) -> str:
    """``Local(seq)*, ↓ DiskCache(.c), ...``: each aspect with its source marker."""
    cache = config.cache
    callbacks = ", ".join(type(c).__name__ for c in config.callbacks) or "none"
    texts = {
        "backend": config.backend.label,
        "cache": "No cache" if cache is None else cache.label,
        "callbacks": f"callbacks: {callbacks}",
        "timeout": f"timeout: {config.timeout if config.timeout is not None else 'none'}",
        "retries": f"retries: {config.retries}",
    }
    if config.limits.any:  # shown only where some limit is in force
        texts["limits"] = config.limits.label
    marked = []
    for aspect, text in texts.items():
        source = config.source(aspect)
        marked.append(
            f"↓ {text}" if source == "inherited" else f"{text}*" if source == "explicit" else text
        )
    return ", ".join(marked)
