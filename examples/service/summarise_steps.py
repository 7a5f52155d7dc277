"""The steps of the served ``summarise_thread`` workflow: deterministic stand-ins for a model.

``summarise.yaml`` names these functions as ``summarise_steps:<function>``, so this folder
must be on the Python path of the process that serves the workflow.
"""

from __future__ import annotations

import re

POSITIVE = frozenset({"thanks", "great", "works", "fixed", "good", "love"})
NEGATIVE = frozenset({"broken", "fails", "error", "slow", "crash", "angry"})


def first_sentence(message: str) -> str:
    """The message up to its first full stop, question or exclamation mark."""
    return re.split(r"(?<=[.!?])\s", message.strip(), maxsplit=1)[0]


def summarise(thread: list[str], style: str) -> str:
    """The first sentence of each message: joined in one line (``brief``) or as bullets."""
    sentences = [first_sentence(message) for message in thread]
    if style == "bullets":
        return "\n".join(f"- {sentence}" for sentence in sentences)
    return " ".join(sentences)


def sentiment(thread: list[str]) -> str:
    """``positive``, ``negative`` or ``neutral``, by counting words of two small lists."""
    words = re.findall(r"[a-z]+", " ".join(thread).lower())
    score = sum(word in POSITIVE for word in words) - sum(word in NEGATIVE for word in words)
    return "positive" if score > 0 else "negative" if score < 0 else "neutral"
