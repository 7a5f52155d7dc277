"""Reading a YAML file into plain data, keeping where every value was written.

``yaml.safe_load`` forgets positions; errors must cite file, line and column. The text is
composed into YAML nodes by PyYAML's safe loader and turned into dicts, lists and scalars
here, with a ``Marks`` table from each value's path (``("workflow", "steps", 0, "name")``)
to its line and column (1-based). Only the standard safe tags are read, plus ``!raw``: a
string never interpreted as a template.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

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
_SCALAR_NAMES = ("bool", "int", "float", "binary", "timestamp")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml's when PyYAML was built with it: ten times faster on a
    100-step file); ``!raw`` is its only addition.

    The tag of each plain scalar is resolved as PyYAML's resolver does, remembered by text
    for the document: a workflow repeats its keys (``name``, ``type``, ``inputs``) in every
    step, and each resolution tries the YAML 1.1 patterns its first character may start.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._plain_tags: dict[str, str] = {}

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
        resolvers = self.yaml_implicit_resolvers
        if (
            kind is not yaml.ScalarNode
            or not implicit[0]
            or self.yaml_path_resolvers
            or None in resolvers
        ):
            return super().resolve(kind, value, implicit)  # type: ignore[no-any-return]
        tag = self._plain_tags.get(value)
        if tag is None:  # BaseResolver.resolve for a plain scalar without path resolvers
            tag = self.DEFAULT_SCALAR_TAG
            for candidate, pattern in resolvers.get(value[:1], ()):
                if pattern.match(value):
                    tag = candidate
                    break
            self._plain_tags[value] = tag
        return tag


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


_STR: Final = "tag:yaml.org,2002:str"
_NULL: Final = "tag:yaml.org,2002:null"
_SCALARS: Final[Mapping[str, Callable[[Any, yaml.Node], Any]]] = {
    tag: _Loader.yaml_constructors[tag]
    for tag in (f"tag:yaml.org,2002:{name}" for name in _SCALAR_NAMES)
}
"""The safe loader's constructors of the other standard scalar tags: plain functions of a
node (the collection constructors are generators, and stay with ``construct_object``)."""


class _Reader:
    """Turns composed nodes into data, noting each value's place.

    The values are those ``yaml.safe_load`` gives: the composer has already resolved each
    plain scalar's tag (YAML 1.1: ``yes`` is a bool, ``017`` an octal int, ``1:30`` a
    base-60 int), so a string is its node's text and ``null`` is ``None`` without asking
    PyYAML's ``construct_object``; the other standard scalar tags call the safe loader's
    own constructors directly, and anything else goes through ``construct_object``.
    """

    def __init__(self, loader: _Loader, marks: Marks) -> None:
        self.loader = loader
        self.marks = marks
        self._at = marks._at
        self._open: set[int] = set()
        """The collection nodes being read, to refuse an alias inside its own value."""

    def _where(self, node: yaml.Node) -> Where:
        return Where(self.marks.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def value(self, node: yaml.Node, path: tuple[Key, ...]) -> Any:
        mark = node.start_mark
        self._at[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if node.tag not in _COLLECTIONS:
            raise SourceError(
                self._where(node),
                f"the tag {node.tag} is not read here: nestflow reads plain YAML values and "
                "the !raw tag (a string kept as written) only",
            )
        if id(node) in self._open:
            raise SourceError(
                self._where(node),
                "an alias refers to the value that holds it: a value cannot contain itself",
            )
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
            return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self._open.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: tuple[Key, ...]) -> dict[Any, Any]:
        found: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SourceError(self._where(key_node), "a mapping key must be a plain value")
            key = key_node.value if key_node.tag == _STR else self.scalar(key_node)
            if key in found:
                raise SourceError(self._where(key_node), f"the key `{key}` is given twice")
            if value_node.tag == _STR and isinstance(value_node, yaml.ScalarNode):
                mark = value_node.start_mark  # the most common value, read in line
                self._at[(*path, key)] = (mark.line + 1, mark.column + 1)
                found[key] = value_node.value
            else:
                found[key] = self.value(value_node, (*path, key))
        return found

    def scalar(self, node: yaml.Node) -> Any:
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag == _NULL:
            return None
        if tag == "!raw":
            return Raw(node.value)
        construct = _SCALARS.get(tag)
        if construct is not None:
            try:
                return construct(self.loader, node)
            except yaml.YAMLError as exc:
                raise SourceError(self._where(node), f"not a valid value: {exc}") from None
            except (ValueError, LookupError, AttributeError):  # `!!int abc` and such
                message = f"not a valid value: `{node.value}` cannot be read as {tag}"
                raise SourceError(self._where(node), message) from None
        if tag not in self.loader.yaml_constructors:  # !!python/... and custom tags
            raise SourceError(
                self._where(node),
                f"the tag {tag} is not read here: nestflow reads plain YAML values and "
                "the !raw tag (a string kept as written) only",
            )
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise SourceError(self._where(node), f"not a valid value: {exc}") from None


def read_file(path: Path) -> tuple[Any, Marks]:
    """``read`` of a file, named by its path."""
    return read(path.read_text(encoding="utf-8"), str(path))
