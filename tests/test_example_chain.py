"""examples/chain_haiku.py runs as a script and shows what it promises (SPEC 13)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "chain_haiku.py"


def test_the_chain_example_runs_as_a_script(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert "best of 4 variants:" in capsys.readouterr().out


def test_the_chain_example_picks_the_best_haiku_and_reruns_only_the_new_variant(
    capsys: pytest.CaptureFixture[str],
) -> None:
    namespace = runpy.run_path(str(EXAMPLE))
    result = namespace["main"]()
    out = capsys.readouterr().out
    assert result["pick_best"] == (
        "A winter river\nthe quiet hours drift by slowly\nstill the river waits"
    )
    assert len(result["answer"]) == 5
    assert [graded["score"] for graded in result["grade"]] == [-3, -2, 0, -1, -2]
    assert set(result) == {"make_variants", "answer", "grade", "pick_best"}
    assert "[make_variants_each] (make_variants) -> answer, grade" in out
    assert "├─ make_variants_each [map ×5: 1 executed, 4 cached]" in out
    assert "│  ├─ answer [×5: 1 executed, 4 cached]" in out
