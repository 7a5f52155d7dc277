"""The functions the review workflow names (``review_steps:clean`` and so on)."""

from __future__ import annotations

import re

RATING = re.compile(r"\b([0-5](?:\.[0-9])?)/5\b")


def clean(text: str) -> str:
    """Lower-case text with single spaces."""
    return " ".join(text.lower().split())


def score(text: str, positive: list[str]) -> float:
    """The share of words that are positive."""
    words = text.split()
    return sum(word.strip(".,!") in positive for word in words) / max(len(words), 1)


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def stated_rating(texts: list[str]) -> str:
    """The mean of the ratings the reviews state (``4/5``); fails when none states one."""
    ratings = [float(found) for text in texts for found in RATING.findall(text)]
    if not ratings:
        raise ValueError("no review states a rating like 4/5")
    return f"{sum(ratings) / len(ratings):.1f}/5 ({len(ratings)} ratings)"


def estimated_rating(error: dict[str, str], mean_score: float) -> str:
    """The fallback of ``stated_rating``: a rating from the share of positive words, which
    says why it is an estimate."""
    return f"{1 + 4 * mean_score:.1f}/5 (estimated: {error['message']})"


def first_given(stated: str | None, estimated: str | None) -> str | None:
    """Whichever of the two ratings exists."""
    return stated if stated is not None else estimated


def headline(text: str) -> str:
    return text.upper()


def shortest(texts: list[str]) -> str:
    return min(texts, key=len)
