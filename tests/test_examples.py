"""Every example under examples/ runs, and the demo shows what it promises."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_runs_as_a_script(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out.strip()


def test_retrieval_demo_answers_with_the_caching_document_and_prints_the_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    namespace = runpy.run_path(str(EXAMPLES[0].parent / "retrieval.py"))
    result = namespace["main"]()
    out = capsys.readouterr().out
    assert result["answer"][0][1] == "caching"
    assert len(result["vectors"]) == 4
    assert "vector" not in result  # hidden by output_mapping
    assert "retrieval > encode_passage > embed [item 3]" in out
    assert out.index("retrieval > load_documents") < out.index("retrieval > build_index")
    assert "encode_corpus" in out
    first, second = out.split("second run (every node a cache hit):")
    assert "⚡ CACHED" not in first
    assert "├─ load_documents ⚡ CACHED" in second
    assert "cache hits 4 (100.0%)" in second
    assert "├─ encode_corpus [map ×4: 4 executed]" in out  # the execution tree
    picture = EXAMPLES[0].parent / "output" / "retrieval.png"
    assert picture.read_bytes()[:4] == b"\x89PNG"


def test_the_yaml_example_runs_its_files_and_registry_reference(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = EXAMPLES[0].parent
    namespace = runpy.run_path(str(folder / "yaml_reviews.py"))
    result = namespace["main"]()
    out = capsys.readouterr().out
    assert result["cleaned"][0] == "the soup was good and the bread was great."
    assert result["shortest_text"] == "service was slow."
    assert round(result["mean_score"], 2) == 0.19
    assert result["headline"] == "EN: SERVICE WAS SLOW. (0.19, BELOW 0.2)"
    assert "├─ scoring [pipeline]" in out
    assert "│  ├─ scores [map ×3: 3 executed]" in out
