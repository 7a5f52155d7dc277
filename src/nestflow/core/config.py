"""The UNSET sentinel and effective configuration: explicit over inherited, per aspect."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

ASPECTS: Final = ("backend", "cache", "callbacks", "timeout", "retries")
Source = Literal["explicit", "inherited", "default"]


class _UnsetType:
    """Not given here: inherit from the pipeline running this one."""

    _instance: _UnsetType | None = None

    def __new__(cls) -> _UnsetType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Final = _UnsetType()
"""Sentinel meaning "not configured here, inherit"; distinct from ``None`` ("explicitly off")."""


@dataclass(frozen=True, slots=True)
class EffectiveConfig:
    """The backend, cache, callbacks, timeout and retries in force at one level of a run."""

    backend: Any
    cache: Any
    callbacks: tuple[Any, ...]
    timeout: float | None
    retries: Any
    sources: Mapping[str, Source]
    origins: Mapping[str, str | None]

    def source(self, aspect: str) -> Source:
        """``"explicit"``, ``"inherited"`` or ``"default"`` for one aspect."""
        _check_aspect(aspect)
        return self.sources[aspect]

    def origin(self, aspect: str) -> str | None:
        """The name of the pipeline that set ``aspect``, or ``None`` for a library default."""
        _check_aspect(aspect)
        return self.origins[aspect]

    def value(self, aspect: str) -> Any:
        """The effective value of one aspect."""
        _check_aspect(aspect)
        return getattr(self, aspect)


def _check_aspect(aspect: str) -> None:
    if aspect not in ASPECTS:
        raise ValueError(
            f"Unknown configuration aspect `{aspect}`. Expected one of: {', '.join(ASPECTS)}."
        )


def resolve(
    own: Mapping[str, Any], owner: str, parent: EffectiveConfig | None, defaults: Mapping[str, Any]
) -> EffectiveConfig:
    """Resolve one level: explicit values win, then the parent's effective values, then defaults.

    ``parent`` is the configuration of the pipeline running this one *in this call*;
    ``None`` for a standalone run, which therefore sees library defaults only.
    """
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    origins: dict[str, str | None] = {}
    for aspect in ASPECTS:
        mine = own.get(aspect, UNSET)
        if mine is not UNSET:
            values[aspect], sources[aspect], origins[aspect] = mine, "explicit", owner
        elif parent is not None:
            values[aspect] = getattr(parent, aspect)
            inherited_default = parent.sources[aspect] == "default"
            sources[aspect] = "default" if inherited_default else "inherited"
            origins[aspect] = parent.origins[aspect]
        else:
            values[aspect], sources[aspect], origins[aspect] = defaults[aspect], "default", None
    values["callbacks"] = tuple(values["callbacks"] or ())
    return EffectiveConfig(sources=sources, origins=origins, **values)
