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


def test_the_yaml_example_runs_its_files_and_registry_reference_and_falls_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = EXAMPLES[0].parent
    namespace = runpy.run_path(str(folder / "yaml_reviews.py"))
    runs = namespace["main"]()
    out = capsys.readouterr().out

    # Reviews that state ratings: `stated_rating` succeeds and the fallback is skipped.
    rated = runs["rated"]
    assert rated["cleaned"][0] == "the soup was good and the bread was great. 4/5"
    assert rated["shortest_text"] == "service was slow. 2/5"
    # positive-word shares 2/10, 0/4 and 2/6 ("love", "fine!")
    assert rated["mean_score"] == pytest.approx((2 / 10 + 0 + 2 / 6) / 3)  # 0.178
    assert rated["stated_rating"] == "3.0/5 (2 ratings)"  # (4 + 2) / 2
    assert rated["estimated_rating"] is None
    assert rated["rating"] == "3.0/5 (2 ratings)"
    assert (
        rated["headline"] == "EN: SERVICE WAS SLOW. 2/5 (0.18, BELOW 0.2), RATED 3.0/5 (2 RATINGS)"
    )
    assert rated.report.status == "ok"
    records = {r.path: r for r in rated.report.records}
    assert records["review > estimated_rating"].status == "skipped"
    assert records["review > estimated_rating"].error == (
        "skipped: its condition `{{steps.stated_rating.error != null}}` is false"
    )

    # No stated rating: `stated_rating` fails, the run goes on and the fallback runs with
    # the error's message.
    unrated = runs["unrated"]
    assert unrated["cleaned"][0] == "the soup was good and the bread was great."
    assert unrated["shortest_text"] == "service was slow."
    assert unrated["mean_score"] == pytest.approx(5 / 27)  # (2/9 + 0 + 2/6) / 3 = 0.185
    assert unrated["stated_rating"] is None
    estimate = "1.7/5 (estimated: no review states a rating like 4/5)"  # 1 + 4 * 5/27 = 1.74
    assert unrated["estimated_rating"] == estimate
    assert unrated["rating"] == estimate
    assert (
        unrated["headline"] == f"EN: SERVICE WAS SLOW. (0.19, BELOW 0.2), RATED {estimate.upper()}"
    )
    assert unrated.report.status == "partial"
    records = {r.path: r for r in unrated.report.records}
    assert records["review > stated_rating"].status == "failed"
    assert records["review > stated_rating"].error == (
        "ValueError: no review states a rating like 4/5"
    )
    assert records["review > estimated_rating"].status == "executed"

    assert "rated (ok): EN: SERVICE WAS SLOW. 2/5" in out
    assert "unrated (partial): EN: SERVICE WAS SLOW. (0.19" in out
    assert "├─ scoring [pipeline]" in out
    assert "│  ├─ scores [map ×3: 3 executed]" in out
    assert "├─ stated_rating ✗ ValueError: no review states a rating like 4/5" in out
