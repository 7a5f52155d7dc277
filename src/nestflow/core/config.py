"""The UNSET sentinel and effective configuration: explicit over inherited, per aspect."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

if TYPE_CHECKING:
    from nestflow.callbacks.events import PipelineCallback
    from nestflow.core.limits import Limits
    from nestflow.core.retry import Retry
    from nestflow.engines.protocol import Backend

ASPECTS: Final = ("backend", "cache", "callbacks", "timeout", "retries", "limits")
Source = Literal["explicit", "inherited", "default"]


class _SingletonMeta(enum.EnumMeta):
    """Lets ``type(UNSET)()`` give ``UNSET``, as constructing a singleton's class should."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(*(args or ("UNSET",)), **kwargs)


class _UnsetType(enum.Enum, metaclass=_SingletonMeta):
    """Not given here: inherit from the pipeline running this one.

    A one-member enum, the sentinel idiom type checkers understand: after
    ``if x is UNSET: ...`` they know ``x`` is no longer ``UNSET``. Enum members also keep
    their identity through pickle and copy.
    """

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return False


UNSET: Final = _UnsetType.UNSET
"""Sentinel meaning "not configured here, inherit"; distinct from ``None`` ("explicitly off")."""

Unset: TypeAlias = _UnsetType
"""The type of ``UNSET``, for annotations: ``timeout: float | None | Unset = UNSET``."""


class Added(tuple):  # type: ignore[type-arg]
    """Callbacks a level adds to those it inherits (``with_callbacks(..., add=True)``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Added({list(self)!r})"


@dataclass(frozen=True, slots=True)
class EffectiveConfig:
    """The backend, cache, callbacks, timeout, retries and limits in force at one level of
    a run."""

    backend: Backend
    # ``Cache | None`` in fact; Any until the runtime narrows it where it knows a cache is set.
    cache: Any
    callbacks: tuple[PipelineCallback, ...]
    timeout: float | None
    retries: int | Retry
    limits: Limits
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
        if aspect == "limits" and mine is not UNSET:  # merged field by field
            mine = mine.over(parent.limits if parent is not None else defaults["limits"])
        if isinstance(mine, Added):  # callbacks added to the inherited ones
            below = parent.callbacks if parent is not None else defaults["callbacks"]
            mine = (*(below or ()), *mine)
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
