"""Project files parsed once and reused while their bytes stay the same: edits are always seen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nestflow.errors import SpecValidationError
from nestflow.spec import project as project_module
from nestflow.spec.project import PROFILE_VARIABLE, load_project


@pytest.fixture(autouse=True)
def _no_profile_from_the_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROFILE_VARIABLE, raising=False)


def test_an_edit_keeping_size_and_modification_time_is_seen(tmp_path: Path) -> None:
    settings = tmp_path / "nestflow.toml"
    settings.write_text("max_depth = 3\n")
    assert load_project(tmp_path).max_depth == 3
    stat = settings.stat()
    settings.write_text("max_depth = 5\n")
    os.utime(settings, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert settings.stat().st_size == stat.st_size
    assert load_project(tmp_path).max_depth == 5
    assert load_project(tmp_path).max_depth == 5


def test_a_pyproject_gaining_or_losing_its_table_is_seen(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n')
    assert load_project(tmp_path).source is None
    pyproject.write_text('[project]\nname = "x"\n[tool.nestflow]\nmax_depth = 2\n')
    found = load_project(tmp_path)
    assert (found.source, found.max_depth) == (pyproject, 2)
    pyproject.write_text('[project]\nname = "x"\n')
    assert load_project(tmp_path).source is None


def test_a_file_that_does_not_parse_fails_every_time_until_fixed(tmp_path: Path) -> None:
    settings = tmp_path / "nestflow.toml"
    for text, fails in [("max_depth = \n", True), ("max_depth = 4\n", False)] * 2:
        settings.write_text(text)
        if fails:
            with pytest.raises(SpecValidationError, match="project settings"):
                load_project(tmp_path)
        else:
            assert load_project(tmp_path).max_depth == 4


def test_a_file_that_is_not_utf8_is_a_problem_of_its_own(tmp_path: Path) -> None:
    settings = tmp_path / "nestflow.toml"
    settings.write_bytes(b"max_depth = 3 # \xff\n")
    with pytest.raises(SpecValidationError) as caught:
        load_project(tmp_path)
    ((file, line, column, message),) = caught.value.problems
    assert (file, line, column) == (str(settings), 0, 0)
    assert message.startswith("not valid TOML: the file is not UTF-8 text")


def test_reused_settings_load_the_same_project(tmp_path: Path) -> None:
    settings = tmp_path / "nestflow.toml"
    settings.write_text('registry_dirs = ["flows"]\nmax_depth = 4\n[profiles.ci]\nmax_depth = 1\n')
    first = load_project(tmp_path, profile="ci")
    assert load_project(tmp_path, profile="ci") == first
    assert load_project(tmp_path, profile=None).max_depth == 4
    assert first.max_depth == 1


def test_at_most_a_few_files_are_kept(tmp_path: Path) -> None:
    for i in range(40):
        folder = tmp_path / f"p{i}"
        folder.mkdir()
        (folder / "nestflow.toml").write_text(f"max_depth = {i}\n")
        assert load_project(folder).max_depth == i
    kept = project_module._PARSED._kept
    assert len(kept) <= 32
    assert (tmp_path / "p39" / "nestflow.toml").resolve() in kept
    assert (tmp_path / "p0" / "nestflow.toml").resolve() not in kept
