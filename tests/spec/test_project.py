"""Project defaults: finding the file, reading keys and profiles, and the file access check."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from nestflow.errors import SpecValidationError
from nestflow.spec.project import PROFILE_VARIABLE, Project, allowed, load_project


@pytest.fixture(autouse=True)
def _no_profile_from_the_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROFILE_VARIABLE, raising=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def messages(error: SpecValidationError) -> str:
    return "\n".join(message for _, _, _, message in error.problems)


# --- finding the file ------------------------------------------------------------------------


def test_without_a_project_file_every_default_applies_from_the_start_directory(
    tmp_path: Path,
) -> None:
    project = load_project(tmp_path)
    assert project.source is None
    assert project.profile is None
    assert (project.max_depth, project.max_total_steps) == (10, 1000)
    assert (project.memory_limit_mb, project.memory_warning_mb) == (None, None)
    assert project.registry_dirs == (tmp_path.resolve() / "pipelines",)
    assert project.allowed_pipeline_dirs == ()
    assert project.workspace_root == tmp_path.resolve() / ".nestflow" / "workspaces"


def test_the_search_climbs_to_the_first_pyproject_with_a_nestflow_table(tmp_path: Path) -> None:
    config = write(tmp_path / "pyproject.toml", "[tool.nestflow]\nmax_depth = 4\n")
    start = tmp_path / "flows" / "review"
    start.mkdir(parents=True)
    project = load_project(start)
    assert project.source == config.resolve()
    assert project.max_depth == 4


def test_a_pyproject_without_a_nestflow_table_does_not_stop_the_search(tmp_path: Path) -> None:
    config = write(tmp_path / "nestflow.toml", "max_depth = 3\n")
    write(tmp_path / "app" / "pyproject.toml", "[project]\nname = 'app'\n[tool.ruff]\n")
    project = load_project(tmp_path / "app")
    assert project.source == config.resolve()
    assert project.max_depth == 3


def test_nestflow_toml_wins_over_pyproject_in_the_same_directory(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.nestflow]\nmax_depth = 4\n")
    config = write(tmp_path / "nestflow.toml", "max_depth = 7\n")
    project = load_project(tmp_path)
    assert project.source == config.resolve()
    assert project.max_depth == 7


def test_the_nearest_file_is_the_only_one_read(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.nestflow]\nmax_depth = 4\nmax_total_steps = 9\n")
    inner = write(tmp_path / "sub" / "nestflow.toml", "max_depth = 2\n")
    project = load_project(tmp_path / "sub")
    assert project.source == inner.resolve()
    assert (project.max_depth, project.max_total_steps) == (2, 1000)


def test_a_file_as_start_searches_from_its_directory(tmp_path: Path) -> None:
    write(tmp_path / "flows" / "nestflow.toml", "max_total_steps = 50\n")
    root_file = write(tmp_path / "flows" / "main.yaml", "version: 1\n")
    assert load_project(root_file).max_total_steps == 50


# --- values ----------------------------------------------------------------------------------


def test_every_key_is_read_and_paths_resolve_against_the_file_that_set_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path / "proj" / "pyproject.toml",
        """\
        [tool.nestflow]
        max_depth = 0
        max_total_steps = 25
        memory_limit_mb = 512
        memory_warning_mb = 300.5
        registry_dirs = ["flows", "../shared/flows"]
        allowed_pipeline_dirs = ["vendor"]
        workspace_root = "scratch/ws"
        """,
    )
    start = tmp_path / "proj" / "deep" / "down"
    start.mkdir(parents=True)
    monkeypatch.chdir(start)
    project = load_project(start)
    root = (tmp_path / "proj").resolve()
    assert project.root == root
    assert (project.max_depth, project.max_total_steps) == (0, 25)
    assert (project.memory_limit_mb, project.memory_warning_mb) == (512, 300.5)
    assert project.registry_dirs == (root / "flows", tmp_path.resolve() / "shared" / "flows")
    assert project.allowed_pipeline_dirs == (root / "vendor",)
    assert project.workspace_root == root / "scratch" / "ws"


def test_defaults_not_set_in_the_file_resolve_against_its_directory(tmp_path: Path) -> None:
    write(tmp_path / "nestflow.toml", "max_depth = 5\n")
    (tmp_path / "sub").mkdir()
    project = load_project(tmp_path / "sub")
    assert project.registry_dirs == (tmp_path.resolve() / "pipelines",)
    assert project.workspace_root == tmp_path.resolve() / ".nestflow" / "workspaces"


def test_the_project_is_a_frozen_value(tmp_path: Path) -> None:
    project = load_project(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        project.max_depth = 3  # type: ignore[misc]


def test_pipeline_dirs_are_the_root_directory_registry_dirs_and_allowed_dirs(
    tmp_path: Path,
) -> None:
    write(tmp_path / "nestflow.toml", 'allowed_pipeline_dirs = ["vendor"]\n')
    project = load_project(tmp_path)
    root = tmp_path.resolve()
    assert project.pipeline_dirs(tmp_path / "flows") == (
        root / "flows",
        root / "pipelines",
        root / "vendor",
    )


# --- profiles --------------------------------------------------------------------------------

PROFILED = """\
[tool.nestflow]
max_depth = 6
max_total_steps = 200
registry_dirs = ["flows"]

[tool.nestflow.profiles.test]
max_total_steps = 5
registry_dirs = ["test_flows"]

[tool.nestflow.profiles.ci]
memory_limit_mb = 256
"""


def test_an_explicit_profile_overrides_only_the_keys_it_sets(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", PROFILED)
    project = load_project(tmp_path, profile="test")
    assert project.profile == "test"
    assert (project.max_depth, project.max_total_steps) == (6, 5)
    assert project.registry_dirs == (tmp_path.resolve() / "test_flows",)


def test_the_profile_is_read_from_the_environment_when_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "pyproject.toml", PROFILED)
    monkeypatch.setenv(PROFILE_VARIABLE, "ci")
    project = load_project(tmp_path)
    assert project.profile == "ci"
    assert project.memory_limit_mb == 256
    assert project.max_total_steps == 200


def test_an_explicit_profile_of_none_ignores_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "pyproject.toml", PROFILED)
    monkeypatch.setenv(PROFILE_VARIABLE, "test")
    assert load_project(tmp_path, profile=None).max_total_steps == 200


def test_an_empty_environment_variable_selects_no_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "pyproject.toml", PROFILED)
    monkeypatch.setenv(PROFILE_VARIABLE, "")
    assert load_project(tmp_path).profile is None


def test_profiles_of_nestflow_toml_sit_under_a_top_level_profiles_table(tmp_path: Path) -> None:
    write(tmp_path / "nestflow.toml", "max_depth = 3\n[profiles.deep]\nmax_depth = 30\n")
    assert load_project(tmp_path, profile="deep").max_depth == 30


def test_an_unknown_profile_lists_the_defined_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "pyproject.toml", PROFILED)
    monkeypatch.setenv(PROFILE_VARIABLE, "tets")
    with pytest.raises(SpecValidationError) as caught:
        load_project(tmp_path)
    [(file, _, _, message)] = caught.value.problems
    assert file == str((tmp_path / "pyproject.toml").resolve())
    assert "`tets`" in message
    assert PROFILE_VARIABLE in message
    assert "Did you mean `test`?" in message
    assert "Defined profiles: `ci`, `test`." in message


def test_a_profile_selected_without_any_project_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecValidationError, match=r"no nestflow\.toml and no pyproject\.toml"):
        load_project(tmp_path, profile="ci")


def test_a_file_without_profiles_says_how_to_add_one(tmp_path: Path) -> None:
    write(tmp_path / "nestflow.toml", "max_depth = 3\n")
    with pytest.raises(SpecValidationError) as caught:
        load_project(tmp_path, profile="ci")
    assert "add one as [profiles.<name>]" in messages(caught.value)


# --- mistakes --------------------------------------------------------------------------------


def test_an_unknown_key_names_the_file_and_the_closest_valid_key(tmp_path: Path) -> None:
    config = write(tmp_path / "pyproject.toml", "[tool.nestflow]\nmax_dept = 3\n")
    with pytest.raises(SpecValidationError) as caught:
        load_project(tmp_path)
    [(file, line, column, message)] = caught.value.problems
    assert (file, line, column) == (str(config.resolve()), 0, 0)
    assert "[tool.nestflow]: unknown key `max_dept`. Did you mean `max_depth`?" in message
    assert "`registry_dirs`" in message
    assert str(config.resolve()) in str(caught.value)


def test_an_unknown_key_inside_a_profile_names_the_profile(tmp_path: Path) -> None:
    write(tmp_path / "nestflow.toml", "[profiles.ci]\nworkspace = 'ws'\n")
    with pytest.raises(SpecValidationError) as caught:
        load_project(tmp_path, profile="ci")
    assert "[profiles.ci]: unknown key `workspace`. Did you mean `workspace_root`?" in messages(
        caught.value
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("max_depth = -1", "`max_depth` must be an integer of at least 0, found the integer -1"),
        ("max_depth = true", "`max_depth` must be an integer of at least 0, found the boolean"),
        ("max_total_steps = 0", "`max_total_steps` must be an integer of at least 1"),
        ("max_total_steps = 2.5", "found the float 2.5"),
        ("memory_limit_mb = '1GB'", "a positive number of MiB, such as 512, found the string"),
        ("memory_warning_mb = 0", "`memory_warning_mb` must be a positive number of MiB"),
        ("registry_dirs = 'flows'", 'a list of directory paths, such as ["flows"]'),
        ("allowed_pipeline_dirs = [1]", "`allowed_pipeline_dirs` must be a list of directory"),
        ("workspace_root = []", "`workspace_root` must be a directory path as a string"),
        ("workspace_root = 2024-01-01", "found the date/time"),
        ("max_depth = {a = 1}", "found a table"),
    ],
)
def test_a_value_of_the_wrong_type_says_what_was_expected_and_found(
    tmp_path: Path, line: str, expected: str
) -> None:
    write(tmp_path / "nestflow.toml", line + "\n")
    with pytest.raises(SpecValidationError) as caught:
        load_project(tmp_path)
    assert expected in messages(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        """\
        [tool.nestflow]
        max_dept = 3
        max_total_steps = "many"
        [tool.nestflow.profiles.ci]
        registry_dir = ["x"]
        """,
    )
    with pytest.raises(SpecValidationError, match=r"\(3 problems\)") as caught:
        load_project(tmp_path, profile="cj")
    text = messages(caught.value)
    assert "`max_dept`" in text
    assert "`max_total_steps` must be" in text
    assert "`cj`" in text
    assert "`registry_dir`" not in text  # the unselected profile is not read


def test_a_warning_level_at_or_above_the_limit_is_an_error(tmp_path: Path) -> None:
    write(
        tmp_path / "nestflow.toml",
        "memory_limit_mb = 512\n[profiles.small]\nmemory_limit_mb = 200\nmemory_warning_mb = 300\n",
    )
    assert load_project(tmp_path).memory_limit_mb == 512
    with pytest.raises(SpecValidationError, match="must be below memory_limit_mb"):
        load_project(tmp_path, profile="small")


def test_invalid_toml_is_reported_with_its_line(tmp_path: Path) -> None:
    config = write(tmp_path / "nestflow.toml", "max_depth = 3\nregistry_dirs = ]\n")
    with pytest.raises(SpecValidationError) as caught:
        load_project(tmp_path)
    [(file, line, column, message)] = caught.value.problems
    assert (file, line, column) == (str(config.resolve()), 2, 17)
    assert message.startswith("not valid TOML")


def test_a_nestflow_entry_that_is_not_a_table_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool]\nnestflow = 3\n")
    with pytest.raises(SpecValidationError, match="must be a table"):
        load_project(tmp_path)


def test_profiles_that_are_not_tables_are_errors(tmp_path: Path) -> None:
    write(tmp_path / "nestflow.toml", "profiles = 3\n")
    with pytest.raises(SpecValidationError, match="write each profile under"):
        load_project(tmp_path, profile="ci")
    write(tmp_path / "nestflow.toml", "[profiles]\nci = 3\n")
    with pytest.raises(SpecValidationError, match=r"\(1 problem\)") as caught:
        load_project(tmp_path, profile="ci")
    assert "[profiles.ci] must be a table of settings" in messages(caught.value)


# --- file access -----------------------------------------------------------------------------


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    flows, outside = tmp_path / "flows", tmp_path / "outside"
    write(flows / "sub" / "a.yaml", "")
    write(outside / "b.yaml", "")
    return flows, outside


def test_allowed_accepts_a_file_inside_a_root(roots: tuple[Path, Path]) -> None:
    flows, outside = roots
    assert allowed(flows / "sub" / "a.yaml", [outside, flows])
    assert allowed(flows, [flows])


def test_allowed_rejects_a_file_outside_every_root(roots: tuple[Path, Path]) -> None:
    flows, outside = roots
    assert not allowed(outside / "b.yaml", [flows])
    assert not allowed(outside / "b.yaml", [])


def test_allowed_resolves_dot_dot_before_judging(roots: tuple[Path, Path]) -> None:
    flows, _ = roots
    assert not allowed(flows / ".." / "outside" / "b.yaml", [flows])
    assert allowed(flows / "sub" / ".." / "sub" / "a.yaml", [flows])


def test_allowed_rejects_a_symlink_that_escapes_its_root(roots: tuple[Path, Path]) -> None:
    flows, outside = roots
    (flows / "link.yaml").symlink_to(outside / "b.yaml")
    (flows / "linked_dir").symlink_to(outside, target_is_directory=True)
    assert not allowed(flows / "link.yaml", [flows])
    assert not allowed(flows / "linked_dir" / "b.yaml", [flows])


def test_allowed_follows_a_symlinked_root_to_where_it_leads(roots: tuple[Path, Path]) -> None:
    flows, outside = roots
    alias = flows.parent / "alias"
    alias.symlink_to(flows, target_is_directory=True)
    assert allowed(flows / "sub" / "a.yaml", [alias])
    assert allowed(alias / "sub" / "a.yaml", [flows])
    assert not allowed(outside / "b.yaml", [alias])


def test_a_prefix_of_the_name_is_not_inside(tmp_path: Path) -> None:
    write(tmp_path / "flows2" / "a.yaml", "")
    assert not allowed(tmp_path / "flows2" / "a.yaml", [tmp_path / "flows"])


def test_project_default_is_what_load_project_gives_without_a_file(tmp_path: Path) -> None:
    assert Project.default(tmp_path) == load_project(tmp_path)
