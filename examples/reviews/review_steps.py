"""The functions the review workflow names (``review_steps:clean`` and so on)."""

from __future__ import annotations


def clean(text: str) -> str:
    """Lower-case text with single spaces."""
    return " ".join(text.lower().split())


def score(text: str, positive: list[str]) -> float:
    """The share of words that are positive."""
    words = text.split()
    return sum(word.strip(".,!") in positive for word in words) / max(len(words), 1)


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def headline(text: str) -> str:
    return text.upper()


def shortest(texts: list[str]) -> str:
    return min(texts, key=len)
