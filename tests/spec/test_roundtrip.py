"""Writing pipelines as workflow files that load back as themselves (SPEC 11.9, A11.13)."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from nestflow import (
    UNSET,
    Cache,
    DaskBackend,
    DiskCache,
    LocalBackend,
    NotSerializableError,
    Pipeline,
    RedisCache,
    Retry,
    SpecError,
    SpecValidationError,
    node,
)
from nestflow.cache.memory import MemoryBlobStore, MemoryMetaStore
from nestflow.core.config import Unset
from nestflow.testing import RecordingCallback

MODULE = """
from nestflow import node

CALLS = []

def clean(text: str) -> str:
    CALLS.append(text)
    return text.strip().lower()

def count(texts: list) -> int:
    return len(texts)

def shout(text: str, times: int = 1) -> str:
    return text.upper() * times

def pair(a: int, b: str) -> str:
    return f"{b}{a}"

def halves(text: str) -> tuple:
    middle = len(text) // 2
    return text[:middle], text[middle:]

@node(output_name="doubled", retries=1)
def double(n: int) -> int:
    return 2 * n

whisper = node(shout, output_name="whispered", cache=False, timeout=5)

def _hidden(text: str) -> str:
    return text

def make_adder(n):
    def add(x):
        return x + n
    return add

def make_plain():
    def inner(x):
        return x
    return inner

added = make_adder(2)
plain = make_plain()
"""


@pytest.fixture
def steps(tmp_path: Path) -> Iterator[ModuleType]:
    """An importable module of step functions, written into ``tmp_path``."""
    name = f"roundtrip_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        yield __import__(name)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def review(steps: Any, cache: Cache | Unset | None = UNSET) -> Pipeline:
    """Nesting, renames (input_mapping, output_mapping, with_inputs), a map and bound values."""
    cleaning = Pipeline([node(steps.clean, output_name="cleaned")], name="cleaning")
    scoring = Pipeline(
        [
            node(steps.clean, output_name="tidy"),
            node(steps.shout, output_name="loud").with_inputs({"text": "tidy"}),
            node(steps.shout, output_name="quiet").with_inputs({"text": "tidy", "times": "once"}),
            node(steps.halves, output_name=("head", "tail")).with_inputs({"text": "tidy"}),
            Pipeline(
                [node(steps.shout, output_name="echo").with_inputs({"text": "tidy"})],
                name="echoing",
            ),
        ],
        name="scoring",
    ).bind(times=2)
    return Pipeline(
        [
            cleaning.as_node(name="each", input_mapping={"docs": "text"}, map_over="docs"),
            node(steps.count, output_name="total").with_inputs({"texts": "cleaned"}),
            scoring.as_node(
                name="sub",
                input_mapping={"title": "text"},
                output_mapping={"loud": "loud", "quiet": "quiet", "head": "head"},
            ),
            steps.double.with_inputs({"n": "total"}),
        ],
        name="review",
        cache=cache,
        backend=LocalBackend("threaded"),
    )


def node_ids(pipeline: Pipeline) -> dict[tuple[str, ...], set[str]]:
    """The node ids of every level, keyed by the ids leading to it."""
    found: dict[tuple[str, ...], set[str]] = {(): set(pipeline.node_ids)}
    for node_id, member in zip(pipeline.node_ids, pipeline.nodes, strict=True):
        inner = getattr(member, "pipeline", None)
        if inner is not None:
            found.update({(node_id, *k): v for k, v in node_ids(inner).items()})
    return found


def signatures(outputs: Any) -> list[tuple[Any, ...]]:
    records = outputs.report.records
    return sorted((r.id_path, r.item_path, r.signature) for r in records)


def raised(pipeline: Pipeline) -> str:
    with pytest.raises(NotSerializableError) as info:
        pipeline.to_yaml()
    return str(info.value)


# --- the round trip --------------------------------------------------------------------------


def test_a13_a_loaded_pipeline_matches_and_reuses_the_originals_cache(
    steps: Any, tmp_path: Path
) -> None:
    original = review(steps, DiskCache(tmp_path / "cache"))
    loaded = Pipeline.from_yaml(original.to_yaml())
    assert loaded.inputs == original.inputs
    assert loaded.outputs == original.outputs
    assert node_ids(loaded) == node_ids(original)
    assert loaded.node("sub").pipeline.bound_inputs == {"times": 2}  # type: ignore[union-attr]
    inputs = {"docs": [" A", "b ", " C"], "title": " Hi There "}
    first = original.run(inputs)
    steps.CALLS.clear()
    again = loaded.run(inputs)
    assert dict(again) == dict(first)
    assert again.report.cache_misses == 0
    assert again.report.cache_hits == len(again.report.records) == len(first.report.records)
    assert signatures(again) == signatures(first)
    assert steps.CALLS == [], "nothing ran again"


def test_the_file_reads_as_the_docs_write_workflows(steps: Any) -> None:
    data = yaml.safe_load(review(steps).to_yaml())
    workflow = data["workflow"]
    assert data["version"] == 1
    assert workflow["inputs"]["docs"] == {"type": "any"}
    assert workflow["config"] == {"backend": {"type": "local", "node_execution": "threaded"}}
    each, count, sub, double = workflow["steps"]
    assert each["type"] == "for_each"
    assert (each["over"], each["as"]) == ("{{inputs.docs}}", "text")
    assert each["pipeline"]["name"] == "cleaning"
    assert count["inputs"] == {"texts": "{{steps.each.cleaned}}"}
    assert (count["function"], count["output_name"]) == (f"{steps.__name__}:count", "total")
    assert sub["inputs"] == {"text": "{{inputs.title}}"}
    assert sub["outputs"] == ["loud", "quiet", "head"]
    assert sub["pipeline"]["inputs"]["times"] == {"type": "any", "default": 2}
    assert sub["pipeline"]["steps"][3]["output_name"] == ["head", "tail"]
    assert double == {
        "name": "double",
        "type": "function",
        "function": f"{steps.__name__}:double",
        "inputs": {"n": "{{steps.count.total}}"},
        "output_name": "doubled",
    }, "a module-level node is named by its attribute; its settings come with it"


def test_a_path_is_written_whole_and_loads(steps: Any, tmp_path: Path) -> None:
    target = tmp_path / "flows" / "review.yaml"
    target.parent.mkdir()
    target.write_text("old")
    text = review(steps).to_yaml(target)
    assert target.read_text() == text
    assert [p.name for p in target.parent.iterdir()] == ["review.yaml"], "no temporary file"
    assert Pipeline.from_yaml(target).run(docs=["X"], title="ab")["doubled"] == 2


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(
    steps: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "flow.yaml"
    target.write_text("old")
    with pytest.raises(NotSerializableError):
        Pipeline([node(lambda x: x, name="first", output_name="first")]).to_yaml(target)

    def failing(source: Any, destination: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk full"):
        review(steps).to_yaml(target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_several_mapped_lists_become_a_for_each_over_a_mapping(steps: Any) -> None:
    inner = Pipeline([node(steps.pair, output_name="paired")], name="pairing")
    for mode in ("zip", "product"):
        mapped = inner.as_node(
            name="grid", input_mapping={"ns": "a"}, map_over=["ns", "b"], map_mode=mode
        )
        original = Pipeline([mapped], name="grid")
        text = original.to_yaml()
        step = yaml.safe_load(text)["workflow"]["steps"][0]
        assert step["over"] == {"a": "{{inputs.ns}}", "b": "{{inputs.b}}"}
        assert step.get("mode", "zip") == mode
        loaded = Pipeline.from_yaml(text)
        given = {"ns": [1, 2], "b": ["x", "y"]}
        assert loaded.run(given)["paired"] == original.run(given)["paired"]


def test_config_of_known_types_is_written_and_read_back(steps: Any, tmp_path: Path) -> None:
    inner = Pipeline([node(steps.clean, output_name="cleaned")], name="inner", cache=None)
    outer = Pipeline(
        [inner.as_node(name="nested"), node(steps.count, output_name="total")],
        name="outer",
        backend=DaskBackend("tcp://127.0.0.1:8786", node_execution="threaded"),
        cache=RedisCache("redis://localhost:6379/3", prefix="flows"),
        timeout=2.5,
        retries=3,
    )
    workflow = yaml.safe_load(outer.to_yaml())["workflow"]
    assert workflow["config"] == {
        "timeout_seconds": 2.5,
        "max_retries": 3,
        "backend": {
            "type": "dask",
            "address": "tcp://127.0.0.1:8786",
            "node_execution": "threaded",
        },
        "cache": {"type": "redis", "url": "redis://localhost:6379/3", "prefix": "flows"},
    }
    assert workflow["steps"][0]["pipeline"]["config"] == {"cache": None}
    disk = outer.with_backend(LocalBackend(map_execution="threaded", max_workers=2))
    disk = disk.with_cache(DiskCache(tmp_path / "c"))
    config = yaml.safe_load(disk.to_yaml())["workflow"]["config"]
    assert config["backend"] == {"type": "local", "map_execution": "threaded", "max_workers": 2}
    assert config["cache"] == {"type": "disk", "path": str(tmp_path / "c")}


def test_node_settings_become_step_config_and_callbacks_are_left_out(steps: Any) -> None:
    pipeline = Pipeline(
        [
            node(steps.clean, output_name="cleaned", timeout=1.5, retries=2, on_error="continue"),
            node(steps.count, output_name="total").with_inputs({"texts": "cleaned"}),
            steps.whisper.with_inputs({"text": "cleaned"}),
        ],
        callbacks=[RecordingCallback()],
    )
    text = pipeline.to_yaml()
    clean, _, whisper = yaml.safe_load(text)["workflow"]["steps"]
    assert clean["config"] == {"timeout_seconds": 1.5, "max_retries": 2, "continue_on_error": True}
    assert whisper["function"] == f"{steps.__name__}:whisper"
    assert "config" not in whisper, "cache=False and timeout=5 come with the module-level node"
    assert "callbacks" not in text
    loaded = Pipeline.from_yaml(text)
    assert loaded.node("shout").cache is False
    assert loaded.node("clean").on_error == "continue"


def test_a_continuing_nested_node_and_input_types_are_kept(steps: Any) -> None:
    inner = Pipeline([node(steps.count, output_name="total")], name="inner")
    outer = Pipeline(
        [inner.as_node(name="counted", on_error="continue")], name="outer"
    ).with_input_types({"texts": "array"})
    text = outer.to_yaml()
    workflow = yaml.safe_load(text)["workflow"]
    assert workflow["inputs"] == {"texts": {"type": "array"}}
    assert workflow["steps"][0]["config"] == {"continue_on_error": True}
    loaded = Pipeline.from_yaml(text)
    assert loaded.input_types == {"texts": "array"}
    assert loaded.node("counted").on_error == "continue"


# --- what cannot be written ----------------------------------------------------------------


def test_a_lambda_is_not_serializable_and_named(steps: Any) -> None:
    message = raised(Pipeline([node(lambda x: x, name="first", output_name="first")], name="p"))
    assert "node `p.first`" in message
    assert "lambda" in message


def test_a_closure_is_not_serializable(steps: Any) -> None:
    message = raised(Pipeline([node(steps.added, output_name="sum")], name="p"))
    assert "node `p.add`" in message
    assert "closure over `n`" in message


def test_a_nested_function_is_not_serializable(steps: Any) -> None:
    message = raised(Pipeline([node(steps.plain, output_name="same")], name="p"))
    assert "node `p.inner`" in message
    assert "`make_plain.<locals>.inner` is defined inside another function" in message


def test_a_function_of_main_is_not_serializable() -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec("def script_step(x):\n    return x\n", namespace)
    message = raised(Pipeline([node(namespace["script_step"], output_name="y")], name="p"))
    assert "node `p.script_step`" in message
    assert "__main__" in message


def test_a_private_function_is_not_serializable(steps: Any) -> None:
    message = raised(Pipeline([node(steps._hidden, output_name="seen", name="hidden")], name="p"))
    assert "node `p.hidden`" in message
    assert "public identifier" in message


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (("a", "b"), "a tuple"),
        ({"a", "b"}, "a set"),
        (math.nan, "nan"),
        ({1: "a"}, "keys that are not strings"),
        ([Path("x")], "PosixPath" if sys.platform != "win32" else "WindowsPath"),
    ],
)
def test_a_bound_value_that_is_not_json_is_not_serializable(
    steps: Any, value: Any, shown: str
) -> None:
    pipeline = Pipeline([node(steps.count, output_name="total")], name="p").bind(texts=value)
    message = raised(pipeline)
    assert "pipeline `p`: the bound value of `texts`" in message
    assert shown in message


def test_every_problem_is_reported_at_once(steps: Any) -> None:
    inner = Pipeline([node(steps.added, output_name="sum")], name="inner").bind(x=(1,))
    pipeline = Pipeline(
        [node(lambda text: text, name="first", output_name="first"), inner.as_node(name="sub")],
        name="p",
    )
    with pytest.raises(SpecError, match=r"\(3 problems\)") as info:
        pipeline.to_yaml()
    message = str(info.value)
    assert "node `p.first`" in message
    assert "node `p.sub.add`" in message
    assert "node `p.sub`: the bound value of `x` is a tuple" in message


def test_renamed_outputs_are_not_serializable_until_the_loader_reads_them(steps: Any) -> None:
    inner = Pipeline([node(steps.clean, output_name="cleaned")], name="inner")
    pipeline = Pipeline([inner.as_node(name="sub", output_mapping={"cleaned": "tidy"})], name="p")
    message = raised(pipeline)
    assert "node `p.sub`: output_mapping publishes `cleaned` as `tidy`" in message
    assert "{path: <inner>, as: <outer>}" in message


def test_a_mapped_node_renaming_other_inputs_or_choosing_outputs_is_not_serializable(
    steps: Any,
) -> None:
    inner = Pipeline(
        [node(steps.shout, output_name="loud"), node(steps.count, output_name="total")],
        name="inner",
    )
    renaming = inner.as_node(
        name="each", input_mapping={"docs": "text", "n": "times"}, map_over="docs"
    )
    assert "no `inputs` on a for_each step" in raised(Pipeline([renaming], name="p"))
    choosing = inner.as_node(name="each", output_mapping={"loud": "loud"}, map_over="text")
    assert "a for_each step publishes all of them" in raised(Pipeline([choosing], name="p"))


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        ({"retries": Retry(attempts=2)}, "not a Retry policy"),
        ({"timeout": None}, "timeout=None cannot be written"),
        ({"cache": False}, "cache=False has no key in a function step"),
        ({"cache_version": "2"}, "cache_version='2' has no key"),
    ],
)
def test_node_settings_without_a_step_key_are_not_serializable(
    steps: Any, options: dict[str, Any], shown: str
) -> None:
    message = raised(Pipeline([node(steps.clean, output_name="cleaned", **options)], name="p"))
    assert "node `p.clean`" in message
    assert shown in message


@pytest.mark.parametrize(
    ("config", "shown"),
    [
        ({"retries": Retry(attempts=2)}, "not a Retry policy"),
        ({"timeout": None}, "cannot lift an inherited limit"),
        ({"cache": Cache(MemoryMetaStore(), MemoryBlobStore())}, "DiskCache, RedisCache"),
        ({"cache": RedisCache("redis://:secret@localhost:6379/0")}, "holds a password"),
        ({"cache": RedisCache(ttl=60)}, "its ttl"),
        ({"cache": DiskCache("c", strict=True)}, "cache_version and strict"),
        ({"backend": DaskBackend(connect_timeout=1.0)}, "connect_timeout=1.0"),
    ],
)
def test_pipeline_config_without_a_workflow_form_is_not_serializable(
    steps: Any, config: dict[str, Any], shown: str
) -> None:
    message = raised(Pipeline([node(steps.clean, output_name="cleaned")], name="p", **config))
    assert "pipeline `p`" in message
    assert shown in message


def test_names_a_workflow_file_cannot_hold_are_not_serializable(steps: Any) -> None:
    pipeline = Pipeline([node(steps.clean, output_name="_cleaned", name="_clean")], name="p")
    message = raised(pipeline)
    assert "`_clean`, `_cleaned`" in message


def test_a_loaded_workflow_is_written_back_as_itself(tmp_path: Path) -> None:
    loaded = Pipeline.from_yaml("""
version: 1
workflow:
  name: paths
  inputs: {paths: {type: array}}
  steps:
    - name: names
      type: for_each
      over: "{{inputs.paths}}"
      as: path
      step: {type: function, function: "os.path:basename", inputs: {p: "{{path}}"}}
""")
    again = Pipeline.from_yaml(loaded.to_yaml())
    assert node_ids(again) == node_ids(loaded)
    assert again.input_types == {"paths": "array"}
    assert again.run(paths=["/a/b.txt"])["names"] == ["b.txt"]


# --- the file is loaded back before it is returned -------------------------------------------


def test_a_file_the_loader_would_read_differently_is_refused(
    steps: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nestflow.spec import export

    pipeline = review(steps)
    read = export.load_yaml

    def slower(text: str, **options: Any) -> Pipeline:
        loaded = read(text, **options)
        return loaded.with_timeout(9)

    monkeypatch.setattr(export, "load_yaml", slower)
    message = raised(pipeline)
    assert "loads differently" in message
    assert "pipeline `review`: config" in message


def test_a_file_the_loader_would_refuse_is_refused(
    steps: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nestflow.spec import export

    def refusing(text: str, **options: Any) -> Pipeline:
        raise SpecValidationError("no", [("<text>", 3, 5, "`count` steps are not read yet")])

    monkeypatch.setattr(export, "load_yaml", refusing)
    message = raised(review(steps))
    assert "this version cannot load" in message
    assert "`count` steps are not read yet" in message


def test_limits_and_workspaces_are_written_and_python_conditions_are_refused(
    steps: Any, tmp_path: Path
) -> None:
    from nestflow import Limits, Workspace

    inner = Pipeline([steps.double], name="inner")
    step = inner.as_node(name="inner", workspace=Workspace(str(tmp_path / "${step.name}")))
    limited = Pipeline([step], name="outer", limits=Limits(max_total_steps=7, max_depth=4))
    loaded = Pipeline.from_yaml(limited.to_yaml())
    assert loaded.config["limits"].max_total_steps == 7
    assert loaded.config["limits"].max_depth == 4
    (member,) = loaded.nodes
    assert member.workspace == Workspace(str(tmp_path / "${step.name}"))

    gated = Pipeline([steps.double.with_options(when="go")], name="gated")
    with pytest.raises(NotSerializableError, match="condition"):
        gated.to_yaml()
