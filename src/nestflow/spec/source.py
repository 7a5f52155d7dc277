"""Reading a YAML file into plain data, keeping where every value was written.

``yaml.safe_load`` forgets positions; errors must cite file, line and column. The text is
composed into YAML nodes by PyYAML's safe loader and turned into dicts, lists and scalars
here, with a ``Marks`` table from each value's path (``("workflow", "steps", 0, "name")``)
to its line and column (1-based). Only the standard safe tags are read, plus ``!raw``: a
string never interpreted as a template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Key = str | int
"""One segment of a value's path in the file: a mapping key or a list index."""


class Raw(str):
    """A string tagged ``!raw``: kept as written, never read as a template."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Where:
    """A place in a file: 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Marks:
    """Where each value of one file was written, by its path."""

    __slots__ = ("_at", "file")

    def __init__(self, file: str) -> None:
        self.file = file
        self._at: dict[tuple[Key, ...], tuple[int, int]] = {}

    def note(self, path: tuple[Key, ...], node: yaml.Node) -> None:
        mark = node.start_mark
        self._at[path] = (mark.line + 1, mark.column + 1)

    def at(self, path: tuple[Key, ...]) -> Where:
        """Where ``path`` was written, or the nearest enclosing value that was."""
        while path not in self._at and path:
            path = path[:-1]
        line, column = self._at.get(path, (1, 1))
        return Where(self.file, line, column)


class SourceError(Exception):
    """The text is not YAML (or uses a tag nestflow does not read)."""

    def __init__(self, where: Where, message: str) -> None:
        super().__init__(message)
        self.where = where


_COLLECTIONS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml's when PyYAML was built with it: ten times faster on a
    100-step file); ``!raw`` is its only addition."""


def read(text: str, file: str) -> tuple[Any, Marks]:
    """The data of ``text`` (one YAML document) and where each value was written."""
    marks = Marks(file)
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = Where(file, mark.line + 1, mark.column + 1) if mark else Where(file, 1, 1)
            raise SourceError(where, f"not valid YAML: {exc.problem or exc}") from None
        except yaml.YAMLError as exc:
            raise SourceError(Where(file, 1, 1), f"not valid YAML: {exc}") from None
        if node is None:
            return None, marks
        return _Reader(loader, marks).value(node, ()), marks
    finally:
        loader.dispose()


class _Reader:
    """Turns composed nodes into data, noting each value's place."""

    def __init__(self, loader: _Loader, marks: Marks) -> None:
        self.loader = loader
        self.marks = marks

    def _where(self, node: yaml.Node) -> Where:
        return Where(self.marks.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def value(self, node: yaml.Node, path: tuple[Key, ...]) -> Any:
        self.marks.note(path, node)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _COLLECTIONS:
            raise SourceError(
                self._where(node),
                f"the tag {node.tag} is not read here: nestflow reads plain YAML values and "
                "the !raw tag (a string kept as written) only",
            )
        if isinstance(node, yaml.MappingNode):
            found: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise SourceError(self._where(key_node), "a mapping key must be a plain value")
                key = self.scalar(key_node)
                if key in found:
                    raise SourceError(self._where(key_node), f"the key `{key}` is given twice")
                found[key] = self.value(value_node, (*path, key))
            return found
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def scalar(self, node: yaml.Node) -> Any:
        if node.tag == "!raw":
            return Raw(node.value)
        if node.tag not in self.loader.yaml_constructors:  # !!python/... and custom tags
            raise SourceError(
                self._where(node),
                f"the tag {node.tag} is not read here: nestflow reads plain YAML values and "
                "the !raw tag (a string kept as written) only",
            )
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise SourceError(self._where(node), f"not a valid value: {exc}") from None


def read_file(path: Path) -> tuple[Any, Marks]:
    """``read`` of a file, named by its path."""
    return read(path.read_text(encoding="utf-8"), str(path))
