"""A chain: write variants of an instruction, answer each, grade each, keep the best.

The four steps are deterministic stand-ins for model calls. ``Chain`` wires them in a line:
``make_variants`` returns a list and ``.scatter()`` runs the next steps once per variant;
``grade(...).aggregate()`` gathers the grades into the list ``pick_best`` receives. The
chain compiles into an ordinary pipeline, so a cache keeps every variant's answer and
grade: asking for one variant more runs the new one only.

Run it with ``python examples/chain_haiku.py``.
"""

from __future__ import annotations

import re
import tempfile

from nestflow import Chain, DiskCache, capture, step

SUBJECTS = (
    "an old pond",
    "the autumn moon",
    "a winter river",
    "spring rain on the roof",
    "a temple bell at dusk",
    "cherry blossoms",
)


def make_variants(instruction: str, n_variants: int) -> list[str]:
    """The instruction, once per subject."""
    return [f"{instruction} about {subject}" for subject in SUBJECTS[:n_variants]]


def answer(variant: str) -> str:
    """A three-line poem on the variant's subject (a stand-in for a model's answer)."""
    subject = variant.split(" about ", 1)[1]
    last = subject.split()[-1]
    return f"{subject.capitalize()}\nthe quiet hours drift by slowly\nstill the {last} waits"


def syllables(line: str) -> int:
    """Vowel groups: a rough syllable count, good enough to grade a stand-in."""
    return sum(len(re.findall(r"[aeiouy]+", word)) or 1 for word in line.lower().split())


def grade(answer: str) -> dict[str, object]:
    """How far each line is from 5-7-5 syllables: 0 is a perfect haiku."""
    counts = [syllables(line) for line in answer.splitlines()]
    miss = sum(abs(have - want) for have, want in zip(counts, (5, 7, 5), strict=True))
    return {"haiku": answer, "syllables": counts, "score": -miss}


def pick_best(grade: list[dict[str, object]]) -> str:
    """The best-graded poem; the first of equals."""
    best = max(grade, key=lambda graded: graded["score"])  # type: ignore[arg-type, return-value]
    return str(best["haiku"])


flow = (
    Chain("instruction", n_variants=4)
    << step(make_variants).scatter()
    << step(answer)
    << step(grade).aggregate()
    << step(pick_best)
)


def main() -> dict[str, object]:
    """Build, run, run again with one more variant, and show what ran."""
    with tempfile.TemporaryDirectory() as folder:
        haiku = flow.build(name="haiku", cache=DiskCache(folder))
        print(haiku.to_text(depth=2))
        result = haiku.run(instruction="Write a haiku")
        print("\nbest of", len(result["answer"]), "variants:\n" + result["pick_best"])
        with capture() as cap:
            more = haiku.run(instruction="Write a haiku", n_variants=5)
        print("\nwith one variant more, only the new one runs:")
        print(cap.last.tree())
    print("\ngrades:", [graded["score"] for graded in more["grade"]])
    return dict(more)


if __name__ == "__main__":
    main()
