"""The registry: YAML files found by workflow name, Python registrations, and lookup errors."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from nestflow import Pipeline, node
from nestflow import registry as registry_module
from nestflow.errors import InvalidNameError, InvalidOptionError, SpecValidationError
from nestflow.registry import Registry, default_registry, register, unregister
from nestflow.spec.project import PROFILE_VARIABLE, load_project


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def workflow(path: Path, name: str) -> Path:
    return write(path, f"version: 1\nworkflow:\n  name: {name}\n  steps: []\n")


def touch_later(path: Path) -> None:
    """Move a file's or directory's modification time forward, as a later edit would."""
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 5_000_000_000))


@node(output_name="doubled")
def double(x: int) -> int:
    return 2 * x


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    directory = tmp_path / "pipelines"
    workflow(directory / "scoring.yaml", "scoring")
    workflow(directory / "text" / "cleaning.yml", "cleaning")
    return directory


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files the registry reads, in order."""
    seen: list[Path] = []
    original = registry_module._claim

    def counting(path: Path) -> object:
        seen.append(path)
        return original(path)

    monkeypatch.setattr(registry_module, "_claim", counting)
    return seen


# --- files -----------------------------------------------------------------------------------


def test_yaml_files_are_found_recursively_by_workflow_name(flows: Path) -> None:
    registry = Registry([flows])
    assert registry.resolve("scoring") == flows.resolve() / "scoring.yaml"
    assert registry.resolve("cleaning") == flows.resolve() / "text" / "cleaning.yml"
    assert registry.names() == ["cleaning", "scoring"]


def test_relative_directories_are_taken_from_the_current_directory(
    flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(flows.parent)
    registry = Registry(["pipelines"])
    assert registry.directories == (flows.resolve(),)
    assert registry.resolve("scoring") == flows.resolve() / "scoring.yaml"


def test_a_file_using_the_raw_tag_is_registered(flows: Path) -> None:
    write(
        flows / "raw.yaml",
        """\
        workflow:
          name: raw_text
          global_vars: {pattern: !raw "{{ not a template }}"}
        """,
    )
    assert Registry([flows]).resolve("raw_text") == flows.resolve() / "raw.yaml"


def test_files_in_hidden_directories_are_not_registered(flows: Path) -> None:
    workflow(flows / ".archive" / "old.yaml", "old")
    assert "old" not in Registry([flows]).names()


def test_a_file_reached_twice_is_registered_once(flows: Path) -> None:
    (flows / "alias.yaml").symlink_to(flows / "scoring.yaml")
    registry = Registry([flows, flows / "text"])
    assert registry.resolve("scoring") == flows.resolve() / "alias.yaml"
    assert registry.resolve("cleaning") == flows.resolve() / "text" / "cleaning.yml"


def test_a_symlink_leading_outside_the_directories_is_skipped(flows: Path, tmp_path: Path) -> None:
    outside = workflow(tmp_path / "elsewhere" / "secret.yaml", "secret")
    (flows / "secret.yaml").symlink_to(outside)
    with pytest.raises(SpecValidationError) as caught:
        Registry([flows]).resolve("secret")
    [(_, _, _, message)] = caught.value.problems
    assert "secret.yaml (its real path leads outside the registry directories)" in message


# --- lookup errors ---------------------------------------------------------------------------


def test_an_unknown_name_lists_close_matches_directories_and_skipped_files(
    flows: Path, tmp_path: Path
) -> None:
    write(flows / "broken.yaml", "workflow: [\n")
    write(flows / "data.yaml", "rows: [1, 2]\n")
    write(flows / "numbered.yaml", "workflow:\n  name: 12\n")
    missing = tmp_path / "missing"
    registry = Registry([flows, missing])
    with pytest.raises(SpecValidationError, match="Unknown pipeline name `scorng`") as caught:
        registry.resolve("scorng", at=("main.yaml", 7, 20))
    [(file, line, column, message)] = caught.value.problems
    assert (file, line, column) == ("main.yaml", 7, 20)
    assert "Did you mean `scoring`?" in message
    assert "Known names: `cleaning`, `scoring`." in message
    assert f"{flows.resolve()} (5 YAML files)" in message
    assert f"{missing.resolve()} (missing)" in message
    assert "broken.yaml (not valid YAML at line 2" in message
    assert "data.yaml (it has no workflow.name)" in message
    assert "numbered.yaml (its workflow.name (line 2) is not a plain string)" in message
    assert "register('scorng', pipeline_or_path)" in message


def test_a_registry_without_directories_says_so(tmp_path: Path) -> None:
    with pytest.raises(SpecValidationError) as caught:
        Registry().resolve("anything")
    [(_, _, _, message)] = caught.value.problems
    assert "No names are registered." in message
    assert "Searched no directories" in message


def test_two_files_claiming_one_name_are_both_named(flows: Path) -> None:
    workflow(flows / "v2" / "scoring_v2.yaml", "scoring")
    registry = Registry([flows])
    with pytest.raises(SpecValidationError, match=r"2 files .* claim the workflow name") as caught:
        registry.resolve("scoring")
    files = [(Path(file).name, line, column) for file, line, column, _ in caught.value.problems]
    assert files == [("scoring.yaml", 3, 9), ("scoring_v2.yaml", 3, 9)]
    first = caught.value.problems[0][3]
    assert f"also claimed by {flows.resolve() / 'v2' / 'scoring_v2.yaml'}:3" in first
    assert "rename one workflow" in first


def test_a_duplicated_name_does_not_hide_the_others(flows: Path) -> None:
    workflow(flows / "copy.yaml", "scoring")
    assert Registry([flows]).resolve("cleaning").name == "cleaning.yml"


# --- registrations ---------------------------------------------------------------------------


def test_a_registered_pipeline_is_returned_as_is() -> None:
    pipeline = Pipeline([double], name="doubling")
    assert Registry(pipelines={"twice": pipeline}).resolve("twice") is pipeline


def test_a_registration_wins_over_a_file_of_the_same_name(flows: Path) -> None:
    pipeline = Pipeline([double])
    registry = Registry([flows], {"scoring": pipeline})
    assert registry.resolve("scoring") is pipeline


def test_with_registration_returns_a_copy_and_leaves_the_original_alone(flows: Path) -> None:
    original = Registry([flows])
    extended = original.with_registration("extra", flows / "scoring.yaml")
    assert extended.resolve("extra") == (flows / "scoring.yaml").resolve()
    assert "extra" in extended.names()
    assert "extra" not in original.names()
    with pytest.raises(SpecValidationError):
        original.resolve("extra")


def test_a_registered_path_is_made_absolute_from_the_current_directory(
    flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(flows)
    registry = Registry(pipelines={"score": "scoring.yaml"})
    monkeypatch.chdir(flows.parent)
    assert registry.resolve("score") == flows.resolve() / "scoring.yaml"


def test_registering_a_missing_or_non_yaml_file_fails_at_once(flows: Path) -> None:
    with pytest.raises(SpecValidationError, match="Cannot register `x`") as caught:
        Registry(pipelines={"x": flows / "typo.yaml"})
    [(file, _, _, message)] = caught.value.problems
    assert file == str(flows.resolve() / "typo.yaml")
    assert "not a YAML file (*.yaml or *.yml) that exists" in message
    (flows / "notes.txt").write_text("")
    with pytest.raises(SpecValidationError):
        Registry().with_registration("notes", flows / "notes.txt")


def test_registering_something_else_is_a_type_error() -> None:
    with pytest.raises(InvalidOptionError, match="a Pipeline or the path of a YAML file, not int"):
        Registry(pipelines={"x": 3})  # type: ignore[dict-item]


def test_a_registered_name_must_be_an_identifier() -> None:
    with pytest.raises(InvalidNameError, match="`my-flow` is not a Python identifier"):
        Registry().with_registration("my-flow", Pipeline([double]))


# --- reading lazily, once, and again after changes -------------------------------------------


def test_nothing_is_read_before_the_first_lookup(flows: Path, parses: list[Path]) -> None:
    registry = Registry([flows])
    workflow(flows / "late.yaml", "late")
    assert parses == []
    assert registry.resolve("late") == flows.resolve() / "late.yaml"


def test_each_file_is_read_once_while_nothing_changes(flows: Path, parses: list[Path]) -> None:
    registry = Registry([flows])
    registry.resolve("scoring")
    registry.resolve("cleaning")
    registry.names()
    registry.with_registration("other", Pipeline([double])).resolve("scoring")
    assert sorted(p.name for p in parses) == ["cleaning.yml", "scoring.yaml"]


def test_a_new_file_is_found_and_unchanged_files_are_not_read_again(
    flows: Path, parses: list[Path]
) -> None:
    registry = Registry([flows])
    registry.resolve("scoring")
    workflow(flows / "text" / "added.yaml", "added")
    touch_later(flows / "text")
    assert registry.resolve("added") == flows.resolve() / "text" / "added.yaml"
    assert [p.name for p in parses].count("scoring.yaml") == 1


def test_an_edited_file_is_read_again(flows: Path) -> None:
    registry = Registry([flows])
    registry.resolve("scoring")
    workflow(flows / "scoring.yaml", "ranking")
    touch_later(flows / "scoring.yaml")
    assert registry.resolve("ranking") == flows.resolve() / "scoring.yaml"
    with pytest.raises(SpecValidationError, match="`scoring`"):
        registry.resolve("scoring")


def test_a_registry_directory_created_later_is_searched(tmp_path: Path) -> None:
    registry = Registry([tmp_path / "pipelines"])
    assert registry.names() == []
    workflow(tmp_path / "pipelines" / "new.yaml", "new")
    assert registry.resolve("new") == tmp_path.resolve() / "pipelines" / "new.yaml"


# --- the default registry --------------------------------------------------------------------


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Names to unregister after the test, so the default registry stays as it was."""
    names: list[str] = []
    yield names
    for name in names:
        unregister(name)


def test_register_adds_to_every_default_registry_built_afterwards(
    flows: Path, tmp_path: Path, registered: list[str]
) -> None:
    project = load_project(tmp_path, profile=None)
    before = default_registry(project)
    pipeline = Pipeline([double])
    registered.append("twice")
    register("twice", pipeline)
    assert default_registry(project).resolve("twice") is pipeline
    assert default_registry(project).resolve("scoring") == flows.resolve() / "scoring.yaml"
    assert "twice" not in before.names()


def test_registering_a_name_again_replaces_it(flows: Path, registered: list[str]) -> None:
    registered.append("flow")
    register("flow", flows / "scoring.yaml")
    register("flow", flows / "text" / "cleaning.yml")
    resolved = default_registry(load_project(flows, profile=None)).resolve("flow")
    assert resolved == (flows / "text" / "cleaning.yml").resolve()


def test_unregister_forgets_a_name(registered: list[str], tmp_path: Path) -> None:
    register("gone", Pipeline([double]))
    unregister("gone")
    unregister("never_registered")
    with pytest.raises(SpecValidationError):
        default_registry(load_project(tmp_path, profile=None)).resolve("gone")


def test_the_default_registry_searches_the_project_of_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PROFILE_VARIABLE, raising=False)
    write(tmp_path / "nestflow.toml", 'registry_dirs = ["flows"]\n')
    workflow(tmp_path / "flows" / "ingest.yaml", "ingest")
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path / "src")
    registry = default_registry()
    assert registry.directories == (tmp_path.resolve() / "flows",)
    assert registry.resolve("ingest") == tmp_path.resolve() / "flows" / "ingest.yaml"


def test_the_repr_shows_directories_and_registered_names(tmp_path: Path) -> None:
    registry = Registry([tmp_path], {"twice": Pipeline([double])})
    assert repr(registry) == f"Registry(directories=[{tmp_path.resolve()}], registered=['twice'])"
