"""``nestflow cache stats|clear|prune --path DIR`` on real DiskCache folders."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_workspace import Invoke
from click.testing import Result

from nestflow import DiskCache

DAY = 86400.0


def _fill(folder: Path, values: dict[str, object], age: float = 0.0) -> None:
    """Store ``values`` under their keys as signatures, ``age`` seconds old."""
    cache = DiskCache(folder)
    cache.clock = lambda: time.time() - age
    for signature, value in values.items():
        cache.store(signature, "node", ("out",), value)
    cache.close()


def _signatures(folder: Path) -> set[str]:
    with sqlite3.connect(folder / "cache.sqlite3") as conn:
        return {row[0] for row in conn.execute("SELECT signature FROM entries")}


def test_stats_prune_and_clear_a_cache_the_runs_filled(script: Invoke, workspace: Path) -> None:
    for x in ("1", "2", "3"):
        assert script("run", "flowfuncs:cached", "-i", f"x={x}").returncode == 0
    stats = script("cache", "stats", "--path", "cache")
    assert (stats.returncode, stats.stdout) == (0, "cache: 3 entries, 15 B\n")
    kept = script("cache", "prune", "--path", "cache", "--older-than", "7d")
    assert kept.stdout == "cache: pruned, 0 entries removed; 3 entries left, 15 B\n"
    trimmed = script("cache", "prune", "--path", "cache", "--max-bytes", "10B")
    assert trimmed.stdout == "cache: pruned, 1 entry removed; 2 entries left, 10 B\n"
    cleared = script("cache", "clear", "--path", "cache")
    assert cleared.stdout == "cache: cleared, 2 entries removed\n"
    assert script("cache", "stats", "--path", "cache").stdout == "cache: 0 entries, 0 B\n"


def test_prune_older_than_removes_only_old_entries(
    cli: Callable[..., Result], workspace: Path
) -> None:
    _fill(workspace / "c", {"a" * 64: 1, "b" * 64: 2}, age=10 * DAY)
    _fill(workspace / "c", {"c" * 64: 3}, age=DAY)
    done = cli("cache", "prune", "--path", "c", "--older-than", "7d")
    assert done.stdout.startswith("c: pruned, 2 entries removed; 1 entry left")
    assert _signatures(workspace / "c") == {"c" * 64}
    assert cli("cache", "prune", "--path", "c", "--older-than", "12h").stdout.startswith(
        "c: pruned, 1 entry removed"
    )
    _fill(workspace / "c", {"d" * 64: 4})
    assert cli("cache", "stats", "--path", "c").stdout == "c: 1 entry, 5 B\n"
    assert cli("cache", "clear", "--path", "c").stdout == "c: cleared, 1 entry removed\n"


def test_prune_without_limits_removes_entries_whose_values_cannot_be_read(
    cli: Callable[..., Result], workspace: Path
) -> None:
    folder = workspace / "c"
    big, small, fine = "a" * 64, "b" * 64, "c" * 64
    _fill(folder, {big: b"x" * 200_000, small: "small", fine: "fine"})
    (value_file,) = (folder / "blobs").glob("*/*")
    value_file.write_bytes(b"truncated")
    with sqlite3.connect(folder / "cache.sqlite3") as conn:
        conn.execute(
            "UPDATE blobs SET data = X'00' WHERE key = "
            "(SELECT blob_key FROM entries WHERE signature = ?)",
            (small,),
        )
    done = cli("cache", "prune", "--path", "c")
    assert done.exit_code == 0
    assert done.stdout.startswith("c: pruned, 2 entries removed; 1 entry left")
    assert _signatures(folder) == {fine}
    assert list((folder / "blobs").glob("*/*")) == []
    assert DiskCache(folder).read_values([fine]) == {fine: "fine"}


@pytest.mark.parametrize("action", ["stats", "clear", "prune"])
def test_a_folder_without_a_cache_exits_2_and_is_left_alone(
    cli: Callable[..., Result], workspace: Path, action: str
) -> None:
    done = cli("cache", action, "--path", "nothing-here")
    assert done.exit_code == 2
    assert "No DiskCache in nothing-here" in done.stderr
    assert not (workspace / "nothing-here").exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [("--older-than", "7 parsecs"), ("--max-bytes", "1GX"), ("--max-bytes", "-1")],
)
def test_an_amount_without_a_known_unit_exits_2(
    cli: Callable[..., Result], workspace: Path, option: str, value: str
) -> None:
    _fill(workspace / "c", {"a" * 64: 1})
    done = cli("cache", "prune", "--path", "c", option, value)
    assert done.exit_code == 2
    assert "is not an amount such as" in done.stderr
    assert _signatures(workspace / "c") == {"a" * 64}


def test_the_path_is_required(cli: Callable[..., Result]) -> None:
    done = cli("cache", "stats")
    assert done.exit_code == 2
    assert "Missing option '--path'" in done.stderr
