"""A YAML workflow across files: a for_each, a sub-pipeline file, a registry reference,
templates and a fallback, loaded with ``nestflow.load_yaml`` and run like any pipeline.

The step ``stated_rating`` fails when no review states a rating such as ``4/5``; it is
marked ``continue_on_error``, so the run goes on, and the fallback ``estimated_rating`` (whose
``condition`` reads ``steps.stated_rating.error``) estimates one instead. This script runs
both cases.

Run it with ``python examples/yaml_reviews.py`` or ``nestflow run review.yaml --input
'docs=["Good soup.", "Great   service!"]'`` from ``examples/reviews``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nestflow

FOLDER = Path(__file__).resolve().parent / "reviews"

RATED = [
    "  The soup was GOOD and the bread was great. 4/5",
    "Service was slow. 2/5",
    "I love this place, everything fine!",
]
UNRATED = [
    "  The soup was GOOD and the bread was great.",
    "Service was slow.",
    "I love this place, everything fine!",
]


def main() -> dict[str, nestflow.Outputs]:
    """Run the workflow on reviews that state ratings, then on reviews that do not."""
    sys.path.insert(0, str(FOLDER))  # where `review_steps` (the functions it names) lives
    pipeline = nestflow.load_yaml(FOLDER / "review.yaml")
    runs = {}
    for label, docs in (("rated", RATED), ("unrated", UNRATED)):
        out = pipeline.run(docs=docs)
        print(f"{label} ({out.report.status}): {out['headline']}")
        print(out.report.tree())
        runs[label] = out
    return runs


if __name__ == "__main__":
    main()
