"""Library defaults and the resolution of each level's effective configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from nestflow.core.config import EffectiveConfig, resolve
from nestflow.core.limits import NO_LIMITS
from nestflow.engines.backends import LocalBackend

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline

DEFAULTS: Final[dict[str, Any]] = {
    "backend": LocalBackend(),
    "cache": None,
    "callbacks": (),
    "timeout": None,
    "retries": 0,
    "limits": NO_LIMITS,
}


def root_config(pipeline: Pipeline) -> EffectiveConfig:
    """The configuration of a standalone run of ``pipeline`` (memoised: pipelines are immutable)."""
    found = pipeline.memo.get("root-config")
    if found is None:
        found = pipeline.memo["root-config"] = resolve(
            pipeline.config, pipeline.name, None, DEFAULTS
        )
    assert isinstance(found, EffectiveConfig)
    return found


def child_config(child: Pipeline, parent: EffectiveConfig) -> EffectiveConfig:
    """The configuration of ``child`` when the level with ``parent`` config runs it."""
    return resolve(child.config, child.name, parent, DEFAULTS)
