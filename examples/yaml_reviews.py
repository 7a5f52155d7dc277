"""A YAML workflow across files: a for_each, a sub-pipeline file, a registry reference and
templates, loaded with ``nestflow.load_yaml`` and run like any pipeline.

Run it with ``python examples/yaml_reviews.py`` or ``nestflow run examples/reviews/review.yaml
--input 'docs=["Good soup.", "Great   service!"]'`` from ``examples/reviews``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nestflow

FOLDER = Path(__file__).resolve().parent / "reviews"

DOCS = [
    "  The soup was GOOD and the bread was great.",
    "Service was slow.",
    "I love this place, everything fine!",
]


def main() -> dict[str, object]:
    sys.path.insert(0, str(FOLDER))  # where `review_steps` (the functions it names) lives
    pipeline = nestflow.load_yaml(FOLDER / "review.yaml")
    out = pipeline.run(docs=DOCS)
    print(out["headline"])
    print(out.report.tree())
    return dict(out)


if __name__ == "__main__":
    main()
