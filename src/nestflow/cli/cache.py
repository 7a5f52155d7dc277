"""``nestflow cache stats|clear|prune --path DIR``: manage a DiskCache folder.

``prune`` with ``--older-than`` or ``--max-bytes`` uses ``DiskCache.prune``. Without limits
it removes the entries whose values can no longer be read (``DiskCache.remove_unreadable``),
then the values no entry refers to.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from nestflow.cache.disk import DiskCache
from nestflow.cache.sqlite import DATABASE
from nestflow.cli.problems import InvalidCall, RunFailed
from nestflow.cli.units import duration_option, size_option, size_text
from nestflow.errors import CacheStoreError

path_option = click.option(
    "--path", "folder", required=True, metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path), help="The DiskCache folder.",
)  # fmt: skip


@click.group("cache")
def cache_group() -> None:
    """Inspect and manage a DiskCache folder."""


@cache_group.command("stats")
@path_option
def stats_command(folder: Path) -> None:
    """Entries and the total size of their values."""
    with open_cache(folder) as cache:
        found = cache.stats()
    click.echo(f"{folder}: {_entries(found['entries'])}, {size_text(found['bytes'])}")


@cache_group.command("clear")
@path_option
def clear_command(folder: Path) -> None:
    """Remove every entry and value."""
    with open_cache(folder) as cache:
        count = cache.stats()["entries"]
        cache.clear()
    click.echo(f"{folder}: cleared, {_entries(count)} removed")


@cache_group.command("prune")
@path_option
@click.option(
    "--older-than", callback=duration_option, metavar="AGE",
    help="Remove entries stored longer ago than AGE (7d, 12h, 30m, 90s).",
)  # fmt: skip
@click.option(
    "--max-bytes", callback=size_option, metavar="SIZE",
    help="Then remove the oldest entries until the values total at most SIZE (1GB, 512MiB).",
)  # fmt: skip
def prune_command(folder: Path, older_than: float | None, max_bytes: int | None) -> None:
    """Remove old entries; without limits, the entries whose values cannot be read."""
    with open_cache(folder) as cache:
        if older_than is None and max_bytes is None:
            count = cache.remove_unreadable()
            cache.prune()  # and the values no entry refers to
        else:
            count = cache.prune(older_than=older_than, max_bytes=max_bytes)
        left = cache.stats()
    click.echo(
        f"{folder}: pruned, {_entries(count)} removed; {_entries(left['entries'])} left, "
        f"{size_text(left['bytes'])}"
    )


@contextmanager
def open_cache(folder: Path) -> Iterator[DiskCache]:
    """The DiskCache in ``folder``, closed after use; a folder without one is refused, not
    made into one. Store failures end the command with exit 1."""
    if not (folder / DATABASE).is_file():
        raise InvalidCall(
            f"No DiskCache in {folder}: the folder has no {DATABASE}. Give the path of a "
            "DiskCache folder (the one its pipelines write to)."
        )
    cache = DiskCache(folder, strict=True)
    try:
        yield cache
    except CacheStoreError as exc:
        raise RunFailed(f"Error: {exc}") from None
    finally:
        cache.close()


def _entries(count: int) -> str:
    return f"{count} entr{'y' if count == 1 else 'ies'}"
