"""Durations (``7d``, ``12h``) and byte sizes (``1GB``, ``512MiB``) written on the command line.

Decimal units (kB, MB, GB, TB) are powers of 1000 and binary ones (KiB, MiB, GiB, TiB)
powers of 1024; units are read in any case, and a bare number is seconds, or bytes.
"""

from __future__ import annotations

import re

import click

SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
BYTES = {
    "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip
_AMOUNT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def duration_option(
    context: click.Context, parameter: click.Parameter, text: str | None
) -> float | None:
    """Seconds from ``90``, ``30s``, ``15m``, ``12h``, ``7d`` or ``2w`` (a click callback)."""
    return None if text is None else amount(text, SECONDS, "s", "7d, 12h, 30m or 90s")


def size_option(context: click.Context, parameter: click.Parameter, text: str | None) -> int | None:
    """Bytes from ``1000``, ``1GB``, ``500MB`` or ``512MiB`` (a click callback)."""
    return None if text is None else int(amount(text, BYTES, "b", "1GB, 500MB or 512MiB"))


def amount(text: str, units: dict[str, int], bare: str, examples: str) -> float:
    """``text`` (a number and a unit of ``units``; ``bare`` when none) in the base unit."""
    match = _AMOUNT.fullmatch(text)
    unit = (match[2] or bare).lower() if match else ""
    if match is None or unit not in units:
        known = ", ".join(units)
        raise click.BadParameter(f"{text!r} is not an amount such as {examples} (units: {known}).")
    return float(match[1]) * units[unit]


def size_text(count: int) -> str:
    """``1.5 MB`` style, in decimal units."""
    amount = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000:
            return f"{count} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} TB"
