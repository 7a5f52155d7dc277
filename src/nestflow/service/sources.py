"""Where a registered pipeline comes from: its source, content hash, and a cache of loaded ones.

A source is a YAML workflow path or a ``module:attribute`` reference. These are the rules of
the command line's targets too: ``nestflow.cli.targets`` calls ``is_yaml`` and
``load_pipeline`` here. Loading a pipeline is slow (YAML compilation, imports), so the server
loads each registered source once per content hash.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Final

from nestflow.core.pipeline import Pipeline
from nestflow.errors import SpecError

YAML_SUFFIXES: Final = (".yaml", ".yml")


class SourceError(ValueError):
    """A pipeline source that cannot be loaded; the message says why and what to give."""


def resolved(source: str) -> str:
    """``source`` with a relative YAML path made absolute (against the working directory)."""
    if is_yaml(source):
        return str(Path(source).resolve())
    return source


def content_hash(source: str) -> str:
    """``sha256:<hex>`` of a YAML file's bytes, or of a ``module:attribute`` reference."""
    if is_yaml(source):
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise SourceError(f"Cannot read the workflow file `{source}`: {exc}.") from None
    else:
        data = source.encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def load_pipeline(source: str) -> Pipeline:
    """The pipeline ``source`` names; ``SourceError`` when it cannot be loaded."""
    if is_yaml(source):
        from nestflow.spec.loader import load_with_files

        try:
            return load_with_files(Path(source))[0]
        except SpecError as exc:
            raise SourceError(f"{source}: {exc}") from None
    if ":" not in source:
        raise SourceError(
            f"`{source}` is neither a YAML file nor a `module:attribute` reference; give the "
            "path of a workflow file (flow.yaml) or a Pipeline object such as `flows:pipeline`."
        )
    return _from_reference(source)


def _from_reference(source: str) -> Pipeline:
    from nestflow.spec.imports import ReferenceProblem, import_reference

    try:
        found = import_reference(source)
    except ReferenceProblem as exc:
        raise SourceError(f"cannot load `{source}`: {exc}.") from None
    if not isinstance(found, Pipeline):
        raise SourceError(
            f"`{source}` is an object of type {type(found).__name__}, not a Pipeline; name a "
            "Pipeline object, or give a YAML workflow file."
        )
    return found


def is_yaml(source: str) -> bool:
    """Whether ``source`` names a workflow file (by its suffix, or an existing file)."""
    return source.endswith(YAML_SUFFIXES) or Path(source).is_file()


class PipelineCache:
    """Loaded pipelines by (source, content hash): a source is loaded again only once changed.

    Safe to share between threads; a pipeline is an immutable value, so one loaded pipeline
    serves concurrent runs.
    """

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str], Pipeline] = {}
        self._lock = threading.Lock()

    def get(self, source: str, digest: str) -> Pipeline:
        """The pipeline of ``source`` whose content hash was ``digest`` when registered."""
        key = (source, digest)
        with self._lock:
            found = self._loaded.get(key)
            if found is None:
                found = self._loaded[key] = load_pipeline(source)
        return found
