"""Pictures of pipelines: to_text, visualize through graphviz, Jupyter bundles (SPEC 9.6)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nestflow import DiskCache, GraphvizStyle, NestflowWarning, Pipeline, node


@node(output_name="cleaned")
def clean_p(passage: str) -> str:
    return passage.strip().lower()


@node(output_name="vector")
def encode_p(cleaned: str, dim: int = 4) -> list[int]:
    return [len(cleaned)] * dim


@node(output_name="index")
def build_index(vectors: list[list[int]]) -> dict[int, list[int]]:
    return dict(enumerate(vectors))


@node(output_name="answer")
def answer(index: dict[int, list[int]], query: str) -> str:
    return f"{query}: {len(index)}"


def s39(tmp_path: Path | None = None) -> Pipeline:
    """The retrieval pipeline of scenario S39: encode_corpus maps encode_passage over corpus."""
    encode_passage = Pipeline([clean_p, encode_p], name="encode_passage")
    encode_corpus = encode_passage.as_node(
        name="encode_corpus",
        map_over="corpus",
        input_mapping={"corpus": "passage"},
        output_mapping={"vector": "vectors"},
    )
    cache = DiskCache(tmp_path) if tmp_path is not None else None
    return Pipeline([encode_corpus, build_index, answer], name="rag", cache=cache)


def test_a9_14_depth_one_collapses_and_depth_two_expands() -> None:
    rag = s39()
    collapsed = rag.visualize(depth=1).source
    assert "encode_corpus" in collapsed
    assert "clean_p" not in collapsed
    expanded = rag.visualize(depth=2).source
    assert "clean_p" in expanded
    assert "encode_p" in expanded
    assert "cluster_encode_corpus" in expanded
    assert "maps over corpus" in expanded


def test_a9_14_to_text_indents_the_expanded_level() -> None:
    text = s39().to_text(depth=2)
    assert text.splitlines() == [
        "rag",
        "  [encode_corpus] (corpus, dim) -> vectors  · pipeline encode_passage · maps over corpus",
        "      [clean_p] (passage) -> cleaned",
        "      [encode_p] (cleaned, dim) -> vector",
        "  [build_index] (vectors) -> index",
        "  [answer] (index, query) -> answer",
    ]
    assert "clean_p" not in s39().to_text(depth=1)


def test_node_styles_types_defaults_and_bound_inputs() -> None:
    rag = s39().bind(query="what")
    source = rag.visualize(depth=2).source
    assert 'label="dim: int = 4"' in source
    assert 'label="query: str (bound)"' in source
    assert 'style="dashed,filled"' in source
    assert 'style="rounded,filled"' in source
    collapsed = rag.visualize(depth=1).source
    assert "peripheries=2" in collapsed
    assert "[pipeline encode_passage]" in collapsed


def test_cluster_labels_carry_the_effective_configuration(tmp_path: Path) -> None:
    source = s39(tmp_path).visualize(depth=2).source
    assert f"DiskCache({tmp_path})*" in source
    assert f"↓ DiskCache({tmp_path})" in source
    plain = s39(tmp_path).visualize(depth=2, show_config=False).source
    assert "DiskCache" not in plain


def test_flatten_draws_nested_nodes_inline_with_their_pipeline_named() -> None:
    source = s39().visualize(depth=None, flatten=True).source
    assert "cluster_" not in source
    assert "in encode_corpus" in source


def test_orient_style_and_legend() -> None:
    style = GraphvizStyle(function_color="#123456", font="Courier")
    source = s39().visualize(orient="LR", style=style, show_legend=True).source
    assert "rankdir=LR" in source
    assert "#123456" in source
    assert "Courier" in source
    assert "cluster_legend" in source


@pytest.mark.parametrize("bad", [{"depth": 0}, {"depth": -1}, {"orient": "UP"}])
def test_bad_depth_or_orient_is_a_value_error(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"depth|orient"):
        s39().visualize(**bad)  # type: ignore[arg-type]


def test_a9_15_a_dot_file_needs_no_graphviz_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    target = tmp_path / "g.dot"
    graph = s39().visualize(filename=str(target))
    assert target.read_text(encoding="utf-8") == graph.source
    assert target.read_text(encoding="utf-8").startswith("digraph rag {")


def test_a_png_is_rendered_by_the_dot_binary(tmp_path: Path) -> None:
    target = tmp_path / "rag.png"
    s39().visualize(depth=2, filename=str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_dot_a_png_warns_how_to_install_and_keeps_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.warns(NestflowWarning, match="apt-get install graphviz"):
        graph = s39().visualize(filename=str(tmp_path / "rag.png"))
    assert not (tmp_path / "rag.png").exists()
    assert (tmp_path / "rag.dot").read_text(encoding="utf-8") == graph.source


def test_jupyter_bundle_is_svg_with_dot_and_text_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rag = s39()
    bundle = rag._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith("<?xml")
    assert bundle["text/plain"] == rag.to_text()
    assert rag._repr_svg_() == bundle["image/svg+xml"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert rag._repr_mimebundle_() == {"text/plain": rag.to_text()}


def test_reports_show_their_tree_in_jupyter() -> None:
    report = s39().run(corpus=["A b"], query="q").report
    assert report._repr_mimebundle_() == {"text/plain": report.tree()}


def test_missing_graphviz_package_fails_on_use_with_the_install_command() -> None:
    code = (
        "import sys; sys.modules['graphviz'] = None\n"
        "from nestflow import Pipeline, node\n"
        "p = Pipeline([node(lambda x: x, output_name='y', name='f')], name='p')\n"
        "print(p.to_text())\n"
        "try:\n    p.visualize()\nexcept ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "[f] (x) -> y" in out.stdout
    assert "pip install 'nestflow[viz]'" in out.stdout
