"""Plain-language verdicts: sentences graded good / warn / bad / info, and the summary's headline cards.

Every verdict compares a synthetic figure with the same figure between two halves of the real data (or with
the real-data regime), so "good" means "about as far from real as real is from itself". Each family's rules
are written next to its verdict function in :mod:`medfab.report.sections`; they guide a reader, they do not
replace the numbers beside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Level = Literal["good", "warn", "bad", "info"]


@dataclass
class Verdict:
    level: Level
    text: str


def num(v: Any) -> float | None:
    """A finite number, or None for a missing/skipped value (``Skipped``, ``{"skipped": ...}``, None)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def get(d: Any, *path, default=None):
    """``d[path[0]][path[1]]...`` or ``default`` when any step is missing (plain dicts: anomaly, review)."""
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def first(d: Any, *keys, default=None):
    """The value of the first key of ``keys`` present in ``d`` (tolerates renamed fields)."""
    if isinstance(d, dict):
        for k in keys:
            if k in d:
                return d[k]
    return default


def graded(x: float, good: float, warn: float, *, higher_is_better: bool = True) -> Level:
    """good / warn / bad against two thresholds."""
    if not higher_is_better:
        x, good, warn = -x, -good, -warn
    return "good" if x >= good else "warn" if x >= warn else "bad"


def headline(res) -> list[tuple[str, str, Level]]:
    """Summary cards (label, value, level) of every family that ran, in section order."""
    from medfab.report.sections import SECTIONS

    cards: list[tuple[str, str, Level]] = []
    for name in ("utility", "privacy", "diversity", "class", "volumes"):
        fam = res.families.get(name)
        sec = SECTIONS.get(name)
        if fam is not None and fam.status == "ok" and sec is not None and isinstance(fam.data, sec.RESULT):
            cards += sec.cards(fam.data, res)
    return cards
