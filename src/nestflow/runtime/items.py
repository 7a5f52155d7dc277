"""Map items: which names are mapped, how collections pair up (zip or product)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from typing import Any

from nestflow.errors import GuardError, MapInputError


def map_names(map_over: Any, inputs: Sequence[str], where: str) -> tuple[str, ...]:
    """Normalise ``map_over`` to a tuple of input names, or raise ``MapInputError``."""
    if map_over is None:
        raise TypeError("map() needs map_over=: the input name(s) whose values are the items.")
    names = (map_over,) if isinstance(map_over, str) else tuple(map_over)
    unknown = [n for n in names if n not in inputs]
    if unknown or not names:
        listed = ", ".join(f"`{n}`" for n in inputs) or "(none)"
        raise MapInputError(
            f"map_over names {', '.join(f'`{n}`' for n in unknown) or '(none)'} are not inputs "
            f"of {where}; its inputs are: {listed}."
        )
    return names


def collections(values: Mapping[str, Any], names: tuple[str, ...]) -> list[Sequence[Any]]:
    """The mapped values as sequences; generators are materialised once."""
    found: list[Any] = []
    for name in names:
        value = values[name]
        if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
            raise MapInputError(
                f"Mapped input `{name}` must be a collection of items, got "
                f"{type(value).__name__}. To map over a single value, wrap it in a list: "
                f"{name}=[value]."
            )
        found.append(value if isinstance(value, Sized) else list(value))
    return found


def rows(
    names: tuple[str, ...], columns: list[Sequence[Any]], mode: str
) -> tuple[int, Iterator[tuple[Any, ...]]]:
    """How many items there are and their values, one tuple per item in item order."""
    if mode == "product":
        total = 1
        for column in columns:
            total *= len(column)
        return total, itertools.product(*columns)
    if mode != "zip":
        raise MapInputError(f"map_mode must be 'zip' or 'product', got {mode!r}.")
    lengths = {name: len(column) for name, column in zip(names, columns, strict=True)}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"`{n}` has length {k}" for n, k in lengths.items())
        raise MapInputError(
            f"map_mode='zip' needs mapped inputs of equal length: {listed}. "
            "Make them the same length, or use map_mode='product' for every combination."
        )
    total = len(columns[0]) if columns else 0
    return total, zip(*columns, strict=False)


class MapCall:
    """What one map is asked to do: its id, its inputs and how a failed item is treated.

    ``shown`` is what the level's start event shows; ``base`` the inputs every item shares;
    ``names`` the mapped inputs and ``columns`` their collections, paired by ``mode``. With
    ``keep_going`` (``on_error="continue"``) every item runs and a failed item gives ``None``
    at its position in every output; otherwise the map fails fast (SPEC 5.2).
    """

    __slots__ = ("base", "columns", "keep_going", "map_id", "mode", "names", "shown")

    def __init__(
        self,
        map_id: str,
        shown: dict[str, Any],
        base: dict[str, Any],
        names: tuple[str, ...],
        columns: list[Any],
        mode: str,
        keep_going: bool,
    ) -> None:
        self.map_id = map_id
        self.shown = shown
        self.base = base
        self.names = names
        self.columns = columns
        self.mode = mode
        self.keep_going = keep_going

    def stops(self, exc: BaseException) -> bool:
        """Whether an item's failure ends the map: always unless it keeps going, and a run
        guard's error even then."""
        return not self.keep_going or isinstance(exc, GuardError)
